"""Bad input gives clear errors; a NaN during sampling names the step."""

import pytest
import torch

from tomodiff.operators import Mask, random_pixel_mask
from tomodiff.priors import GaussianPrior, karras_sigmas
from tomodiff.samplers import SamplingError, ddpm, pigdm, sample_posterior


@pytest.fixture
def problem():
    A = Mask(random_pixel_mask((4, 4), 0.5, generator=torch.Generator().manual_seed(0)))
    return A, GaussianPrior((1, 4, 4), 0.0, 1.0), torch.zeros(1, 1, 4, 4, dtype=torch.float64)


def test_y_not_in_range(problem):
    A, prior, _ = problem
    with pytest.raises(ValueError, match=r"y must have shape \(B, C, 4, 4\).*got \(1, 1, 5, 4\)"):
        sample_posterior(prior, A, torch.zeros(1, 1, 5, 4), sigma_y=0.1, steps=3, progress=False)


@pytest.mark.parametrize("kw,match", [({"sigma_y": -0.1, "steps": 3}, "sigma_y must be finite and >= 0"),
                                      ({"sigma_y": 0.1, "steps": 0}, "steps must be an integer >= 1"),
                                      ({"sigma_y": 0.1, "steps": 3, "n_samples": 0}, "n_samples"),
                                      ({"sigma_y": 0.1, "steps": 3, "method": "magic"}, "method must be one of"),
                                      ({"sigma_y": 0.1, "steps": 3, "zeta": 1.0}, "unknown option")])
def test_bad_arguments(problem, kw, match):
    A, prior, y = problem
    with pytest.raises((ValueError, TypeError), match=match):
        sample_posterior(prior, A, y, progress=False, **kw)


def test_wrong_shape_denoiser(problem):
    A, _, y = problem
    with pytest.raises(SamplingError, match=r"step 1 of 3.*shape \(1, 1, 2, 2\), expected.*\(1, 1, 4, 4\)"):
        sample_posterior(lambda x, s: x[..., :2, :2], A, y, sigma_y=0.1, steps=3, progress=False)


def test_nan_mid_sampling_names_the_step(problem):
    A, prior, y = problem

    def flaky(x, s):
        out = prior(x, s)
        return out * float("nan") if float(s.reshape(-1)[0]) < 1.0 else out

    sigmas = karras_sigmas(10)
    first_bad = int((sigmas[:-1] < 1.0).nonzero()[0]) + 1
    with pytest.raises(SamplingError, match=rf"step {first_bad} of 10 \(sigma=.*NaN"):
        ddpm(flaky, 80 * torch.randn(2, 1, 4, 4, dtype=torch.float64), sigmas, guidance=pigdm(A, y, 0.1),
             progress=False)


def test_bad_schedule_and_generators(problem):
    A, prior, y = problem
    with pytest.raises(ValueError, match="strictly decreasing"):
        ddpm(prior, torch.zeros(1, 1, 4, 4), torch.tensor([1.0, 2.0, 0.0]), progress=False)
    with pytest.raises(ValueError, match="2 generators for n_samples=3"):
        sample_posterior(prior, A, y, sigma_y=0.1, steps=2, n_samples=3,
                         generator=[torch.Generator(), torch.Generator()], progress=False)
