"""The noise of line integrals (tomodiff.io.noise): the delta-method variance of −log(I/I0) against
Monte-Carlo Poisson counts, the gain fitted from flats, σ_y estimated from a sinogram, and errors."""

import numpy as np
import pytest
import torch

from tomodiff.io.noise import (CountNoise, count_noise, effective_sigma, estimate_sigma_y, line_integral_variance,
                               scan_variance, weights_from_variance, whitened_sigma)
from tomodiff.io.scans import RawScan, normalize

GAIN, DARK, READ = 2.5, 100.0, 3.0  # ADU per photon, dark offset (ADU), read noise std (ADU)


def _expected(n_f=2, n_d=3):
    """Noise-free readings: a beam of ~2000 photons with a smooth profile through an object of
    transmission 0.05..1; projections (4, 2, 16) ADU."""
    u = np.linspace(-1, 1, 16)
    photons = 2000.0 * np.exp(-u ** 2)[None, None] * np.ones((1, 2, 1))           # (1, V, U)
    trans = np.exp(-3.0 * np.linspace(0, 1, 4 * 2 * 16).reshape(4, 2, 16))          # 1 .. 0.05
    return GAIN * photons * trans + DARK, GAIN * photons + DARK, n_f, n_d


def _draw(rng, mean, n=None):
    """Readings g·Poisson(photons) + dark + read noise, for ``n`` frames of ``mean`` (or one per entry)."""
    shape = mean.shape if n is None else (n, *mean.shape[1:])
    photons = rng.poisson(np.broadcast_to((mean - DARK) / GAIN, shape))
    return (GAIN * photons + DARK + READ * rng.standard_normal(shape)).astype(np.float32)


def _scan(proj, flats, darks):
    return RawScan(projections=proj, flats=flats, darks=darks, angles=np.linspace(0, np.pi, proj.shape[0]),
                   source="test")


@pytest.mark.parametrize("n_f, n_d", [(1, 1), (4, 3), (0, 2)])
def test_variance_matches_monte_carlo_poisson(n_f, n_d):
    proj_mean, flat_mean, _, _ = _expected()
    rng = np.random.default_rng(0)
    trials = 3000
    p = np.empty((trials, *proj_mean.shape))
    for t in range(trials):  # new projections, flats and darks every time
        flats = _draw(rng, flat_mean, n_f) if n_f else np.zeros((0, 2, 16), np.float32)
        darks = (DARK + READ * rng.standard_normal((n_d, 2, 16))).astype(np.float32)
        p[t] = normalize(_scan(_draw(rng, proj_mean), flats, darks), clamp_gain=1e-3)
    empirical = p.var(axis=0, ddof=1)
    # the formula at the expected readings, with the true gain and read noise
    exact = _scan(proj_mean.astype(np.float32), np.repeat(flat_mean, n_f, 0).astype(np.float32),
                  np.full((n_d, 2, 16), DARK, np.float32))
    model = CountNoise(gain=GAIN, gain_rule="given", dark_variance=READ ** 2, n_flats=n_f, n_darks=n_d)
    var = line_integral_variance(exact, model=model)  # without flats: the projection's and darks' terms
    ratio = empirical / var
    # 3000 trials: each ray's variance within ±2.6% (1σ); the mean over 128 rays within ~0.3%
    assert abs(ratio.mean() - 1) < 0.02 and np.median(np.abs(ratio - 1)) < 0.05
    if n_f:  # leaving out the flats' term is visibly wrong: the test can tell
        no_flat = line_integral_variance(_scan(exact.projections, exact.flats[:0], exact.darks), model=model)
        assert abs((empirical / no_flat).mean() - 1) > 0.1 / n_f


def test_gain_from_several_flats_with_flicker():
    _, flat_mean, _, _ = _expected()
    rng = np.random.default_rng(1)
    big = np.repeat(np.repeat(flat_mean, 8, 1), 4, 2)                                # (1, 16, 64)
    flats = _draw(rng, big, 10) * (1 + 0.02 * rng.standard_normal(10))[:, None, None].astype(np.float32)
    darks = (DARK + READ * rng.standard_normal((5, 16, 64))).astype(np.float32)
    m = count_noise(_scan(np.ones((3, 16, 64), np.float32), flats, darks))
    assert m.gain_rule == "flats" and m.gain == pytest.approx(GAIN, rel=0.05)
    assert m.dark_variance == pytest.approx(READ ** 2, rel=0.1)
    assert count_noise(_scan(np.ones((3, 16, 64), np.float32), flats, darks), gain=4.0).gain == 4.0


def test_gain_from_one_flat_along_its_rows():
    rng = np.random.default_rng(2)
    u = np.linspace(-1, 1, 128)
    profile = DARK + GAIN * 3000.0 * np.exp(-u ** 2)[None, None] * np.ones((1, 32, 1))  # smooth beam
    flats = _draw(rng, profile, 1)
    darks = (DARK + READ * rng.standard_normal((1, 32, 128))).astype(np.float32)
    m = count_noise(_scan(np.ones((2, 32, 128), np.float32), flats, darks))
    assert m.gain_rule.startswith("flat (second difference") and m.gain == pytest.approx(GAIN, rel=0.1)
    assert m.dark_variance == pytest.approx(READ ** 2, rel=0.1)
    # a flat of identical frames has no scatter to fit: photon counts are assumed, and said so
    same = np.repeat(np.full((1, 32, 128), 1000.0, np.float32), 3, 0)
    assert count_noise(_scan(np.ones((2, 32, 128), np.float32), same, darks[:0])).gain_rule.startswith("assumed 1")


@pytest.mark.parametrize("order", [None, 2])
def test_sigma_from_a_smooth_phantom_sinogram(order):
    from scipy.ndimage import gaussian_filter
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    from tomodiff.ct import Projector, parallel_beam

    smooth = gaussian_filter(resize(shepp_logan_phantom(), (128, 128), anti_aliasing=True), 2.0)
    A = Projector(parallel_beam((128, 128), np.linspace(0, np.pi, 60, endpoint=False), det_shape=(192,)), "torch")
    y = A.forward(torch.as_tensor(smooth)[None, None])
    kw = {} if order is None else {"order": order}  # the default is order 3
    for frac in (0.01, 0.005) if order is None else (0.01,):
        sigma = frac * float(y.abs().max())
        noisy = y + sigma * torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=y.dtype)
        # measured: 1.01 and 1.03 (order 3), 1.06 at 1% (order 2; 1.12 at 0.5%)
        assert estimate_sigma_y(noisy, **kw) == pytest.approx(sigma, rel=0.1)
    if order is None:  # the assumed rule it replaces, 1% of max|y|, is 2x off at the second noise level
        assert 0.01 * float(noisy.abs().max()) > 1.9 * sigma
    # the signal's own second difference is what biases the estimate up (module docstring): a sharper
    # object at the same noise comes out higher
    sharp = A.forward(torch.as_tensor(resize(shepp_logan_phantom(), (128, 128), anti_aliasing=True))[None, None])
    noisy = sharp + sigma * torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=y.dtype)
    assert estimate_sigma_y(noisy, **kw) > 1.1 * sigma


def test_effective_and_whitened_sigma_and_weights():
    v = np.array([1.0, 4.0, 1.0, 1.0]) * 1e-4
    assert effective_sigma(v) == pytest.approx(np.sqrt(v.mean()))
    assert whitened_sigma(v) == pytest.approx((1 / v).mean() ** -0.5)
    w = weights_from_variance(v)
    assert w.mean() == pytest.approx(1.0) and w[1] == pytest.approx(w[0] / 4)
    assert np.allclose(w * v, whitened_sigma(v) ** 2)  # weighted noise has one variance
    dead = np.concatenate([np.full(999, 1e-4), [1e7]])  # a dead pixel's clipped ray does not set σ
    assert effective_sigma(dead) == pytest.approx(1e-2)


def test_scan_variance_follows_the_loaders_selection():
    proj_mean, flat_mean, _, _ = _expected()
    rng = np.random.default_rng(4)
    scan = _scan(np.repeat(_draw(rng, proj_mean), 2, 0), _draw(rng, flat_mean, 2),
                 (DARK + READ * rng.standard_normal((2, 2, 16))).astype(np.float32))
    assert scan_variance(scan).shape == (8, 2, 16)
    assert scan_variance(scan, thin=2, rows=slice(1, 2)).shape == (4, 1, 16)
    assert scan_variance(scan, rows=slice(0, 1), two_d=True).shape == (8, 16)
    assert scan_variance(_scan(scan.projections, scan.flats[:0], scan.darks)) is None


@pytest.mark.parametrize("call, msg", [
    (lambda: estimate_sigma_y(np.zeros((3, 8)), order=4), "order must be 1, 2 or 3"),
    (lambda: estimate_sigma_y(np.zeros((3, 3))), "at least 5 detector columns"),
    (lambda: estimate_sigma_y(np.array([[0.0, np.nan, 1, 2, 3]])), "NaN or Inf"),
    (lambda: effective_sigma([-1.0]), "finite and non-negative"),
    (lambda: effective_sigma([]), "non-empty"),
    (lambda: weights_from_variance([1.0, 0.0]), "finite and positive"),
    (lambda: whitened_sigma([np.inf]), "finite and positive"),
    (lambda: count_noise(_scan(np.ones((2, 2, 4), np.float32), np.ones((0, 2, 4), np.float32),
                               np.ones((0, 2, 4), np.float32)), gain=-1), "gain must be a positive number"),
    (lambda: line_integral_variance(_scan(np.ones((2, 2, 4), np.float32), np.ones((0, 2, 4), np.float32),
                                          np.ones((0, 2, 4), np.float32)), gain=1,
                                    model=CountNoise(1, "given", 0, 0, 0)), "gain or model, not both"),
])
def test_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()
