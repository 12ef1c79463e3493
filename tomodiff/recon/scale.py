"""The scale step: map a scan into a prior's value range and back.

Diffusion priors (and the default TV weight) are built for volumes whose values lie in about
[0, 1]; measured scans come in attenuation per pixel or per mm (μ ≈ 0.02/mm for soft tissue), a
factor 50 or more away. Every method therefore solves the scaled problem

    y' = y / s,   σ' = σ / s,   x' = argmin / sample for y' = A x',   x = s · x'

with one number ``s`` per reconstruction, recorded in the provenance. Linear methods (FBP, SIRT,
CGLS) are unchanged by it; TV's weight and the priors act on ``x'``, so their meaning does not
depend on the scan's units. ``s`` comes from:

- ``"auto"`` (default): the robust maximum of a quick reconstruction, the 99.9th percentile of a
  non-negative Hann-windowed FBP of ``y`` (:func:`robust_max`), so that ``x'`` peaks near 1. A
  parallel-beam FBP costs about one backprojection. On a limited arc (:func:`arc_degrees` below
  ``LIMITED_ARC_DEG``) FBP's missing wedge lowers that maximum (0.33–0.74× the truth on 60–120° arcs of
  three real CT training volumes), so the estimate comes from 100 iterations of non-negative SIRT
  instead (0.76–0.99× there; ``benchmarks/scale_arc.py``), with a warning that it is less reliable.
- a number: the attenuation value (in ``x``'s units) that maps to 1, e.g. the μ of the densest
  material, when it is known (``--mu-max`` on the command line).
- ``None``: ``s = 1``, the data are already in the prior's units (e.g. phantoms in [0, 1]).

Since ``s`` scales with ``y``, the result scales with ``y`` exactly: the same object at ×0.02 or
×50 gives the same reconstruction up to the factor (tests/recon/test_scale.py).
"""

from __future__ import annotations

import math
import warnings

import torch

from ..ct import Projector
from ..io.project_file import recorded_mu_max
from . import distributed
from .fbp import fbp
from .sirt import sirt

# the prior's value range after scaling: priors are trained on volumes in [0, 1]
PRIOR_RANGE = (0.0, 1.0)
# a robust maximum outside [PRIOR_MAX / FAR, PRIOR_MAX · FAR] counts as "far outside" the range
FAR = 4.0
QUANTILE = 0.999
MAX_VALUES = 1 << 22  # torch.quantile's size limit
LIMITED_ARC_DEG = 170.0  # below this angular coverage the estimate switches from FBP to SIRT
ARC_SIRT_ITERS = 100


def arc_degrees(geometry) -> float:
    """The angular coverage of a scan in degrees: the span of its angles plus one angular step
    (equally spaced views over [0, 180°) cover 180°)."""
    a = sorted(float(t) for t in geometry.angles)
    if len(a) < 2:
        return 0.0
    span = a[-1] - a[0]
    return math.degrees(span + span / (len(a) - 1))


def limited_arc(geometry) -> bool:
    """Whether a scan covers less than ``LIMITED_ARC_DEG`` degrees (``None`` geometry: no)."""
    return geometry is not None and arc_degrees(geometry) < LIMITED_ARC_DEG


def _quick_reconstruction(A, y: torch.Tensor, geometry) -> torch.Tensor:
    """What the robust maximum is taken of: a non-negative Hann FBP, or on a limited arc SIRT."""
    if limited_arc(geometry):
        return sirt(A, y, n_iter=ARC_SIRT_ITERS, nonneg=True, progress=False)
    return fbp(A, y, filter="hann", nonneg=True)


def robust_max(A, y: torch.Tensor, *, quantile: float = QUANTILE) -> float:
    """The ``quantile`` of a non-negative Hann FBP of ``y`` (``A`` a CT projector with a geometry;
    on a limited arc of SIRT, see the module docstring), in ``x``'s units; for operators without a
    geometry, of ``Aᵀy / ‖A‖²`` instead."""
    with torch.no_grad():
        if getattr(A, "geometry", None) is not None:
            x = _quick_reconstruction(A, y, A.geometry)
        else:
            if not hasattr(A, "norm"):  # a nonlinear operator (Beer–Lambert counts, your own): no adjoint to use
                raise ValueError(f"scale='auto' needs a linear operator to estimate the range from; "
                                 f"{type(A).__name__} is not: pass scale= (the value that maps to 1) or scale=None")
            norm = A.norm(generator=torch.Generator(device=y.device).manual_seed(0), device=y.device)
            x = (A.adjoint(y) / max(float(norm) ** 2, 1e-30)).clamp_min(0)
        flat = x.detach().flatten().float()
        if flat.numel() > MAX_VALUES:  # quantile's size limit: a regular subsample is plenty
            flat = flat[:: math.ceil(flat.numel() / MAX_VALUES)]
        return float(torch.quantile(flat, quantile))


def slabwise_robust_max(geometry, read, blocks, *, device, ctx=None, quantile: float = QUANTILE) -> float:
    """:func:`robust_max` of a volume that splits by rows (:attr:`Geometry.rows_are_slices`),
    computed block of slices by block, so that memory stays bounded and the in-memory and
    file-to-file paths estimate the very same number.

    read: ``read(a, b)`` -> line integrals of detector rows ``a:b``, ``(1, 1, A, b − a, U)``;
    blocks: ``[(a, b), ...]`` covering the slices. The quantile is over every ``stride``-th voxel of
    the whole volume (stride 1 up to 2²² voxels), the same voxels whatever the blocks; under
    torch.distributed (``ctx``) the blocks are shared among the ranks.
    """
    ctx = ctx or distributed.Dist()
    Z, Y, X = geometry.volume_shape
    stride = max(1, math.ceil(Z * Y * X / MAX_VALUES))
    mine = {}
    with torch.no_grad():
        for k, (a, b) in enumerate(blocks):
            if k % ctx.world != ctx.rank:
                continue
            x = _quick_reconstruction(Projector(geometry.rows(a, b), device=device), read(a, b).to(device), geometry)
            flat = x.detach().flatten().float().cpu()
            first = (-a * Y * X) % stride  # first index of this block on the global grid of every stride-th voxel
            mine[k] = flat[first::stride].numpy()
    gathered = {}
    for part in distributed.gather_objects(ctx, mine, "the scale step"):
        gathered.update(part)
    values = torch.cat([torch.from_numpy(gathered[k]) for k in range(len(blocks))])
    return float(torch.quantile(values, quantile))


def resolve_scale(A, y: torch.Tensor | None, scale, *, linear: bool = False, estimate=None) -> tuple[float, dict]:
    """``(s, record)``: the factor of the scale step and how it was chosen (for the provenance).

    ``linear``: the method's result is proportional to ``y`` (FBP, SIRT, CGLS), so ``"auto"``
    skips the estimate (a quick FBP) and uses ``s = 1``; a given number is still checked.
    estimate: the robust maximum for ``"auto"``, as a callable (default ``robust_max(A, y)``; slab
    runs pass :func:`slabwise_robust_max`)."""
    if scale is None or scale == "none":
        return 1.0, {"rule": "none (data taken to be in the prior's units)", "value": 1.0}
    if isinstance(scale, str):
        if scale != "auto":
            raise ValueError(f"scale must be 'auto', None or a positive number, got {scale!r}")
        if linear:
            return 1.0, {"rule": "auto: not needed (the method is linear in y)", "value": 1.0}
        s = robust_max(A, y) if estimate is None else estimate()
        if not (math.isfinite(s) and s > 0):
            raise ValueError("scale='auto': the quick FBP of y is zero or negative everywhere (is y empty or "
                             "of the wrong sign?); pass the attenuation range as a number instead")
        geometry = getattr(A, "geometry", None)
        if limited_arc(geometry):
            arc = arc_degrees(geometry)
            warnings.warn(f"scale='auto' on a limited arc ({arc:.0f} degrees): estimated from non-negative SIRT, "
                          "measured 0.76-0.99x the true maximum on 60-120 degree arcs; give the attenuation range "
                          "(scale=, --mu-max) if it is known", RuntimeWarning, stacklevel=4)
            return s, {"rule": f"auto, limited arc ({arc:.0f} deg): {QUANTILE:.1%} quantile of {ARC_SIRT_ITERS} "
                               "non-negative SIRT iterations", "value": s, "reliable": False}
        return s, {"rule": f"auto: {QUANTILE:.1%} quantile of a non-negative Hann FBP", "value": s}
    try:
        s = float(scale)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scale must be 'auto', None or a positive number, got {scale!r}") from err
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"scale must be a finite number > 0 (the value that maps to 1), got {scale!r}")
    return s, {"rule": "given (the attenuation that maps to 1)", "value": s}


def known_scale(provenance: dict | None) -> float | None:
    """The attenuation that maps to 1 when a file records it (:func:`tomodiff.io.project_file.recorded_mu_max`),
    else ``None``. Readers of project files (the CLI, the napari widget) pass it as ``scale``."""
    return recorded_mu_max(provenance)


def warn_if_out_of_range(A, y_scaled: torch.Tensor, what: str = "the prior", stacklevel: int = 3) -> float | None:
    """Warn when the robust maximum of the scaled data is far from the prior's range (more than
    ``FAR``× off); returns that maximum (``None`` if it could not be estimated)."""
    try:
        m = robust_max(A, y_scaled)
    except (ValueError, TypeError, RuntimeError):
        return None
    hi = PRIOR_RANGE[1]
    if not (hi / FAR <= m <= hi * FAR):
        warnings.warn(f"the data's robust maximum is {m:.3g} in {what}'s units, far outside its training range "
                      f"[{PRIOR_RANGE[0]:g}, {hi:g}]; use scale='auto' (--scale auto) or give the attenuation range",
                      RuntimeWarning, stacklevel=stacklevel)
    return m
