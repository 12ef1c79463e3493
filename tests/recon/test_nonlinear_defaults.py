"""Diffusion defaults on a nonlinear operator (Beer–Lambert counts): the scale step and the TV warm start
need a linear operator, and say so instead of failing on a missing attribute."""

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.operators import BeerLambert
from tomodiff.priors import load
from tomodiff.recon import reconstruct


@pytest.fixture(scope="module")
def counts():
    geometry = parallel_beam((2, 32, 32), np.linspace(0, np.pi, 8, endpoint=False))
    A = BeerLambert(Projector(geometry), i0=1000.0)
    x = 0.05 * torch.rand(1, 1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    return A, A(x).detach()


def test_auto_scale_on_a_nonlinear_operator_is_a_clear_error(counts):
    A, y = counts
    with pytest.raises(ValueError, match="needs a linear operator.*BeerLambert"):
        reconstruct(A, y, method="dps", prior=load("slice-64"), steps=2, n_samples=1, sigma_y=1.0, progress=False)


def test_the_tv_warm_start_falls_back_to_sampling_from_noise_with_a_warning(counts):
    A, y = counts
    with pytest.warns(RuntimeWarning, match="warm start x_init='tv' needs a linear operator"):
        r = reconstruct(A, y, method="dps", prior=load("slice-64"), steps=2, n_samples=1, sigma_y=1.0,
                        scale=1.0, progress=False)
    assert r.mean.shape == (1, 1, 2, 32, 32) and bool(torch.isfinite(r.mean).all())
