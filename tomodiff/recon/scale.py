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
  parallel-beam FBP costs about one backprojection.
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

# the prior's value range after scaling: priors are trained on volumes in [0, 1]
PRIOR_RANGE = (0.0, 1.0)
# a robust maximum outside [PRIOR_MAX / FAR, PRIOR_MAX · FAR] counts as "far outside" the range
FAR = 4.0
QUANTILE = 0.999


def robust_max(A, y: torch.Tensor, *, quantile: float = QUANTILE) -> float:
    """The ``quantile`` of a non-negative Hann FBP of ``y`` (``A`` a CT projector with a geometry),
    in ``x``'s units; for operators without a geometry, of ``Aᵀy / ‖A‖²`` instead."""
    with torch.no_grad():
        if getattr(A, "geometry", None) is not None:
            from .fbp import fbp

            x = fbp(A, y, filter="hann", nonneg=True)
        else:
            x = (A.adjoint(y) / max(float(A.norm()) ** 2, 1e-30)).clamp_min(0)
        flat = x.detach().flatten().float()
        if flat.numel() > 1 << 22:  # quantile's size limit: a regular subsample is plenty
            flat = flat[:: math.ceil(flat.numel() / (1 << 22))]
        return float(torch.quantile(flat, quantile))


def resolve_scale(A, y: torch.Tensor, scale, *, linear: bool = False) -> tuple[float, dict]:
    """``(s, record)``: the factor of the scale step and how it was chosen (for the provenance).

    ``linear``: the method's result is proportional to ``y`` (FBP, SIRT, CGLS), so ``"auto"``
    skips the estimate (a quick FBP) and uses ``s = 1``; a given number is still checked."""
    if scale is None or scale == "none":
        return 1.0, {"rule": "none (data taken to be in the prior's units)", "value": 1.0}
    if isinstance(scale, str):
        if scale != "auto":
            raise ValueError(f"scale must be 'auto', None or a positive number, got {scale!r}")
        if linear:
            return 1.0, {"rule": "auto: not needed (the method is linear in y)", "value": 1.0}
        s = robust_max(A, y)
        if not (math.isfinite(s) and s > 0):
            raise ValueError("scale='auto': the quick FBP of y is zero or negative everywhere (is y empty or "
                             "of the wrong sign?); pass the attenuation range as a number instead")
        return s, {"rule": f"auto: {QUANTILE:.1%} quantile of a non-negative Hann FBP", "value": s}
    try:
        s = float(scale)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scale must be 'auto', None or a positive number, got {scale!r}") from err
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"scale must be a finite number > 0 (the value that maps to 1), got {scale!r}")
    return s, {"rule": "given (the attenuation that maps to 1)", "value": s}


def known_scale(provenance: dict | None) -> float | None:
    """The attenuation that maps to 1 when a file records it: ``provenance["mu_max"]`` (written by
    ``tomodiff simulate``: the simulated object's maximum), else ``None`` (estimate it instead).
    Readers of project files (the CLI, the napari widget) pass it as ``scale``."""
    mu_max = (provenance or {}).get("mu_max")
    if isinstance(mu_max, (int, float)) and not isinstance(mu_max, bool) and math.isfinite(mu_max) and mu_max > 0:
        return float(mu_max)
    return None


def warn_if_out_of_range(A, y_scaled: torch.Tensor, what: str = "the prior") -> float | None:
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
                      RuntimeWarning, stacklevel=3)
    return m
