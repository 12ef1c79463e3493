"""Held-out score: fixed noisy slices at three scales, gain over an oracle Gaussian filter."""

import numpy as np
import torch
from scipy import ndimage

from tomodiff.training.ct_data import Volume
from tomodiff.training.heldout import HeldOutScore, eval_slices, psnr


def _blobs(seed=0, shape=(12, 128, 128)):
    rng = np.random.default_rng(seed)
    v = ndimage.gaussian_filter(rng.random(shape), (0, 6, 6))
    v = (v - v.min()) / (v.max() - v.min())
    return Volume("blobs", torch.from_numpy(v.astype(np.float32)))


def test_psnr():
    ref = np.zeros((2, 4, 4))
    assert np.allclose(psnr(ref + 0.1, ref, (1, 2)), 20.0)


def test_eval_slices_cover_three_scales():
    sets = eval_slices([_blobs()], n_per_volume=3)
    assert sorted(sets) == [1, 2, 4]
    assert [tuple(s.shape[2:]) for s in (sets[1][0], sets[2][0], sets[4][0])] == [(128, 128), (64, 64), (32, 32)]
    assert all(len(v) == 3 for v in sets.values())


def test_identity_loses_to_the_filter_and_oracle_beats_it():
    vol = _blobs()
    score = HeldOutScore([vol], n_per_volume=1)  # one slice per scale: shapes identify the slices
    ident = score(lambda x, s: x)
    assert ident["gain"] < -3  # the noisy input is far worse than a tuned Gaussian filter
    clean = {tuple(c.shape): torch.from_numpy(c) for f in score.sets for c in score.sets[f][0]}
    oracle = score(lambda x, s: clean[tuple(x.shape)])
    assert oracle["gain"] > 20  # returning the clean slice is near-infinite PSNR (capped)
    assert score(lambda x, s: x) == ident  # seeded: the same numbers every time
