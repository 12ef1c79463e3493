"""Pairs for a conditional CT prior: random acquisitions and the FBP conditions they give."""

import math

import numpy as np
import torch

from tomodiff.training.ct_pairs import Acquisition, random_acquisition, scan_and_reconstruct


def test_acquisitions_cover_the_asked_ranges_and_depend_on_the_seed_only():
    draws = [random_acquisition(np.random.default_rng(i), 4) for i in range(300)]
    views = [a.views for a in draws]
    assert min(views) >= 4 and max(views) <= 64 and len(set(views)) > 20
    arcs = [a.arc_deg for a in draws]
    limited = [a for a in arcs if a < 179.0]
    assert 0.2 < len(limited) / len(arcs) < 0.4 and min(limited) >= 60 - 1e-6  # arc_prob 0.3, arcs from 60°
    assert all(0.002 <= v <= 0.03 for a in draws for v in a.noise)
    assert random_acquisition(np.random.default_rng(7), 4) == random_acquisition(np.random.default_rng(7), 4)


def test_many_views_and_little_noise_give_a_condition_close_to_the_slice():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    clean = ((xx ** 2 + yy ** 2) < 0.5).float()[None, None] * 0.8
    dense = Acquisition(tuple(np.linspace(0, math.pi, 96, endpoint=False)), (1e-4,))
    sparse = Acquisition(tuple(np.linspace(0, math.pi, 4, endpoint=False)), (1e-4,))
    err = {name: float((scan_and_reconstruct(clean, acq, torch.Generator().manual_seed(0)) - clean).abs().mean())
           for name, acq in (("dense", dense), ("sparse", sparse))}
    assert err["dense"] < 0.05 < err["sparse"]  # 4 views: streaks the conditional prior must learn to remove


def test_runs_on_one_thread():
    """The shared autouse fixture applies here (tests/one_thread.py)."""
    assert torch.get_num_threads() == 1
