"""The noise of line integrals: from the counts of a raw scan, or estimated from the sinogram alone.

From the counts (:func:`line_integral_variance`)
------------------------------------------------
A raw scan holds detector readings in ADU: projections ``I``, ``n_f`` flat frames ``F_k`` and
``n_d`` dark frames ``D_k``, normalised (:func:`tomodiff.io.scans.normalize`) to

    p = −log(a / b),    a = I − D̄,    b = F̄ − D̄,    F̄, D̄ the frame means.

Model (the assumption): a reading is ``g·N + dark``, ``N`` a Poisson photon count and ``g`` the
detector's gain in ADU per photon (``g = 1``: the file holds photon counts), plus dark signal of
per-frame variance ``σ_D²`` (read noise and dark current, the same in every frame), all
independent. Then ``Var I = g·a + σ_D²``, ``Var F̄ = (g·b + σ_D²)/n_f``, ``Var D̄ = σ_D²/n_d``, and
the delta method (first-order Taylor of ``p`` in ``I, F̄, D̄``: ``∂p/∂I = −1/a``,
``∂p/∂F̄ = 1/b``, ``∂p/∂D̄ = 1/a − 1/b``) gives

    Var p ≈ (g·a + σ_D²)/a²  +  (g·b + σ_D²)/(n_f·b²)  +  (1/a − 1/b)²·σ_D²/n_d.

The first term is the projection's own shot noise (``≈ g/a``: dark rays are noisier), the second
the flats' (``≈ g/(n_f·b)``: several flats average it down), the third the darks'. Without flats
(``n_f = 0``, ``b = 1``, no flat term) or darks (``D̄ = 0``, no dark term) those terms drop. Valid
where counts are large (≳ 10 photons): below that the Taylor expansion and the clipping of ``p``
(``min_transmission``) break it, and such rays simply get a large variance.

The flat and dark terms are shared by every projection of a pixel, so the noise of ``p`` is
correlated across angles at the same pixel; these functions return the marginal variance and
ignore that correlation (it is small for ``n_f ≳ 5`` flats, where the flat term is small).

Gain: with ``gain=None`` and at least 2 flats it is estimated from the flats' own scatter across
frames (each frame first rescaled to the common mean, which removes beam-intensity flicker): the
per-pixel sample variance ``s²`` over ``n_f`` frames follows ``(g·b + σ_D²)·χ²_{n_f−1}/(n_f−1)``,
and ``g`` is the value at which the median of ``s² / (g·b + σ_D²)`` over the pixels equals the
median of ``χ²_{n_f−1}/(n_f−1)`` (robust to hot pixels and moving structure in a few of them).
With one flat the same fit runs on its second difference along the detector row,
``F[u−1] − 2F[u] + F[u+1]``, whose variance is ``6(g·b + σ_D²)`` where the beam profile is smooth
at the pixel scale (``χ²_1``); fixed-pattern structure of the flat adds to it, so this gain comes
out somewhat high (Diamond I13: 2.55 ADU/photon from its flat, 2.25 from the temporal scatter of the
projections' air region). Without flats, or when nothing fits, ``g = 1`` is assumed (photon
counts), and the record says so: pass ``gain`` for a detector with a known conversion. ``σ_D²`` is
the median over pixels of the darks' per-pixel variance with ≥ 2 darks, from one dark the robust
variance of its second difference along the row over 6, else 0.

Without counts (:func:`estimate_sigma_y`)
-----------------------------------------
A sinogram is smooth along the detector except at edges, while white noise is not: the finest
differences along the detector row are mostly noise. The estimate is the median absolute
deviation of the ``order``-th difference along the last axis (the detector column), scaled for a
Gaussian (1.4826) and for the difference's gain (``√C(2k, k)``: ``√2, √6, √20``), a robust
MAD as in Donoho's wavelet rule. It assumes white noise: a detector that blurs neighbouring
pixels (a PSF, interpolated or binned data) correlates the noise and the estimate comes out low.
The signal's own fine structure adds to it: sharp high-contrast edges bias it high (Shepp–Logan
128², 60 views, noise 0.5% of max|y|: +20%; blurred by 2 px: +3%). On Diamond I13 (rows 60–69)
it gives 0.0123 against 0.0138 from the counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["CountNoise", "count_noise", "line_integral_variance", "effective_sigma", "whitened_sigma",
           "estimate_sigma_y", "weights_from_variance", "scan_variance", "OUTLIER_FACTOR"]

#: the fewest pixels with flat > dark from which the gain is fitted
_GAIN_PIXEL_FLOOR = 16


@dataclass(frozen=True)
class CountNoise:
    """The count noise model of a scan (:func:`count_noise`).

    gain: ADU per photon; gain_rule: ``"given" | "flats" | "flat (second difference…)" | "assumed 1 …"``;
    dark_variance: per-frame variance ``σ_D²`` of a dark pixel in ADU²; n_flats, n_darks: frames.
    """

    gain: float
    gain_rule: str
    dark_variance: float
    n_flats: int
    n_darks: int

    def to_dict(self) -> dict:
        return {"gain": self.gain, "gain_rule": self.gain_rule, "dark_variance": self.dark_variance,
                "n_flats": self.n_flats, "n_darks": self.n_darks}


def _chi2_median_ratio(k: int) -> float:
    """Median of ``χ²_k / k``."""
    from scipy.stats import chi2  # start-up time: scipy.stats is slow to import

    return float(chi2.ppf(0.5, k)) / k


def _check_gain(gain) -> float:
    try:
        g = float(gain)
    except (TypeError, ValueError):
        raise ValueError(f"gain must be a positive number (ADU per photon), got {gain!r}") from None
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"gain must be a positive number (ADU per photon), got {gain!r}")
    return g


def _second_difference(frame: np.ndarray) -> np.ndarray:
    """``F[u−1] − 2F[u] + F[u+1]`` along the detector row, ``(V, U − 2)``: white noise of variance
    ``v`` gives variance ``6v``, a smooth beam profile almost nothing."""
    f = frame.astype(np.float64)
    return f[:, :-2] - 2.0 * f[:, 1:-1] + f[:, 2:]


def _dark_variance(darks: np.ndarray) -> float:
    if darks.shape[0] >= 2:  # the median of σ²·χ²_{n−1}/(n−1) is below σ²: divide by that ratio
        return float(np.median(darks.astype(np.float64).var(axis=0, ddof=1))) / _chi2_median_ratio(darks.shape[0] - 1)
    if darks.shape[0] == 1 and darks.shape[-1] >= 3:  # one frame: its spatial scatter (robust MAD)
        d = _second_difference(darks[0]).ravel()
        return float((1.4826 * np.median(np.abs(d - np.median(d)))) ** 2 / 6.0)
    return 0.0


def _fit_gain(flats: np.ndarray, dark: np.ndarray, dark_var: float) -> float:
    """Gain from the flats' scatter across frames, or with one flat along its rows (see the module
    docstring); ``flats`` ``(n, V, U)``."""
    f = flats.astype(np.float64)
    if f.shape[0] >= 2:
        means = f.reshape(f.shape[0], -1).mean(axis=1)
        if not (means > 0).all():
            raise ValueError("count_noise: a flat frame has a non-positive mean; cannot fit the gain")
        f = f * (means.mean() / means)[:, None, None]  # beam-intensity flicker between frames
        b = (f.mean(axis=0) - dark).ravel()
        s2 = f.var(axis=0, ddof=1).ravel()
        ok = b > 0
        dof, factor = f.shape[0] - 1, 1.0
    else:  # one flat: second differences along the row, variance 6(g·b + σ_D²) at the centre pixel
        bb = f[0] - dark
        b = bb[:, 1:-1].ravel()
        s2 = _second_difference(f[0]).ravel() ** 2
        ok = (bb[:, :-2] > 0).ravel() & (b > 0) & (bb[:, 2:] > 0).ravel()  # dead neighbours are no noise
        dof, factor = 1, 6.0
    if ok.sum() < _GAIN_PIXEL_FLOOR:
        raise ValueError(f"count_noise: only {int(ok.sum())} pixels with flat > dark; cannot fit the gain")
    b, s2 = b[ok], s2[ok] / factor
    target = _chi2_median_ratio(dof)

    def excess(g):  # decreasing in g
        return float(np.median(s2 / (g * b + dark_var))) - target

    lo, hi = 1e-6, 1e6
    if excess(hi) > 0 or excess(lo) < 0:
        raise ValueError("count_noise: the flats' scatter does not fit a gain in [1e-6, 1e6] ADU per photon; "
                         "pass gain=")
    for _ in range(200):  # bisection on log g
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
        if hi / lo < 1 + 1e-6:
            break
    return math.sqrt(lo * hi)


def count_noise(scan, *, gain=None) -> CountNoise:
    """The noise model of ``scan`` (a :class:`~tomodiff.io.scans.RawScan`): gain (given, fitted
    from ≥ 2 flats or along the rows of one, else assumed 1) and the darks' per-frame variance
    (from ≥ 2 darks, or the spatial scatter of one, else 0)."""
    n_f, n_d = scan.flats.shape[0], scan.darks.shape[0]
    dark = scan.darks.astype(np.float64).mean(axis=0) if n_d else np.zeros(scan.projections.shape[1:])
    dark_var = _dark_variance(scan.darks)
    if gain is not None:
        g, rule = _check_gain(gain), "given"
    elif n_f >= 1 and (n_f >= 2 or scan.flats.shape[-1] >= 3):
        try:
            g = _fit_gain(scan.flats, dark, dark_var)
            rule = "flats" if n_f >= 2 else "flat (second difference along the rows)"
        except ValueError:  # identical or empty flats: nothing to fit; counts are then the best guess,
            # and the record says so (no warning: the variance is a by-product of every raw scan's load)
            g, rule = 1.0, "assumed 1 (the flats' scatter fits no gain)"
    else:
        g, rule = 1.0, "assumed 1 (photon counts)"
    return CountNoise(gain=g, gain_rule=rule, dark_variance=dark_var, n_flats=n_f, n_darks=n_d)


def line_integral_variance(scan, *, gain=None, model: CountNoise | None = None, clamp_gain: float = 1e-3,
                           min_transmission: float = 1e-4) -> np.ndarray:
    """Per-ray variance of the line integrals ``p = −log((I − D̄)/(F̄ − D̄))`` of ``scan``.

    Parameters
    ----------
    scan:
        A :class:`~tomodiff.io.scans.RawScan`: projections ``(A, V, U)``, flats and darks ``(N, V, U)`` in ADU.
    gain:
        ADU per photon; ``None``: :func:`count_noise`'s rule (fitted from ≥ 2 flats, else 1).
    model:
        A :class:`CountNoise` to use instead (then ``gain`` must be ``None``).
    clamp_gain, min_transmission:
        As :func:`tomodiff.io.scans.normalize`: ``F̄ − D̄`` is at least ``clamp_gain`` and
        ``a`` at least ``min_transmission · b`` (clipped rays get the variance of that floor).

    Returns
    -------
    ``(A, V, U)`` float32 variances of ``p`` (unitless: ``p`` is a line integral of attenuation).
    """
    if model is not None and gain is not None:
        raise ValueError("line_integral_variance: give gain or model, not both")
    if scan.projections.ndim != 3:
        raise ValueError(f"line_integral_variance: projections must be (A, V, U), got {scan.projections.shape}")
    m = model or count_noise(scan, gain=gain)
    g, s2d = m.gain, m.dark_variance
    n_f, n_d = scan.flats.shape[0], scan.darks.shape[0]
    dark = scan.darks.astype(np.float64).mean(axis=0) if n_d else 0.0
    if n_f:
        b = np.maximum(scan.flats.astype(np.float64).mean(axis=0) - dark, clamp_gain)
    else:
        b = np.ones(scan.projections.shape[1:])
    a = np.maximum(scan.projections.astype(np.float64) - dark, min_transmission * b)
    var = (g * a + s2d) / a**2
    if n_f:
        var = var + (g * b + s2d) / (n_f * b**2)
    if n_d:
        inv_b = 1.0 / b if n_f else 0.0
        var = var + (1.0 / a - inv_b) ** 2 * s2d / n_d
    return var.astype(np.float32)


#: rays whose variance exceeds this multiple of the median are clipped or dead (the delta method
#: does not hold there): :func:`effective_sigma` leaves them out of its mean
OUTLIER_FACTOR = 1e3


def _check_variance(variance, who: str, *, positive: bool) -> np.ndarray:
    v = np.asarray(variance.detach().cpu() if hasattr(variance, "detach") else variance, np.float64)
    if v.size == 0 or not np.isfinite(v).all() or ((v <= 0).any() if positive else (v < 0).any()):
        raise ValueError(f"{who}: variance must be non-empty, finite and {'positive' if positive else 'non-negative'}")
    return v


def effective_sigma(variance, *, outlier: float = OUTLIER_FACTOR) -> float:
    """The one noise std that gives the same expected ``‖n‖²``: ``√mean(variance)``, so that
    ``χ²/m = ‖y − A x‖² / (m σ²)`` is about 1 for a fit at the noise level (the scalar ``sigma_y``
    of the diffusion likelihood and of unweighted χ²/m). Rays above ``outlier`` × the median
    variance (dead pixels, clipped transmission: ~10⁷ where the median is ~10⁻⁴) are left out of
    the mean: one dead column would otherwise set σ for the whole scan."""
    v = _check_variance(variance, "effective_sigma", positive=False).ravel()
    keep = v <= outlier * float(np.median(v))
    return float(math.sqrt(v[keep].mean()))


def whitened_sigma(variance) -> float:
    """``σ̄ = (mean 1/variance)^{-½}``: the std of every ray's noise after weighting with
    :func:`weights_from_variance` (``w_i σ_i² = σ̄²``): the ``sigma_y`` that goes with PWLS weights
    (TV's weight search, weighted χ²/m). Below :func:`effective_sigma`, which averages variances."""
    v = _check_variance(variance, "whitened_sigma", positive=True)
    return float((1.0 / v).mean() ** -0.5)


def weights_from_variance(variance) -> np.ndarray:
    """PWLS weights ``1/variance`` scaled to mean 1 (``σ̄²/σ_i²``, ``σ̄² = 1/mean(1/σ_i²)``), same shape."""
    v = _check_variance(variance, "weights_from_variance", positive=True)
    w = 1.0 / v
    return (w / w.mean()).astype(np.float32)


_DIFF_GAIN = {1: 2.0, 2: 6.0, 3: 20.0}  # Σ binomial(k, j)² = C(2k, k): variance of the k-th difference of white noise


def estimate_sigma_y(y, *, order: int = 3, axis: int = -1) -> float:
    """Noise std of a sinogram without counts: the robust MAD of its ``order``-th difference along ``axis``.

    Parameters
    ----------
    y:
        A sinogram, tensor or array of any shape whose ``axis`` is the detector column (tomodiff:
        ``(B, C, A, U)`` or ``(B, C, A, V, U)``, the last axis), in line-integral units.
    order:
        1, 2 or 3: the difference along the detector (3, the default, cancels quadratic trends of
        the signal: measured 1.01–1.03 σ on a smooth Shepp–Logan sinogram at 0.5–1% noise where 2
        gives 1.06–1.12; see the module docstring).
    axis:
        The axis to difference (default the detector column).

    Returns
    -------
    σ_y in ``y``'s units, assuming white Gaussian noise of one std.
    """
    if order not in _DIFF_GAIN:
        raise ValueError(f"estimate_sigma_y: order must be 1, 2 or 3, got {order!r}")
    arr = y.detach().cpu().double().numpy() if hasattr(y, "detach") else np.asarray(y, np.float64)
    if arr.ndim == 0 or arr.shape[axis] < order + 2:
        raise ValueError(f"estimate_sigma_y: need at least {order + 2} detector columns along axis {axis}, "
                         f"got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("estimate_sigma_y: y contains NaN or Inf")
    d = np.diff(arr, n=order, axis=axis).ravel()
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / math.sqrt(_DIFF_GAIN[order])


def scan_variance(scan, *, thin: int = 1, rows=None, two_d: bool = False) -> np.ndarray | None:
    """Per-ray variance of the line integrals that :func:`tomodiff.io.problem.load_problem` makes of
    ``scan``: the same thinning (every ``thin``-th angle) and ``rows`` (a slice), ``(A, U)`` when
    ``two_d`` (the first row, a 2D sinogram) else ``(A, V, U)``, float32; ``None`` for a scan without
    counts (line integrals) or without flats (nothing says the readings are counts). The air-region
    rescaling and ring removal shift ``p`` by amounts that are not noise, so the variance ignores them."""
    if not hasattr(scan, "projections") or scan.flats.shape[0] == 0:
        return None
    model = count_noise(scan)  # the gain from every row of the flats, not only those reconstructed
    if thin > 1:
        scan = scan.thin(step=thin)
    if rows is not None:
        scan = replace(scan, projections=scan.projections[:, rows], flats=scan.flats[:, rows],
                       darks=scan.darks[:, rows])
    var = line_integral_variance(scan, model=model)
    return np.ascontiguousarray(var[:, 0]) if two_d else var
