"""DiffPIR (HQS with a CG proximal data step): exact for Gaussian priors at λ = 1, clear on bad input.

1. the guided denoiser equals the closed-form E[x0 | x_t, y] at every step (deterministic, 1e-8);
2. ddpm + diffpir(λ=1) samples: mean vs the closed-form posterior mean (Mahalanobis χ²_d), per-pixel
   variance vs the sampler's exact finite-step law (tolerances from the sample count, α = 1e-3);
3. λ ≠ 1 is not the posterior (the same check fails);
4. CG at its iteration limit warns with the residual reached and stays finite;
5. σ_y = 0 (the documented noiseless path) makes A x̂0' = y exactly on a mask.
"""

import warnings

import pytest
import torch

from tomodiff.operators import Mask, random_pixel_mask
from tomodiff.priors import karras_sigmas
from tomodiff.samplers import CGWarning, StepContext, ddpm, diffpir

# the same Gaussian prior and problems as the ΠGDM closed-form tests
from .test_pigdm_exact import N_SAMPLES, SHAPE, SIGMA_Y, VAR, _closed_form_conditional_mean, _problem


def test_data_step_is_the_exact_conditional_mean(helpers):
    A = helpers.ct_like()
    prior, y, post = _problem(A)
    guide = diffpir(A, y, SIGMA_Y, lam=1.0, data_var=VAR, cg_tol=1e-12, cg_max_iter=500)
    g = torch.Generator().manual_seed(1)
    for sigma in (20.0, 2.0, 0.3, 0.01):
        x_t = post.mean.reshape(1, *SHAPE) + sigma * torch.randn((4, *SHAPE), generator=g, dtype=torch.float64)
        x0 = prior(x_t, torch.full((4,), sigma, dtype=torch.float64))
        out = x0 + guide(StepContext(0, 1, x_t, x0, sigma, 0.0, 1.0))
        exact = _closed_form_conditional_mean(post, x_t, sigma)
        err = float((out - exact).abs().max() / exact.abs().max())
        assert err < 1e-8, f"σ={sigma}: diffpir data step differs from E[x0|x_t,y] by {err:.2e}"


def _samples(A, y, prior, lam, steps=50, seed=5):
    x_T = 80.0 * torch.randn((N_SAMPLES, *SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    sigmas = karras_sigmas(steps)
    out = ddpm(prior, x_T, sigmas, guidance=diffpir(A, y, SIGMA_Y, lam=lam, data_var=VAR, cg_tol=1e-8,
                                                     cg_max_iter=200),
               generator=torch.Generator().manual_seed(seed + 1), progress=False)
    return out.reshape(N_SAMPLES, -1), sigmas


def test_diffpir_samples_the_closed_form_posterior(helpers):
    A = helpers.ct_like()
    prior, y, post = _problem(A)
    samples, sigmas = _samples(A, y, prior, lam=1.0)
    law = helpers.law_covariance(post.cov, sigmas, kind="ddpm")
    tol = helpers.mc_tolerances(law, N_SAMPLES)
    err = helpers.moment_errors(samples, post.mean.reshape(-1), law)
    assert err.mean < tol.mean, f"sample mean off the closed-form posterior mean: χ² {err.mean:.1f} > {tol.mean:.1f}"
    assert err.var_pixel < tol.var_pixel, f"per-pixel variance error {err.var_pixel:.3f} > {tol.var_pixel:.3f}"
    assert err.var_avg < tol.var_avg, f"average variance error {err.var_avg:.4f} > {tol.var_avg:.4f}"


def test_other_lambda_is_not_the_posterior(helpers):
    A = Mask(random_pixel_mask((8, 8), 0.5, generator=torch.Generator().manual_seed(3)))
    prior, y, post = _problem(A)
    samples, sigmas = _samples(A, y, prior, lam=5.0)
    law = helpers.law_covariance(post.cov, sigmas, kind="ddpm")
    tol = helpers.mc_tolerances(law, N_SAMPLES)
    err = helpers.moment_errors(samples, post.mean.reshape(-1), law)
    assert err.mean > 10 * tol.mean or err.var_avg > 3 * tol.var_avg


def test_cg_limit_warns_with_residual_and_stays_finite(helpers):
    A = helpers.ct_like()
    prior, y, _ = _problem(A)
    guide = diffpir(A, y, 0.01, data_var=VAR, cg_tol=1e-14, cg_max_iter=1)
    x_T = 80.0 * torch.randn((3, *SHAPE), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.warns(CGWarning, match=r"did not reach tol=1e-14 in 1 iterations at step 1 of 5 \(relative residual"):
        out = ddpm(prior, x_T, karras_sigmas(5), guidance=guide, generator=torch.Generator().manual_seed(1),
                   progress=False)
    assert torch.isfinite(out).all() and guide.worst_residual > 1e-14


def test_noiseless_path_fits_the_data_exactly():
    A = Mask(random_pixel_mask((8, 8), 0.5, generator=torch.Generator().manual_seed(0)))
    y = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.float64) * A.mask
    guide = diffpir(A, y, 0.0, cg_tol=1e-12)
    x0 = torch.zeros((2, *SHAPE), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = x0 + guide(StepContext(0, 1, x0, x0, 1.0, 0.5, 0.5))
    torch.testing.assert_close(A(out), y.expand(2, -1, -1, -1), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kw,match", [({"lam": 0.0}, "lam must be finite and > 0"),
                                      ({"cg_max_iter": 0}, "cg_max_iter"),
                                      ({"data_var": -1.0}, "data_var")])
def test_bad_arguments(kw, match, helpers):
    A = helpers.ct_like()
    with pytest.raises(ValueError, match=match):
        diffpir(A, torch.zeros(1, 1, 40, dtype=torch.float64), 0.1, **kw)
