"""The final data-consistency step that stops at χ²/m = target (samplers/discrepancy.py, issue 20)."""

import pytest
import torch

from tomodiff.priors import GaussianPrior
from tomodiff.samplers import sample_posterior
from tomodiff.samplers.discrepancy import discrepancy_cg
from tomodiff.samplers.posterior import final_data_step

from .conftest import ct_like


def _chi2(A, x, y, sigma_y):
    r = A(x) - y.repeat(x.shape[0] // y.shape[0], *([1] * (y.dim() - 1)))
    return r.pow(2).flatten(1).sum(1) / (y[0].numel() * sigma_y**2)


@pytest.fixture
def problem():
    A = ct_like((8, 8), n_rows=40, seed=1)
    g = torch.Generator().manual_seed(0)
    x_true = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64)
    clean = A(x_true)
    sigma_y = 0.02 * float(clean.abs().max())
    y = clean + sigma_y * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    # starts far from the data: χ²/m 40–100
    x = x_true + 0.5 * torch.randn((3, 1, 8, 8), generator=g, dtype=torch.float64)
    return A, y, sigma_y, x


@pytest.mark.parametrize("target", [1.0, 2.5])
def test_stops_exactly_at_the_target(problem, target):
    A, y, sigma_y, x = problem
    assert (_chi2(A, x, y, sigma_y) > 20).all()
    assert (_chi2(A, final_data_step(A, y, x, 25), y, sigma_y) < 0.9 * target).all()  # the noise level is reachable
    z, info = discrepancy_cg(A, y, x, sigma_y, target=target, max_iter=100, return_info=True)
    chi2 = _chi2(A, z, y, sigma_y)
    assert torch.allclose(chi2, torch.full_like(chi2, target), rtol=1e-6)
    assert torch.allclose(info["chi2_per_m"], chi2, rtol=1e-8)
    # it stopped early, before the least-squares fit that goes below the noise level
    assert (info["iterations"] < 25).all() and (info["iterations"] >= 1).all()


def test_a_sample_that_already_fits_is_unchanged(problem):
    A, y, sigma_y, x = problem
    fitted = final_data_step(A, y, x[:1], 25)               # χ²/m well below 1
    assert _chi2(A, fitted, y, sigma_y) < 1
    batch = torch.cat([fitted, x[1:]])
    z, info = discrepancy_cg(A, y, batch, sigma_y, target=1.0, max_iter=100, return_info=True)
    assert torch.equal(z[0], fitted[0]) and int(info["iterations"][0]) == 0
    assert _chi2(A, z[1:], y, sigma_y) == pytest.approx(1.0, rel=1e-6)


def test_items_do_not_depend_on_the_batch(problem):
    A, y, sigma_y, x = problem
    z = discrepancy_cg(A, y, x, sigma_y, target=1.0, max_iter=100)
    for i in range(3):
        zi = discrepancy_cg(A, y, x[i:i + 1], sigma_y, target=1.0, max_iter=100)
        assert torch.allclose(z[i], zi[0], atol=1e-12, rtol=0)


def test_is_cg_on_the_normal_equations_before_the_stop(problem):
    A, y, sigma_y, x = problem
    # too few iterations to reach the target: the same iterates as final_data_step (CG on AᵀA x = Aᵀy)
    z, info = discrepancy_cg(A, y, x, sigma_y, target=1.0, max_iter=2, return_info=True)
    assert (info["chi2_per_m"] > 1).all() and (info["iterations"] == 2).all()
    assert torch.allclose(z, final_data_step(A, y, x, 2), atol=1e-10, rtol=1e-8)
    # noiseless: no discrepancy to stop at, all iterations run
    assert torch.allclose(discrepancy_cg(A, y, x, 0.0, max_iter=5), final_data_step(A, y, x, 5), atol=1e-10, rtol=1e-8)


def test_misfit_never_increases(problem):
    A, y, sigma_y, x = problem
    prev = _chi2(A, x, y, sigma_y)
    for k in range(1, 12):
        cur = _chi2(A, discrepancy_cg(A, y, x, sigma_y, target=1.0, max_iter=k), y, sigma_y)
        assert (cur <= prev * (1 + 1e-10)).all() and (cur >= 1 - 1e-6).all()
        prev = cur


@pytest.mark.parametrize("kw,match", [({"target": 0.0}, "target must be finite and > 0"),
                                      ({"max_iter": -1}, "max_iter must be an integer >= 0")])
def test_bad_arguments(problem, kw, match):
    A, y, sigma_y, x = problem
    with pytest.raises(ValueError, match=match):
        discrepancy_cg(A, y, x, sigma_y, **kw)


@pytest.mark.parametrize("method", ["dds", "diffpir", "pigdm", "sdedit"])
def test_sample_posterior_final_target(problem, method):
    """final_target stops every sample's final step at that χ²/m, for every method, sdedit included."""
    A, y, sigma_y, _ = problem
    prior = GaussianPrior((1, 8, 8), 0.5, 0.3)
    kw = dict(method=method, sigma_y=sigma_y, steps=4, n_samples=3, progress=False)
    if method == "pigdm":
        kw["jacobian"] = "gaussian"
    plain = sample_posterior(prior, A, y, generator=torch.Generator().manual_seed(0), **kw)
    stop = sample_posterior(prior, A, y, generator=torch.Generator().manual_seed(0), final_cg=100,
                            final_target=1.0, **kw)
    before = _chi2(A, plain.samples[:, 0], y, sigma_y)
    after = _chi2(A, stop.samples[:, 0], y, sigma_y)
    expected = torch.where(before > 1.0, torch.ones_like(before), before)
    assert torch.allclose(after, expected, rtol=1e-5)
    assert stop.options["final_target"] == 1.0


def test_sample_posterior_rejects_a_bad_final_target(problem):
    A, y, sigma_y, _ = problem
    with pytest.raises(ValueError, match="final_target must be None or a finite chi2/m > 0"):
        sample_posterior(GaussianPrior((1, 8, 8), 0.5, 0.3), A, y, method="sdedit", sigma_y=sigma_y, steps=2,
                         final_cg=5, final_target=-1.0, progress=False)
