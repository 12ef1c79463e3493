"""Wrong resume: a checkpoint made with one prior or one geometry is refused by a run with another,
naming what differs; ``remove_checkpoint=False`` keeps the file for the caller to remove."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.recon import reconstruct


class FakePrior:
    """A Gaussian denoiser dressed as a loaded prior: ``info['sha256']`` names its 'weights'."""

    def __init__(self, sha256: str, mean=0.3, var=0.05):
        self.info = {"name": "fake", "sha256": sha256}
        self.mean, self.var, self.calls = mean, var, 0

    def denoiser(self, x, sigma):
        self.calls += 1
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return self.mean + self.var / (self.var + s * s) * (x - self.mean)


class Stop(Exception):
    pass


class Interrupting(FakePrior):
    """Raises after ``limit`` denoiser calls: a run killed in its second slab."""

    def __init__(self, sha256, limit):
        super().__init__(sha256)
        self.limit = limit

    def denoiser(self, x, sigma):
        if self.calls >= self.limit:
            raise Stop
        return super().denoiser(x, sigma)


@pytest.fixture(scope="module")
def problem():
    geom = parallel_beam((12, 16, 16), np.linspace(0, np.pi, 8, endpoint=False), det_shape=(12, 24))
    zz, yy, xx = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in (12, 16, 16)), indexing="ij")
    x = ((xx**2 + yy**2) < 0.6).float()[None, None]
    A = Projector(geom, backend="torch")
    return geom, A(x)


KW = dict(method="pigdm", steps=3, n_samples=1, sigma_y=0.05, slab=6, overlap=2, progress=False, seed=0)


def _interrupted(A, y, ckpt):
    with pytest.raises(Stop):
        reconstruct(A, y, prior=Interrupting("aaa", limit=4), checkpoint=ckpt, **KW)
    assert ckpt.exists()


def test_resume_with_another_prior_is_refused(problem, tmp_path):
    geom, y = problem
    A, ckpt = Projector(geom, backend="torch"), tmp_path / "run.ckpt"
    _interrupted(A, y, ckpt)
    with pytest.raises(ValueError, match=r"differs in: prior"):
        reconstruct(A, y, prior=FakePrior("bbb"), checkpoint=ckpt, **KW)
    resumed = FakePrior("aaa")  # the same weights resume, doing only the slabs left
    reconstruct(A, y, prior=resumed, checkpoint=ckpt, **KW)
    fresh = FakePrior("aaa")
    reconstruct(A, y, prior=fresh, **KW)
    assert 0 < resumed.calls < fresh.calls
    assert not ckpt.exists()


def test_resume_with_another_geometry_is_refused(problem, tmp_path):
    geom, y = problem
    ckpt = tmp_path / "run.ckpt"
    _interrupted(Projector(geom, backend="torch"), y, ckpt)
    shifted = Projector(dataclasses.replace(geom, center_offset=0.5), backend="torch")
    with pytest.raises(ValueError, match=r"differs in: geometry"):
        reconstruct(shifted, y, prior=FakePrior("aaa"), checkpoint=ckpt, **KW)


def test_checkpoint_kept_for_the_caller(problem, tmp_path):
    geom, y = problem
    ckpt = tmp_path / "run.ckpt"
    reconstruct(Projector(geom, backend="torch"), y, prior=FakePrior("aaa"), checkpoint=ckpt,
                remove_checkpoint=False, **KW)
    assert ckpt.exists()
