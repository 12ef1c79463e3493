"""Unconditional moments, determinism, batch independence, DPS on a GMM (reported), SDEdit, loss guidance."""

import math

import pytest
import torch

from tomodiff.operators import (BeerLambert, GaussianBlur, GaussianNoise, Mask, PoissonNoise, box_mask,
                                random_pixel_mask, simulate)
from tomodiff.priors import GaussianMixturePrior, GaussianPrior, karras_sigmas
from tomodiff.samplers import ddim, ddpm, dps, loss_guidance, pigdm, sample_posterior, sdedit


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_unconditional_gaussian_matches_the_sampler_law(kind, helpers):
    """Diagonal Gaussian prior: mean within MC error of the prior mean; variance of the finite-step law."""
    var = torch.linspace(0.05, 1.0, 16, dtype=torch.float64).reshape(1, 4, 4)
    prior = GaussianPrior((1, 4, 4), 0.3, var)
    n, sigmas = 4000, karras_sigmas(100)
    x_T = 80.0 * torch.randn((n, 1, 4, 4), generator=_gen(0), dtype=torch.float64)
    run = ddpm if kind == "ddpm" else ddim
    out = run(prior, x_T, sigmas, generator=_gen(1), progress=False).reshape(n, -1)
    law_var, _ = helpers.step_law(prior.var.reshape(-1), sigmas, kind=kind)
    cov = torch.diag(law_var)
    tol = helpers.mc_tolerances(cov, n)
    err = helpers.moment_errors(out, prior.mean.reshape(-1), cov)
    gap = float((law_var / prior.var.reshape(-1) - 1).abs().max())
    print(f"\n{kind}: mean χ² {err.mean:.1f} (tol {tol.mean:.1f}); var {err.var_pixel:.3f} (tol {tol.var_pixel:.3f}); "
          f"law vs prior variance gap {gap:.3f}")
    assert err.mean < tol.mean and err.var_pixel < tol.var_pixel and err.var_avg < tol.var_avg


def _gmm():
    means = torch.tensor([[-2.0, 0.0], [1.5, 1.5], [2.0, -2.0]], dtype=torch.float64).reshape(3, 1, 1, 2)
    return GaussianMixturePrior([0.5, 0.3, 0.2], means, torch.tensor([0.3, 0.5, 0.2]))


def test_unconditional_gmm_mean_and_variance():
    """GMM: mean and variance per coordinate within MC error (4th moments computed exactly).

    Deterministic DDIM at 300 steps: its O(1/steps) variance deficit (about 2% of the component
    variances, see the Gaussian law test) is well below the MC error of 8000 samples."""
    prior = _gmm()
    n = 8000
    x_T = 80.0 * torch.randn((n, 1, 1, 2), generator=_gen(0), dtype=torch.float64)
    out = ddim(prior, x_T, karras_sigmas(300), generator=_gen(1), progress=False).reshape(n, -1)
    m, v = prior.mean.reshape(-1), prior.variance.reshape(-1)
    w, mu, s2 = prior.weights, prior.means.reshape(3, -1), prior.var.reshape(3, -1)
    delta = mu - m
    mu4 = (w[:, None] * (delta**4 + 6 * delta**2 * s2 + 3 * s2**2)).sum(0)   # central 4th moment
    z = 3.29  # two-sided 1e-3
    se_mean, se_var = (v / n).sqrt(), ((mu4 - v**2) / n).sqrt()
    dm, dv = (out.mean(0) - m).abs(), (out.var(0) - v).abs()
    print(f"\nGMM: |Δmean|/SE {(dm / se_mean).tolist()}, |Δvar|/SE {(dv / se_var).tolist()}")
    assert (dm < z * se_mean).all() and (dv < z * se_var).all()


def _problem(seed=0):
    A = Mask(random_pixel_mask((4, 4), 0.5, generator=_gen(seed)))
    prior = GaussianPrior((1, 4, 4), 0.0, 1.0)
    y = simulate(A, prior.sample(2, generator=_gen(seed + 1)), GaussianNoise(0.05), generator=_gen(seed + 2))
    return A, prior, y


@pytest.mark.parametrize("method,opts", [("pigdm", {}), ("dps", {"zeta": 0.5}), ("dds", {}),
                                         ("sdedit", {"t0": 0.6}), ("none", {})])
def test_same_seed_same_result_and_batch_equals_single_runs(method, opts):
    A, prior, y = _problem()
    kw = dict(method=method, sigma_y=0.05, steps=12, progress=False, **opts)
    a = sample_posterior(prior, A, y, n_samples=3, generator=[_gen(10), _gen(11), _gen(12)], **kw)
    b = sample_posterior(prior, A, y, n_samples=3, generator=[_gen(10), _gen(11), _gen(12)], **kw)
    assert torch.equal(a.samples, b.samples)
    assert a.samples.shape == (3, 2, 1, 4, 4) and a.mean.shape == (2, 1, 4, 4) and a.nfe == (8 if method == "sdedit" else 12)  # sdedit runs ceil(0.6·12)
    for k in range(3):
        single = sample_posterior(prior, A, y, n_samples=1, generator=_gen(10 + k), **kw)
        torch.testing.assert_close(single.samples[0], a.samples[k], rtol=1e-10, atol=1e-12)


def test_ddim_eta_one_is_ddpm():
    A, prior, y = _problem()
    x_T = 80.0 * torch.randn((5, 1, 4, 4), generator=_gen(0), dtype=torch.float64)
    g = pigdm(A, y[:1], 0.05)
    a = ddpm(prior, x_T, karras_sigmas(15), guidance=g, generator=_gen(1), progress=False)
    b = ddim(prior, x_T, karras_sigmas(15), eta=1.0, guidance=g, generator=_gen(1), progress=False)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_dps_on_gmm_reports_error_and_uses_the_data():
    """DPS is not exact: report its posterior-mean error; assert only that it beats the prior mean."""
    torch.manual_seed(0)
    K, shape = 4, (1, 6, 6)
    means = torch.randn((K, *shape), generator=_gen(0), dtype=torch.float64)
    prior = GaussianMixturePrior(torch.ones(K), means, torch.full((K,), 0.1))
    A = GaussianBlur((6, 6), 1.0)
    x = prior.sample(1, generator=_gen(1))
    y = simulate(A, x, GaussianNoise(0.05), generator=_gen(2))
    exact = prior.posterior_mean(A, y, 0.05)
    res = {}
    for method, opts in [("dps", {"zeta": 0.3}), ("pigdm", {})]:
        r = sample_posterior(prior, A, y, method=method, sigma_y=0.05, steps=100, n_samples=64, generator=_gen(3),
                             progress=False, **opts)
        res[method] = float((r.mean - exact).norm() / exact.norm())
    prior_err = float((prior.mean - exact).norm() / exact.norm())
    print(f"\nGMM 6x6 blur: relative posterior-mean error dps {res['dps']:.3f}, pigdm {res['pigdm']:.3f}, "
          f"prior mean {prior_err:.3f}")
    assert res["dps"] < prior_err and res["pigdm"] < prior_err


def test_dps_nonlinear_poisson_reduces_the_data_misfit():
    A = BeerLambert(GaussianBlur((4, 4), 1.0), i0=200.0)
    prior = GaussianPrior((1, 4, 4), 0.5, 0.1)
    x = prior.sample(1, generator=_gen(0)).clamp_min(0)
    y = simulate(A, x, PoissonNoise(1.0), generator=_gen(1))
    x_T = 80.0 * torch.randn((8, 1, 4, 4), generator=_gen(2), dtype=torch.float64)
    unguided = ddpm(prior, x_T, karras_sigmas(40), generator=_gen(3), progress=False)
    guided = ddpm(prior, x_T, karras_sigmas(40), guidance=dps(A, y, 0.05, noise=PoissonNoise(1.0)),
                  generator=_gen(3), progress=False)
    nll = PoissonNoise(1.0).nll
    assert nll(y.expand(8, -1, -1, -1), A(guided)).mean() < nll(y.expand(8, -1, -1, -1), A(unguided)).mean()


def test_loss_guidance_pushes_and_guidances_sum():
    prior = GaussianPrior((1, 4, 4), 0.0, 1.0)
    x_T = 80.0 * torch.randn((200, 1, 4, 4), generator=_gen(0), dtype=torch.float64)
    run = lambda g: ddpm(prior, x_T, karras_sigmas(20), guidance=g, generator=_gen(1), progress=False)  # noqa: E731
    push = loss_guidance(lambda x0: -x0.sum(dim=(1, 2, 3)), 0.05)   # favour larger values
    base, pushed, twice = run(None), run(push), run([push, push])
    assert pushed.mean() > base.mean() + 0.1
    assert twice.mean() > pushed.mean() + 0.1


def test_sdedit_small_t0_stays_near_the_start():
    prior = GaussianPrior((1, 4, 4), 0.0, 1.0)
    x_init = torch.full((3, 1, 4, 4), 0.7, dtype=torch.float64)
    out = sdedit(prior, x_init, 0.05, karras_sigmas(100), generator=_gen(0), progress=False)
    assert (out - x_init).abs().max() < 0.1
    far = sdedit(prior, x_init, 1.0, karras_sigmas(100), generator=_gen(0), progress=False)
    assert (far - x_init).abs().mean() > 0.3
