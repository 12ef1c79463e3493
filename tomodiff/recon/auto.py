"""``method="auto"``: the diffusion method and settings chosen by the sampler sweep, and warm starts.

The sweep (``benchmarks/sampler_sweep.py``, table in ``benchmarks/results/sampler_sweep.md``)
reconstructs training-seed phantoms only — never the benchmark volumes in ``phantoms/`` nor
held-out real CT — with every method × steps × key settings at 8 views, and its best row within
the step budget becomes :data:`AUTO`. Explicit arguments override it.

Warm starts: ``x_init="fbp" | "sirt" | "tv"`` (a string) is replaced, slab by slab, by that
classical reconstruction of the slab's data (:func:`warm_start`); the run then starts at
``x_init + σ_start·n`` (CCDF / ISCS).
"""

from __future__ import annotations

import torch

__all__ = ["AUTO", "WARM_STARTS", "resolve_auto", "warm_start"]

# The sweep's winner (see the module doc): method, steps and options for reconstruct().
AUTO = {"method": "dds", "steps": 20, "options": {}}
WARM_STARTS = ("fbp", "sirt", "tv")


def resolve_auto(steps, options: dict) -> tuple[str, int, dict]:
    """``(method, steps, options)`` for ``method="auto"``: :data:`AUTO`, with ``steps`` (unless
    ``None``) and explicit ``options`` taking precedence."""
    return AUTO["method"], AUTO["steps"] if steps is None else steps, {**AUTO["options"], **options}


def warm_start(A, y: torch.Tensor, kind: str) -> torch.Tensor:
    """The classical reconstruction ``kind`` (``"fbp" | "sirt" | "tv"``) of ``y``, ``(B, C, *A.domain_shape)``,
    with the defaults of :func:`tomodiff.recon.reconstruct` (FBP Hann filter, non-negative)."""
    if kind not in WARM_STARTS:
        raise ValueError(f"warm start x_init must be a tensor or one of {WARM_STARTS}, got {kind!r}")
    from . import fbp, sirt, tv
    from .reconstruct import CLASSICAL_DEFAULTS, TV_LAM_PER_VIEW

    if kind == "fbp":
        return fbp(A, y, filter="hann", nonneg=True)
    if kind == "sirt":
        return sirt(A, y, progress=False, **CLASSICAL_DEFAULTS["sirt"])
    n_views = A.geometry.n_angles if hasattr(A, "geometry") else 16
    return tv(A, y, progress=False, lam=TV_LAM_PER_VIEW * n_views, **CLASSICAL_DEFAULTS["tv"])
