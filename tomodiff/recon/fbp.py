"""Filtered backprojection (parallel beam 2D/3D), fan-beam FBP and FDK (cone beam).

The backprojection is the projector's own adjoint ``Aᵀ``, so FBP works for every ``Projector``
backend and inherits its conventions (angle origin, rotation sense, centre offset) for free.
``Aᵀ`` is a *discrete* transpose: a voxel of volume ``vs^d`` is crossed, per view, by rays of
total weight ``vs^d / (ray spacing at the voxel)``. Dividing that factor out turns ``Aᵀ`` into the
continuous backprojection ``∫ q(θ, s(x, θ)) dθ``, so FBP of line integrals in world units returns
attenuation per world unit (the phantom's own values).

Steps (Kak & Slaney ch. 3; Feldkamp, Davis & Kress 1984 for cone beam):

1. (fan, cone) cosine pre-weighting ``SDD / √(SDD² + u² [+ v²])`` and detector coordinates scaled
   to the rotation axis (``u' = u · SOD / SDD``);
2. ramp filter along detector columns, in Fourier space with zero padding to ≥ 2U, built from the
   band-limited spatial Ram-Lak kernel (correct DC term, no cupping) times an optional window;
3. per-view angular weights ``Δθ`` from the actual angle gaps (π-periodic for parallel beam, 2π with
   the factor ½ for fan/cone: full scans only, no short-scan weights);
4. ``Aᵀ`` with the scaling above; (parallel 3D) divided, slice by slice, by the actual Z column
   sums of ``Aᵀ`` relative to their nominal ``voxel_size / det_spacing`` (:func:`z_column_weights`).
   When detector rows are coarser than voxels, or offset from them, the rows' interpolation onto
   slices does not give every slice the same weight; without this step a body uniform in z comes
   back banded along Z.

Distance weighting: a ray-driven transpose weighs each view by ``1/U`` per spread direction of the
beam (``U`` = source-to-voxel distance along the central ray / source_distance). In 3D the cone
spreads in two directions, so ``Aᵀ`` carries exactly FDK's ``1/U²``. In 2D fan beam ``Aᵀ`` carries
``1/U`` and FBP needs ``1/U²``: the missing ``1/U_β(x)`` is applied by splitting the views over
``fan_nodes`` hat functions in β (one ``Aᵀ`` call each, exact when ``n_angles <= fan_nodes``),
using the voxel coordinates documented in ``tomodiff.ct.geometry``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..ct import Projector, parallel_beam
from ..operators.base import LinearOperator
from ._common import check_measurement, check_operator

FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


# ------------------------------------------------------------------------------ ramp filter
def _window(name: str, nu: np.ndarray, cutoff: float) -> np.ndarray:
    """Window on ``nu`` = frequency / Nyquist in [0, 1]; zero above ``cutoff``."""
    if name == "ram-lak":
        w = np.ones_like(nu)
    elif name == "shepp-logan":
        w = np.sinc(nu / (2.0 * cutoff))
    elif name == "cosine":
        w = np.cos(np.pi * nu / (2.0 * cutoff))
    elif name == "hamming":
        w = 0.54 + 0.46 * np.cos(np.pi * nu / cutoff)
    elif name == "hann":
        w = 0.5 + 0.5 * np.cos(np.pi * nu / cutoff)
    else:
        raise ValueError(f"fbp: filter must be one of {FILTERS}, got {name!r}")
    return np.where(nu <= cutoff, w, 0.0)


def ramp_filter(p: torch.Tensor, *, det_spacing: float = 1.0, filter: str = "ram-lak",
                cutoff: float = 1.0) -> torch.Tensor:
    """Convolve every detector row of ``p`` (last dim, ``U`` samples) with a windowed ramp.

    ``p`` has any leading dims, ``(..., U)``; ``det_spacing`` is the sample spacing in world units.
    The result approximates ``∫ p(s') h(s − s') ds'`` with ``ĥ(ν) = |ν|·window(ν)``, ``ν`` in cycles
    per world unit — the continuous convolution, so the units are ``p``'s per world unit.
    """
    if filter not in FILTERS:
        raise ValueError(f"fbp: filter must be one of {FILTERS}, got {filter!r}")
    if not (0.0 < cutoff <= 1.0):
        raise ValueError(f"fbp: cutoff must be in (0, 1] (fraction of Nyquist), got {cutoff!r}")
    U = p.shape[-1]
    # ≥ 2U samples so that the circular convolution of the FFT never wraps data onto itself
    n = max(64, 1 << math.ceil(math.log2(2 * U)))
    k = np.arange(n)
    k = np.where(k <= n // 2, k, k - n)
    h = np.zeros(n)
    h[k == 0] = 1.0 / (4.0 * det_spacing**2)
    odd = (k % 2) == 1
    h[odd] = -1.0 / (np.pi * k[odd] * det_spacing) ** 2
    # ×spacing: the discrete sum approximates the convolution integral
    H = np.fft.rfft(h).real * det_spacing
    H = H * _window(filter, np.fft.rfftfreq(n) / 0.5, cutoff)
    H_t = torch.as_tensor(H, dtype=p.dtype, device=p.device)
    spec = torch.fft.rfft(p, n=n, dim=-1)
    return torch.fft.irfft(spec * H_t, n=n, dim=-1)[..., :U]


# ------------------------------------------------------------------------------ geometry helpers
def angle_weights(angles, period: float) -> np.ndarray:
    """Quadrature weight ``Δθ`` of each view: half the gaps to its neighbours modulo ``period``.

    Uniform views over one period all get ``period / n``. Repeated angles (e.g. a 2π parallel scan
    folded onto π) share their weight. A gap more than 3× the median gap (a missing wedge) counts
    as one median gap, so the views at its edges are not inflated.
    """
    a = np.mod(np.asarray(angles, dtype=np.float64), period)
    n = a.size
    if n == 1:
        return np.array([period])
    order = np.argsort(a, kind="stable")
    s = a[order]
    gaps = np.diff(np.concatenate([s, [s[0] + period]]))   # gaps[i]: s[i] -> s[i+1]
    positive = gaps[gaps > 1e-12]
    med = np.median(positive) if positive.size else period / n
    gaps = np.where(gaps > 3.0 * med, med, gaps)
    w_sorted = 0.5 * (gaps + np.roll(gaps, 1))
    w = np.empty(n)
    w[order] = w_sorted
    return w


def _pair(v, what: str) -> tuple[float, float]:
    """A scalar or a ``(row, col)`` pair (e.g. ``det_spacing``) as two floats."""
    if isinstance(v, (tuple, list, np.ndarray)):
        if len(v) == 1:
            return float(v[0]), float(v[0])
        if len(v) != 2:
            raise ValueError(f"fbp: {what} must be a number or a (rows, cols) pair, got {v!r}")
        return float(v[0]), float(v[1])
    return float(v), float(v)


def _voxel_volume(voxel_size, ndim: int) -> float:
    if isinstance(voxel_size, (tuple, list, np.ndarray)):
        if len(voxel_size) != ndim:
            raise ValueError(f"fbp: voxel_size {voxel_size!r} does not match a {ndim}D volume")
        return float(np.prod(voxel_size))
    return float(voxel_size) ** ndim


def _detector_coords(n: int, spacing: float, offset: float, dtype, device) -> torch.Tensor:
    """World coordinate of each detector pixel centre, 0 where the rotation axis projects."""
    return (torch.arange(n, dtype=dtype, device=device) - ((n - 1) / 2.0 + offset)) * spacing


# ------------------------------------------------------------------------------ FBP
def fbp(A: LinearOperator, y: torch.Tensor, *, filter: str = "hann", cutoff: float = 1.0,
        nonneg: bool = False, fan_nodes: int = 32, geometry=None) -> torch.Tensor:
    """Filtered backprojection: parallel beam (2D, 3D slice by slice), fan beam, FDK for cone beam.

    Parameters
    ----------
    A:
        A CT projector (``tomodiff.ct.Projector``, any backend) whose ``geometry`` describes the
        scan; its adjoint does the backprojection. Any other LinearOperator works if ``geometry``
        is given and ``A`` is a projector of that geometry.
    y:
        Line integrals in world units (e.g. −log of flat-corrected counts × 1), a sinogram
        ``(B, C, A, U)`` (parallel 2D, fan) or projections ``(B, C, A, V, U)`` (parallel 3D, cone),
        matching ``A.range_shape``.
    filter:
        Window on the ramp: ``"ram-lak"`` (none), ``"shepp-logan"``, ``"cosine"``, ``"hamming"``,
        ``"hann"`` (the default everywhere in tomodiff: ``reconstruct``, the CLI, the napari widget).
    cutoff:
        Frequency above which the filter is zero, as a fraction of the detector's Nyquist
        frequency, in (0, 1].
    nonneg:
        Clamp the result at 0.
    fan_nodes:
        Fan beam only: number of ``Aᵀ`` calls used to apply the per-view ``1/U`` distance weight
        (linear interpolation in angle between nodes; exact when ``n_angles <= fan_nodes``).
    geometry:
        Overrides ``A.geometry`` (fields used: ``kind``, ``angles``, ``det_shape``,
        ``det_spacing``, ``voxel_size``, ``center_offset``, ``source_distance``,
        ``detector_distance``).

    Returns
    -------
    ``x`` of shape ``(B, C, *A.domain_shape)`` — ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)`` — in
    attenuation per world unit, ``y``'s dtype. Fan and cone beam
    assume a full 2π scan (a warning is given otherwise; no short-scan weights).
    """
    name = "fbp"
    g, y, angles = _checked(A, y, geometry, cutoff, name)
    if g.kind == "parallel":
        x = A.adjoint(_parallel_filtered(y, g, angles, filter, cutoff))
        if g.ndim == 3:
            x = _normalise_z(A, g, x)
        return x.clamp_min(0.0) if nonneg else x
    q = _divergent_filtered(y, g, angles, filter, cutoff, name)
    x = _fan_backproject(A, q, g, angles, fan_nodes) if g.kind == "fan" else A.adjoint(q)
    return x.clamp_min(0.0) if nonneg else x


def _checked(A, y, geometry, cutoff, name):
    """``(geometry, y, angles)`` after checking that they fit each other; errors name ``name``."""
    check_operator(A, name)
    g = geometry if geometry is not None else getattr(A, "geometry", None)
    if g is None:
        raise TypeError(f"{name}: A ({type(A).__name__}) has no .geometry; pass a tomodiff.ct "
                        "Projector or geometry=...")
    y = check_measurement(A, y, name)
    kind = g.kind
    if kind not in ("parallel", "fan", "cone"):
        raise ValueError(f"{name}: geometry kind must be 'parallel', 'fan' or 'cone', got {kind!r}")
    ndim = len(tuple(g.volume_shape))
    if ndim != len(A.domain_shape):
        raise ValueError(f"{name}: geometry is {ndim}D but A's domain is {A.domain_shape}")
    angles = np.asarray(g.angles, dtype=np.float64)
    if angles.size != y.shape[2]:
        raise ValueError(f"{name}: geometry has {angles.size} angles but y has {y.shape[2]} views")
    if (kind in ("fan", "cone")) != (g.source_distance is not None):
        raise ValueError(f"{name}: {kind} geometry with source_distance={g.source_distance!r}")
    if not (0.0 < cutoff <= 1.0):
        raise ValueError(f"{name}: cutoff must be in (0, 1] (fraction of Nyquist), got {cutoff!r}")
    if kind == "fan" and ndim != 2:
        raise ValueError(f"{name}: fan geometry needs a 2D volume, got {g.volume_shape}")
    return g, y, angles


def _views_shape(y) -> tuple:
    return (-1,) + (1,) * (y.dim() - 3)  # broadcast a per-view weight over detector dims


def _parallel_filtered(y, g, angles, filter, cutoff):
    """Ramp-filtered, angle-weighted parallel-beam projections, ready for ``Aᵀ``."""
    dv, du = _pair(g.det_spacing, "det_spacing")
    vol = _voxel_volume(g.voxel_size, g.ndim)
    w_angle = angle_weights(angles, math.pi)
    q = ramp_filter(y, det_spacing=du, filter=filter, cutoff=cutoff)
    # Aᵀ puts vs^d / (du [dv]) per view on each voxel; undo it
    ray_area = du * dv if g.ndim == 3 else du
    return q * (torch.as_tensor(w_angle, dtype=y.dtype, device=y.device).reshape(_views_shape(y)) * (ray_area / vol))


def _divergent_filtered(y, g, angles, filter, cutoff, name):
    """Cosine-weighted, ramp-filtered fan or cone projections (FDK), ready for the backprojection."""
    dv, du = _pair(g.det_spacing, "det_spacing")
    vol = _voxel_volume(g.voxel_size, g.ndim)
    dt, dev = y.dtype, y.device
    sod = float(g.source_distance)
    sdd = sod + float(g.detector_distance)
    w_angle = angle_weights(angles, 2.0 * math.pi)
    if _coverage(angles) < 0.97 * 2.0 * math.pi:
        warnings.warn(f"{name}: {g.kind}-beam FBP assumes views spread over a full 2π; these "
                      "angles are not (no short-scan weighting is applied)", stacklevel=3)
    u = _detector_coords(y.shape[-1], du, float(g.center_offset), dt, dev)
    if g.kind == "fan":
        cos_a = sdd / torch.sqrt(sdd**2 + u**2)                       # (U,)
        ray_area = du * sod / sdd
    else:
        v = _detector_coords(y.shape[-2], dv, 0.0, dt, dev)
        cos_a = sdd / torch.sqrt(sdd**2 + u**2 + v[:, None] ** 2)     # (V, U)
        ray_area = du * dv * (sod / sdd) ** 2
    q = ramp_filter(y * cos_a, det_spacing=du * sod / sdd, filter=filter, cutoff=cutoff)
    # ½ Δβ: each ray is measured twice in a full scan. Aᵀ weighs a voxel by
    # vs^d / (ray_area · U^(d-1) · cos α); multiply the cos α and ray_area back in.
    w = torch.as_tensor(0.5 * w_angle, dtype=dt, device=dev).reshape(_views_shape(y))
    return q * w * cos_a * (ray_area / vol)


def _normalise_z(A, g, x):
    """Parallel 3D: divide each slice by the share of detector rows that reach it."""
    w = z_column_weights(A, g)
    if w is None:
        return x
    w = w.to(dtype=x.dtype, device=x.device)
    seen = w > 1e-3  # slices no detector row reaches stay as they are (zero)
    return torch.where(seen[:, None, None], x / torch.where(seen, w, torch.ones_like(w))[:, None, None], x)


def z_column_weights(A: LinearOperator, g) -> torch.Tensor | None:
    """``(Z,)`` float64: the Z column sums of ``Aᵀ`` for parallel 3D geometry ``g``, relative to their
    nominal value ``voxel_size / det_spacing``; ``None`` when rows and slices coincide (all 1).

    Measured, not assumed, so that it holds for any backend: one view of ones backprojected in 3D
    (``c(z)·S(y, x)`` for a projector whose rays stay in z-planes) divided by the same view
    backprojected through one 2D slice (``S(y, x)``), median over the pixels the view covers well.
    """
    Z, V = int(g.volume_shape[0]), int(g.det_shape[0])
    if V == Z and float(g.det_spacing) == float(g.voxel_size):
        return None
    one = g.thin(indices=[0])
    backend = getattr(A, "backend", "torch")
    kernel = getattr(A, "kernel", None) if backend == "astra" else None  # the same ASTRA kernel as A
    P3 = Projector(one, backend=backend if backend in ("torch", "matrix_free", "astra") else "torch", kernel=kernel)
    P2 = Projector(parallel_beam(g.volume_shape[1:], one.angles, det_shape=g.det_shape[1:], voxel_size=g.voxel_size,
                                 det_spacing=g.det_spacing, center_offset=g.center_offset), backend="torch")
    with torch.no_grad():
        b3 = P3.adjoint(torch.ones((1, 1, *one.sino_shape), dtype=torch.float64))[0, 0].double()
        b2 = P2.adjoint(torch.ones((1, 1, *P2.range_shape), dtype=torch.float64))[0, 0].double()
    covered = b2 > 0.5 * float(b2.max())
    c = (b3[:, covered] / b2[covered]).median(dim=1).values  # (Z,)
    return c * (float(g.det_spacing) / float(g.voxel_size))


def _fan_backproject(A: LinearOperator, q: torch.Tensor, g, angles: np.ndarray,
                     n_nodes: int) -> torch.Tensor:
    """``Σ_β Aᵀ_β(q_β) / U_β(x)``: the second ``1/U`` factor of fan-beam FBP, view-dependent per voxel.

    ``U_β(x) = 1 + x·d̂_β / SOD`` with ``d̂_β = (−sin β, cos β)`` the source-to-detector direction and
    ``x`` the voxel centre (row 0 at the top), as in ``tomodiff.ct.geometry``. The views are split
    over hat functions in β centred on ``n_nodes`` nodes; ``1/U`` is evaluated at each node
    (interpolation error ~ (2π/n_nodes)²/8 · R/SOD), or at each view when there are few.
    """
    if isinstance(n_nodes, bool) or int(n_nodes) != n_nodes or n_nodes < 1:
        raise ValueError(f"fbp: fan_nodes must be a positive int, got {n_nodes!r}")
    dt, dev = q.dtype, q.device
    Y, X = g.volume_shape
    s = float(g.voxel_size)
    yy = (-(torch.arange(Y, dtype=dt, device=dev) - (Y - 1) / 2.0) * s)[:, None]
    xx = ((torch.arange(X, dtype=dt, device=dev) - (X - 1) / 2.0) * s)[None, :]
    sod = float(g.source_distance)
    n = angles.size
    if n <= n_nodes:
        nodes, hats = angles, np.eye(n)
    else:
        nodes = np.arange(n_nodes) * (2.0 * math.pi / n_nodes)
        dist = np.abs(np.mod(angles[None, :] - nodes[:, None] + math.pi, 2.0 * math.pi) - math.pi)
        hats = np.clip(1.0 - dist / (2.0 * math.pi / n_nodes), 0.0, None)   # (nodes, views), Σ = 1
    x = None
    view_shape = (-1,) + (1,) * (q.dim() - 3)
    for beta, h in zip(nodes, hats):
        if not h.any():
            continue
        part = A.adjoint(q * torch.as_tensor(h, dtype=dt, device=dev).reshape(view_shape))
        inv_u = 1.0 / (1.0 + (-xx * math.sin(beta) + yy * math.cos(beta)) / sod)
        x = part * inv_u if x is None else x + part * inv_u
    return x


def _coverage(angles: np.ndarray) -> float:
    """Angular range covered, 2π minus the largest gap between sorted angles mod 2π."""
    s = np.sort(np.mod(angles, 2.0 * math.pi))
    gaps = np.diff(np.concatenate([s, [s[0] + 2.0 * math.pi]]))
    return 2.0 * math.pi - float(gaps.max()) + float(np.median(gaps))
