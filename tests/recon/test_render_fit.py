"""Reconstructions through the emission–absorption renderer: the TV fit, DPS with a per-channel prior,
and reconstruct()'s route to them."""

import math

import pytest
import torch

from tomodiff.recon import reconstruct
from tomodiff.recon.render_fit import fit_dps, fit_tv, per_channel, smooth_tv
from tomodiff.render import EmissionAbsorption, orbit

SHAPE = (8, 8, 8)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _blob():
    """A smooth ball: absorption up to 1, emission its square (per world unit, voxel 0.25)."""
    c = torch.arange(8, dtype=torch.float32) - 3.5
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    v = torch.exp(-(x * x + y * y + z * z) / 6.0)
    return torch.stack([v * v, v])[None]


@pytest.fixture(scope="module")
def problem():
    R = EmissionAbsorption(SHAPE, orbit([2 * math.pi * k / 6 for k in range(6)], elevation=0.3), voxel_size=0.25,
                           background=1.0)
    truth = _blob()
    with torch.no_grad():
        y = R(truth)
    return R, truth, y


def _misfit(R, x, y):
    with torch.no_grad():
        return float((R(x) - y).norm() / y.norm())


def test_tv_fit_explains_the_images_and_keeps_the_volume_non_negative(problem):
    R, _, y = problem
    x = fit_tv(R, y, lam=1e-4, n_iter=150, lr=0.05)
    assert x.shape == (1, 2, *SHAPE) and (x >= 0).all()
    assert _misfit(R, x, y) < 0.1 * _misfit(R, torch.zeros_like(x), y)
    steps = []
    fit_tv(R, y, n_iter=3, callback=lambda k, x: steps.append(k))
    assert steps == [1, 2, 3]


def test_smooth_tv_is_zero_on_constants_and_differentiable():
    x = torch.full((1, 2, 3, 4, 5), 0.7, dtype=torch.float64, requires_grad=True)
    assert float(smooth_tv(x, 1e-3).detach().abs().max()) < 1e-12
    z = torch.rand(1, 2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: smooth_tv(v, 1e-2), (z,))


def test_per_channel_denoises_each_channel_on_its_own():
    seen = []

    def D(x, sigma):
        seen.append((tuple(x.shape), sigma.tolist()))
        return 2 * x

    x = torch.rand(3, 2, 4, 5, 6)
    out = per_channel(D)(x, torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(out, 2 * x)
    assert seen == [((6, 1, 4, 5, 6), [1.0, 1.0, 2.0, 2.0, 3.0, 3.0])]


def _gaussian_denoiser(x, sigma):
    """The exact denoiser of a N(0.3, 0.1²) prior per voxel."""
    s2 = sigma.view(-1, *([1] * (x.dim() - 1))) ** 2
    return (0.01 * x + s2 * 0.3) / (0.01 + s2)


def test_dps_guidance_moves_samples_towards_the_data(problem):
    R, _, y = problem
    guided, nfe = fit_dps(R, y, _gaussian_denoiser, steps=15, zeta=0.3, n_samples=2, sigma_max=1.0, seed=3)
    free, _ = fit_dps(R, y, _gaussian_denoiser, steps=15, zeta=0.0, n_samples=2, sigma_max=1.0, seed=3)
    assert guided.shape == (2, 1, 2, *SHAPE) and nfe == 15 and (guided >= 0).all()
    assert _misfit(R, guided[0], y) < 0.5 * _misfit(R, free[0], y)
    again, _ = fit_dps(R, y, _gaussian_denoiser, steps=15, zeta=0.3, n_samples=2, sigma_max=1.0, seed=3)
    assert torch.equal(again, guided)  # a seed gives the same samples
    assert not torch.equal(guided[0], guided[1])  # each sample draws its own noise


def test_line_step_stops_at_the_noise_level_when_sigma_y_is_known(problem):
    """The default DPS step (line search, stop at χ²/m 1) reaches but does not pass the noise: with σ_y given,
    the result's χ²/m lands on 1; without σ_y (no stop) the same run fits past the noise."""
    R, truth, clean = problem
    sigma_y = 0.02 * float(clean.max())
    y = clean + sigma_y * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))

    def chi2(x):
        with torch.no_grad():
            return float(((R(x) - y) / sigma_y).pow(2).mean())

    kw = dict(steps=8, zeta=1.5, variant="line", sigma_max=0.3, seed=2)
    stopped, _ = fit_dps(R, y, _gaussian_denoiser, sigma_y=sigma_y, target=1.0, **kw)
    free, _ = fit_dps(R, y, _gaussian_denoiser, **kw)
    assert abs(chi2(stopped[0]) - 1.0) < 0.01  # measured 0.9999; without the stop 0.964
    assert chi2(free[0]) < chi2(stopped[0])


def test_reconstruct_routes_a_renderer_to_its_fits(problem):
    R, _, y = problem
    r = reconstruct(R, y, method="tv", lam=1e-4, n_iter=60, lr=0.05, progress=False)
    assert r.mean.shape == (1, 2, *SHAPE) and r.std is None and r.nfe == 0
    assert r.residual < 0.2 and r.provenance["method"] == "tv"
    assert r.provenance["geometry"]["kind"] == "render" and r.provenance["geometry"]["background"] == 1.0
    d = reconstruct(R, y, method="dps", prior=_gaussian_denoiser, steps=5, n_samples=2, sigma_max=1.0,
                    keep_samples=True, sigma_y=0.01, progress=False)
    assert d.samples.shape == (2, 1, 2, *SHAPE) and d.std.shape == (1, 2, *SHAPE) and d.nfe == 5
    assert "chi2_per_m" in d.provenance["data_consistency"]
    assert d.provenance["options"]["x_init"] == repr("tv")  # warm-started from the TV fit by default
    cold = reconstruct(R, y, method="dps", prior=_gaussian_denoiser, steps=3, sigma_max=1.0, x_init=None,
                       progress=False)
    assert cold.provenance["options"]["sigma_start"] == "None" and cold.nfe == 3


@pytest.mark.parametrize("kw, error, match", [
    ({"method": "fbp"}, ValueError, "does not apply to a renderer"),
    ({"method": "dps"}, ValueError, "needs a prior"),
])
def test_reconstruct_refuses_what_a_renderer_cannot_do(problem, kw, error, match):
    R, _, y = problem
    with pytest.raises(error, match=match):
        reconstruct(R, y, progress=False, **kw)


def test_images_with_two_channels_are_refused(problem):
    R, _, y = problem
    with pytest.raises(ValueError, match="one channel"):
        reconstruct(R, y.repeat(1, 2, 1, 1, 1), method="tv", progress=False)
    with pytest.raises(ValueError, match="scale must be"):
        fit_tv(R, y, scale=(1.0, -1.0), n_iter=1)
