"""Schedules, VP adapters and analytic priors."""

import math

import pytest
import torch

from tomodiff.operators import GaussianBlur, Mask, random_pixel_mask
from tomodiff.priors import (GaussianMixturePrior, GaussianPrior, VPDenoiser, alphas_cumprod_to_sigmas,
                             ddpm_alphas_cumprod, ddpm_cosine_sigmas, ddpm_linear_sigmas, karras_sigmas)


@pytest.mark.parametrize("fn", [karras_sigmas, ddpm_linear_sigmas, ddpm_cosine_sigmas])
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_schedules_decrease_to_zero(fn, n):
    s = fn(n)
    assert s.shape == (n + 1,) and s[-1] == 0 and (s[1:] < s[:-1]).all()


def test_schedule_values_and_errors():
    s = karras_sigmas(10, 0.01, 50.0)
    assert math.isclose(float(s[0]), 50.0) and math.isclose(float(s[-2]), 0.01)
    ac = ddpm_alphas_cumprod(1000, "linear")
    assert math.isclose(float(ac[0]), 1 - 1e-4)
    lin = ddpm_linear_sigmas(1000)
    torch.testing.assert_close(lin[:-1].flip(0), alphas_cumprod_to_sigmas(ac))   # n = T hits the grid
    with pytest.raises(ValueError, match=">= 1"):
        karras_sigmas(0)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_vp_adapters_recover_the_exact_denoiser(prediction):
    """An exact VP network built from the analytic Gaussian denoiser, wrapped back, is that denoiser."""
    prior = GaussianPrior((1, 3, 3), 0.4, 0.7)
    ac = ddpm_alphas_cumprod(50, "cosine")
    grid = alphas_cumprod_to_sigmas(ac)

    def net(x_vp, t):  # t is fractional: use the same log-interpolated sigma the adapter used
        s = VPDenoiser(lambda *a: None, ac).sigmas
        ls = s.log()
        lo = t.floor().long().clamp(max=len(s) - 2)
        sig = (ls[lo] * (1 - (t - lo)) + ls[lo + 1] * (t - lo)).exp().to(x_vp).reshape(-1, 1, 1, 1)
        a = 1 / (1 + sig**2)
        x = x_vp / a.sqrt()
        x0 = prior(x, sig)
        eps = (x - x0) / sig
        return {"eps": eps, "x0": x0, "v": a.sqrt() * eps - (1 - a).sqrt() * x0}[prediction]

    D = VPDenoiser(net, ac, prediction=prediction)
    x = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    sig = torch.stack([grid[3], grid[10], grid[25], (grid[30] * grid[31]).sqrt()])
    torch.testing.assert_close(D(x, sig), prior(x, sig), rtol=1e-9, atol=1e-9)


def test_gaussian_posterior_dense_equals_cg_and_precision_form():
    prior = GaussianPrior((1, 5, 5), 0.3, torch.linspace(0.2, 1.0, 25).reshape(1, 5, 5))
    A = GaussianBlur((5, 5), 1.0, boundary="reflect")
    y = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    dense, cg = prior.posterior(A, y, 0.1, method="dense"), prior.posterior(A, y, 0.1, method="cg")
    torch.testing.assert_close(dense.mean, cg.mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(dense.variance, cg.variance, rtol=1e-8, atol=1e-8)
    from tomodiff.priors import dense_matrix
    M = dense_matrix(A, (1, 5, 5))
    prec = torch.diag(1 / prior.var.reshape(-1)) + M.T @ M / 0.01
    cov = torch.linalg.inv(prec)
    mean = (cov @ ((prior.mean / prior.var).reshape(-1, 1) + M.T @ y.reshape(2, -1).T / 0.01)).T
    torch.testing.assert_close(dense.mean.reshape(2, -1), mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(dense.cov, cov, rtol=1e-8, atol=1e-10)


def test_gmm_denoiser_is_tweedie_of_the_smoothed_density():
    """D(x, σ) = x + σ² ∇ log p_σ(x), with p_σ the mixture convolved with N(0, σ²) (autograd reference)."""
    g = torch.Generator().manual_seed(0)
    means = torch.randn(3, 1, 2, 2, generator=g, dtype=torch.float64)
    var = torch.rand(3, 1, 2, 2, generator=g, dtype=torch.float64) + 0.1
    prior = GaussianMixturePrior([0.2, 0.5, 0.3], means, var)
    x = torch.randn(5, 1, 2, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    sigma = 0.7
    comp = torch.distributions.Normal(means.reshape(1, 3, -1), (var.reshape(1, 3, -1) + sigma**2).sqrt())
    logp = torch.logsumexp(comp.log_prob(x.reshape(5, 1, -1)).sum(-1) + prior.weights.log(), dim=1).sum()
    (score,) = torch.autograd.grad(logp, x)
    torch.testing.assert_close(prior(x.detach(), sigma), x.detach() + sigma**2 * score, rtol=1e-10, atol=1e-10)


def test_gmm_posterior_mean_with_one_component_is_gaussian():
    prior = GaussianPrior((1, 4, 4), 0.2, 0.5)
    gmm = GaussianMixturePrior([1.0], prior.mean[None], [0.5])
    A = Mask(random_pixel_mask((4, 4), 0.5, generator=torch.Generator().manual_seed(1)))
    y = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(gmm.posterior_mean(A, y, 0.1), prior.posterior(A, y, 0.1).mean)


def test_gaussian_prior_sample_moments():
    prior = GaussianPrior((1, 2, 2), 1.0, 0.25)
    s = prior.sample(20000, generator=torch.Generator().manual_seed(0))
    assert (s.mean(0) - 1.0).abs().max() < 4 * math.sqrt(0.25 / 20000)
