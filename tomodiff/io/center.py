"""The centre of rotation of a measured parallel-beam scan, from its sinogram.

tomodiff's convention (:mod:`tomodiff.ct.geometry`): the rotation axis projects onto detector column
``(U − 1)/2 + center_offset`` (columns counted from 0). An axis found at column ``c`` is therefore
``center_offset = c − (U − 1)/2``; the APS tooth's axis at column 296 of 640 is ``−23.5``.

Three methods:

- ``"vo"``: Vo et al., Opt. Express 22, 19078 (2014), as algotom implements it
  (``algotom.prep.calculation.find_center_vo``): the 180° sinogram and its mirror, shifted by
  twice the candidate offset, make one 360° sinogram whose Fourier energy outside a double wedge is
  least at the right centre. Needs about 180° (or more: the first half turn is used) of angles.
  ``metric`` is the contrast of that energy across the candidates, ``1 − min/median`` (0: no
  minimum, near 1: a sharp one); the estimate is the median over up to ``max_rows`` rows, and
  ``spread_px`` the median distance of the rows' estimates from it.
- ``"auto"`` (the default): ``"vo"``, then refined by tomodiff's own model: the offsets within
  ±1.5 px of it (0.5 px apart, then a parabola through the best three, to 0.25 px) are scored
  by the data residual ``‖s·A·FBP(y) − y‖ / ‖y‖`` (``s`` fitted; a Hann-filtered backprojection
  by tomodiff's projector) of the rows' mean sinogram under :func:`tomodiff.ct.parallel_beam` (a wrong centre makes the
  reprojection disagree with the data), and the minimum is taken. On the APS tooth ``"vo"``
  alone finds column 295.0, the residual 296.0 (TomoPy's ``find_center`` ≈ 296). ``metric`` is
  then the residual's relative rise 1 px away from the minimum (the sharpness of the minimum).
- ``"com"``: the centre of mass of each projection row moves on a sinusoid
  ``c + a·cos θ + b·sin θ`` around the axis's column ``c`` (exact for line integrals of parallel
  rays that see the whole object). Cheap, any arc of ≥ 30°; biased by truncation and by a
  background offset. ``metric`` is the fit's R² on the columns' means.

:func:`check_centered` is the cheap warning for raw data read without a centre.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

METHODS = ("auto", "vo", "com")
#: an axis this many pixels (and 1% of the width) from the detector centre is worth a warning
OFF_CENTRE_PX = 2.0


@dataclass(frozen=True)
class CenterEstimate:
    """offset_px: ``center_offset`` in detector pixels (axis column − (U − 1)/2); column: the
    axis's column; metric: the method's confidence (see the module docstring; higher is surer);
    spread_px: how far the rows' estimates lie from it (median absolute deviation, pixels);
    method: ``"vo"`` or ``"com"``; rows: the detector rows used."""

    offset_px: float
    column: float
    metric: float
    spread_px: float
    method: str
    rows: tuple

    def as_dict(self) -> dict:
        """Plain values for the provenance."""
        d = asdict(self)
        d["rows"] = list(self.rows)
        return d


def _as_3d(sino) -> np.ndarray:
    s = np.asarray(sino, np.float32)
    if s.ndim == 2:
        s = s[:, None, :]
    if s.ndim != 3 or min(s.shape) < 1:
        raise ValueError(f"sinogram must be (A, U) or (A, V, U) line integrals, got shape {np.shape(sino)}")
    if s.shape[0] < 3 or s.shape[2] < 8:
        raise ValueError(f"sinogram {np.shape(sino)}: too few angles (< 3) or columns (< 8) to find a centre")
    return s


def _pick_rows(n_rows: int, max_rows: int) -> np.ndarray:
    """Up to ``max_rows`` rows spread over the middle 80% of the detector."""
    if n_rows <= max_rows:
        return np.arange(n_rows)
    lo, hi = int(0.1 * n_rows), int(np.ceil(0.9 * n_rows)) - 1
    return np.unique(np.linspace(lo, hi, max_rows).round().astype(int))


def _half_turn(angles: np.ndarray, where: str) -> np.ndarray:
    """Indices of the first half turn (the VO method's 180°) of ``angles`` (radians)."""
    a = np.asarray(angles, np.float64)
    span = float(a.max() - a.min())
    step = span / max(len(a) - 1, 1)
    if span < np.pi - 2.5 * step:
        raise ValueError(f"{where}: the angles span {np.degrees(span):.4g}°; the 'vo' centre needs about 180° "
                         "(use method 'com' for shorter arcs, or give --center-offset)")
    keep = np.flatnonzero(a - a.min() <= np.pi + 0.5 * step)
    return keep[np.argsort(a[keep])]


def _vo(s: np.ndarray, angles, rows, search_px, where) -> tuple[np.ndarray, float]:
    from algotom.prep.calculation import calculate_center_metric, find_center_vo, make_inverse_double_wedge_mask

    idx = _half_turn(angles, where) if angles is not None else np.arange(s.shape[0])
    U = s.shape[2]
    half = search_px if search_px is not None else max(4, U // 8)
    start, stop = max(0, int((U - 1) / 2 - half)), min(U - 1, int(np.ceil((U - 1) / 2 + half)))
    with warnings.catch_warnings():  # algotom warns when the minimum is at the range's end; judged below
        warnings.simplefilter("ignore")
        cols = np.array([find_center_vo(s[idx, r], start=start, stop=stop, ncore=1) for r in rows], np.float64)
    # the metric curve on the rows' mean: how sharp the minimum is (algotom's own metric, integer shifts)
    mean = s[idx][:, rows].mean(axis=1)
    mask = make_inverse_double_wedge_mask(2 * mean.shape[0], U, 0.25 * U)
    flip, comp = np.fliplr(mean), np.flipud(mean)
    grid = np.unique(np.linspace(start, stop, 17).round())  # the curve's shape needs few points
    curve = np.array([calculate_center_metric(c, mean, flip, comp, mask) for c in grid])
    contrast = float(1.0 - curve.min() / np.median(curve)) if np.median(curve) > 0 else 0.0
    return cols, contrast


def _com(s: np.ndarray, angles, rows) -> tuple[np.ndarray, float]:
    if angles is None:
        raise ValueError("the 'com' centre needs the angles")
    a = np.asarray(angles, np.float64)
    if np.ptp(a) < np.radians(30):
        raise ValueError(f"the angles span {np.degrees(np.ptp(a)):.3g}°; the 'com' centre needs at least 30°")
    u = np.arange(s.shape[2], dtype=np.float64)
    design = np.stack([np.ones_like(a), np.cos(a), np.sin(a)], axis=1)
    cols, r2 = [], []
    for r in rows:
        p = s[:, r].astype(np.float64)
        p = p - np.percentile(p, 2, axis=1, keepdims=True)  # a background (air not at 1) pulls the mass inwards
        p = np.clip(p, 0.0, None)
        mass = p.sum(axis=1)
        ok = mass > 1e-6 * max(mass.max(), 1e-30)
        if ok.sum() < 3:
            continue
        com = (p[ok] @ u) / mass[ok]
        coef, *_ = np.linalg.lstsq(design[ok], com, rcond=None)
        fit = design[ok] @ coef
        ss = float(((com - com.mean()) ** 2).sum())
        cols.append(coef[0])
        r2.append(1.0 - float(((com - fit) ** 2).sum()) / ss if ss > 0 else 1.0)
    if not cols:
        raise ValueError("the sinogram holds no signal to find a centre in")
    return np.asarray(cols), float(np.median(r2))


def _filtered(y: np.ndarray) -> np.ndarray:
    """Rows of ``y`` ``(A, U)`` ramp-filtered (Hann window, zero-padded to twice the width): with
    the projector's adjoint, an FBP up to a constant factor (which :func:`_refine` fits out)."""
    A, U = y.shape
    n = 1 << int(np.ceil(np.log2(2 * U)))
    nu = np.fft.rfftfreq(n)
    window = np.abs(nu) * 0.5 * (1 + np.cos(np.pi * nu / nu.max()))
    return np.fft.irfft(np.fft.rfft(y, n, axis=1) * window, n, axis=1)[:, :U].astype(np.float32)


def _refine(s: np.ndarray, angles, rows, column: float, radius: float = 1.5, step: float = 0.5):
    """``(column, sharpness)``: the column within ``radius`` of ``column`` whose filtered
    backprojection reprojects closest to the rows' mean sinogram (tomodiff's own projector, 2D
    parallel beam; the residual after the best scalar factor, so the filter's scale does not
    matter): the best of candidates ``step`` apart, moved to the vertex of the parabola through it
    and its neighbours (rounded to 0.25 px)."""
    import torch  # start-up time

    from ..ct import Projector, available_backends, parallel_beam

    U = s.shape[2]
    mean = np.ascontiguousarray(s[:, rows].mean(axis=1), np.float32)
    y = torch.from_numpy(mean)[None, None]
    q = torch.from_numpy(_filtered(mean))[None, None]
    backend = "astra" if available_backends().get("astra") else "auto"  # ASTRA's CPU 2D: no matrix to build
    offsets = np.arange(-radius, radius + 1e-9, step) + column - (U - 1) / 2
    res = []
    with torch.no_grad():
        for off in offsets:
            A = Projector(parallel_beam((U, U), angles, det_shape=(U,), center_offset=float(off)), backend)
            r = A(A.adjoint(q)).double()
            fit = float((r * y).sum() / (r * r).sum().clamp_min(1e-30))
            res.append(float((fit * r - y).norm() / y.norm()))
    res = np.asarray(res)
    i = int(np.argmin(res))
    best = float(offsets[i])
    if 0 < i < len(res) - 1:
        a, b, c = res[i - 1], res[i], res[i + 1]
        curv = a - 2 * b + c
        if curv > 0:
            best += float(np.clip(0.5 * (a - c) / curv, -0.5, 0.5)) * step
    k = int(round(1.0 / step))
    near = [res[j] for j in (i - k, i + k) if 0 <= j < len(res)]
    sharp = float(min(near) / res[i] - 1.0) if near else 0.0
    return round(4 * best) / 4 + (U - 1) / 2, sharp


def estimate_center(sinogram, angles=None, *, method: str = "auto", max_rows: int = 5, search_px: float | None = None,
                    where: str = "sinogram") -> CenterEstimate:
    """The centre of rotation of ``sinogram``: line integrals ``(A, U)`` or ``(A, V, U)``.

    angles: ``(A,)`` radians (``"vo"`` uses them to keep the first half turn; ``"com"`` needs them).
    method: ``"auto"`` (default), ``"vo"`` or ``"com"`` (see the module docstring). max_rows: detector rows
    used (spread over the middle 80%). search_px: ``"vo"`` searches ``(U − 1)/2 ± search_px``
    (default ``U/8``). where: names the data in messages. Returns a :class:`CenterEstimate`.
    """
    if method not in METHODS:
        raise ValueError(f"centre method {method!r}: expected one of {METHODS}")
    s = _as_3d(sinogram)
    if angles is not None and len(angles) != s.shape[0]:
        raise ValueError(f"{where}: {s.shape[0]} projections but {len(angles)} angles")
    rows = _pick_rows(s.shape[1], max_rows)
    cols, metric = _com(s, angles, rows) if method == "com" else _vo(s, angles, rows, search_px, where)
    column = float(np.median(cols))
    if method == "auto":
        if angles is None:
            raise ValueError("the 'auto' centre needs the angles (its refinement reconstructs)")
        column, metric = _refine(s, np.asarray(angles, np.float64), rows, column)
    return CenterEstimate(offset_px=column - (s.shape[2] - 1) / 2, column=column, metric=metric,
                          spread_px=float(np.median(np.abs(cols - column))), method=method,
                          rows=tuple(int(r) for r in rows))


def check_centered(sinogram, angles, where: str, *, tolerance_px: float = OFF_CENTRE_PX) -> CenterEstimate | None:
    """Warn when the rotation axis of ``sinogram`` (line integrals ``(A, [V,] U)``, angles in
    radians) looks more than ``tolerance_px`` (and 1% of the width) from the detector centre: the
    cheap ``"com"`` estimate, for data read without ``--center-offset``. Returns the estimate
    (``None`` where it cannot be made: too short an arc, no signal)."""
    try:
        est = estimate_center(sinogram, angles, method="com", max_rows=3)
    except ValueError:
        return None
    width = np.shape(sinogram)[-1]
    if abs(est.offset_px) > max(tolerance_px, 0.01 * width) and est.metric > 0.9:
        warnings.warn(f"{where}: the rotation axis looks {est.offset_px:+.1f} px from the detector centre (centre of "
                      f"mass fit, R² {est.metric:.3f}) but no centre was given; pass --center-offset auto or a value "
                      "in pixels", stacklevel=2)
    return est
