"""Warm starts (CCDF / ISCS) and the final data-consistency step of sample_posterior."""

import pytest
import torch

from tomodiff.operators import Mask, random_pixel_mask
from tomodiff.priors import GaussianPrior
from tomodiff.samplers import sample_posterior


@pytest.fixture
def problem():
    A = Mask(random_pixel_mask((6, 6), 0.5, generator=torch.Generator().manual_seed(0)))
    y = A(torch.full((1, 1, 6, 6), 0.5, dtype=torch.float64))
    return A, GaussianPrior((1, 6, 6), 0.0, 1.0), y


def test_warm_start_runs_from_sigma_start(problem):
    A, prior, y = problem
    x_init = torch.full((1, 1, 6, 6), 0.4, dtype=torch.float64)
    seen = []
    r = sample_posterior(prior, A, y, method="dds", sigma_y=0.05, steps=7, x_init=x_init, sigma_start=0.3,
                         callback=lambda info: seen.append(info["sigma"]), progress=False,
                         generator=torch.Generator().manual_seed(0))
    assert r.nfe == 7 and seen[0] == pytest.approx(0.3) and float(r.sigmas[0]) == pytest.approx(0.3)
    # started near x_init: a tiny σ_start barely moves unobserved pixels away from it
    r2 = sample_posterior(prior, A, y, method="dds", sigma_y=0.05, steps=3, x_init=x_init, sigma_start=0.01,
                          progress=False, generator=torch.Generator().manual_seed(0))
    hidden = A.mask == 0
    assert (r2.samples[0, 0, 0][hidden] - 0.4).abs().max() < 0.05


@pytest.mark.parametrize("kw,match", [
    ({"x_init": torch.zeros(1, 1, 5, 6), "sigma_start": 1.0}, r"warm start x_init has shape \(1, 1, 5, 6\), expected \(1, 1, 6, 6\)"),
    ({"x_init": torch.zeros(1, 1, 6, 6)}, "warm start needs sigma_start > 0"),
    ({"sigma_start": 1.0}, "sigma_start needs a warm start"),
    ({"final_cg": -1}, "final_cg must be an integer >= 0"),
])
def test_bad_warm_starts(problem, kw, match):
    A, prior, y = problem
    with pytest.raises(ValueError, match=match):
        sample_posterior(prior, A, y, method="pigdm", sigma_y=0.05, steps=3, progress=False, **kw)


def test_final_cg_lowers_the_data_residual(problem):
    A, prior, y = problem
    kw = dict(method="pigdm", sigma_y=0.2, steps=5, n_samples=3, progress=False)
    a = sample_posterior(prior, A, y, generator=torch.Generator().manual_seed(0), **kw).samples
    b = sample_posterior(prior, A, y, generator=torch.Generator().manual_seed(0), final_cg=2, **kw).samples
    ra = (A(a.reshape(3, 1, 6, 6)) - y).flatten(1).norm(dim=1)
    rb = (A(b.reshape(3, 1, 6, 6)) - y).flatten(1).norm(dim=1)
    assert (rb <= ra + 1e-12).all() and (rb < 0.5 * ra).all()
