"""dds, diffpir, sdedit and pigdm at their registry defaults end with the final data step that stops at
χ²/m 1 (issue 20): every sample fits the data to the noise level, not worse and not (much) better."""

import numpy as np
import pytest
import torch

from tomodiff import methods
from tomodiff.ct import Projector, parallel_beam
from tomodiff.operators import GaussianNoise, simulate
from tomodiff.recon import reconstruct

SIGMA_Y = 0.05


def gaussian_denoiser(mean=0.3, var=0.05):
    """Exact denoiser of N(mean, var·I): D(x, σ) = m + v/(v + σ²)(x − m)."""

    def D(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return mean + var / (var + s * s) * (x - mean)

    return D


@pytest.fixture(scope="module")
def problem():
    Z, N = 4, 16
    geom = parallel_beam((Z, N, N), np.linspace(0, np.pi, 6, endpoint=False), det_shape=(Z, 24))
    A = Projector(geom, backend="torch")
    zz, yy, xx = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in (Z, N, N)), indexing="ij")
    x = ((xx**2 + yy**2 + 0.5 * zz**2) < 0.6).float()[None, None]
    y = simulate(A, x, GaussianNoise(SIGMA_Y), generator=torch.Generator().manual_seed(0))
    return A, x, y


@pytest.mark.parametrize("method", ["dds", "diffpir", "sdedit", "pigdm"])
def test_defaults_stop_at_the_noise_level(problem, method):
    A, x, y = problem
    opts = methods.get(method).options
    assert opts["final_target"] == 1.0 and opts["final_cg"] >= 10
    r = reconstruct(A, y, method=method, prior=gaussian_denoiser(), steps=4, n_samples=2, sigma_y=SIGMA_Y,
                    keep_samples=True, progress=False, seed=0)
    m = y[0].numel()
    chi2 = [float((A(s) - y).pow(2).sum()) / (m * SIGMA_Y**2) for s in r.samples]
    # each sample's final step ends at χ²/m 1 (float32 projector: to 1e-3), or the sample already fitted better
    assert all(c <= 1.0 + 1e-3 for c in chi2), chi2
    assert any(c == pytest.approx(1.0, abs=1e-3) for c in chi2), chi2
    assert float(r.provenance["options"]["final_target"]) == 1.0
    # without the final step the same run fits the data worse: the step did the work
    r0 = reconstruct(A, y, method=method, prior=gaussian_denoiser(), steps=4, n_samples=2, sigma_y=SIGMA_Y,
                     keep_samples=True, progress=False, seed=0, final_cg=0)
    chi2_0 = [float((A(s) - y).pow(2).sum()) / (m * SIGMA_Y**2) for s in r0.samples]
    assert max(chi2_0) > 1.0 + 1e-3, chi2_0


def test_the_warm_starts_are_classical_reconstructions():
    for name in ("dds", "diffpir", "pigdm"):
        assert methods.get(name).options["x_init"] == "tv" and methods.get(name).options["sigma_start"] == 0.1
    assert methods.get("sdedit").options["x_init"] == "tv"       # SDEdit still noises a classical estimate
