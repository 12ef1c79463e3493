"""Warm starts: a classical reconstruction of each slab as the point diffusion starts from.

``x_init="fbp" | "sirt" | "tv"`` (a string) is replaced, slab by slab, by that classical
reconstruction of the slab's data (:func:`warm_start`); the run then starts at
``x_init + σ_start·n`` (CCDF / ISCS). ``method="auto"`` warm-starts from TV
(:data:`tomodiff.methods.AUTO`).
"""

from __future__ import annotations

import torch

from .. import methods
from .fbp import fbp
from .sirt import sirt
from .tv import tv

__all__ = ["WARM_STARTS", "warm_start", "slab_options"]

WARM_STARTS = ("fbp", "sirt", "tv")


def warm_start(A, y: torch.Tensor, kind: str) -> torch.Tensor:
    """The classical reconstruction ``kind`` (``"fbp" | "sirt" | "tv"``) of ``y``, ``(B, C, *A.domain_shape)``,
    with the registry's defaults (FBP Hann filter, non-negative; TV's weight 0.006 × views)."""
    if kind not in WARM_STARTS:
        raise ValueError(f"warm start x_init must be a tensor or one of {WARM_STARTS}, got {kind!r}")
    if kind == "fbp":
        return fbp(A, y, filter="hann", nonneg=True)
    if kind == "sirt":
        return sirt(A, y, progress=False, **methods.get("sirt").options)
    return tv(A, y, progress=False, lam=methods.default_tv_weight(A), **methods.get("tv").options)


def slab_options(opts: dict, start: int, stop: int, n_slices: int) -> dict:
    """``opts`` for the slab of slices ``start:stop``: a warm start tensor ``x_init`` of the whole
    volume ``(B, C, n_slices, Y, X)`` is cut to the slab; anything else passes unchanged (a tensor
    of another shape then fails in the sampler with a clear shape error)."""
    x = opts.get("x_init")
    if isinstance(x, torch.Tensor) and x.dim() == 5 and x.shape[2] == n_slices:
        return {**opts, "x_init": x[:, :, start:stop]}
    return opts
