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

__all__ = ["AUTO", "WARM_STARTS", "resolve_auto", "warm_start", "slab_options"]

# The sweep's winner (see the module doc): method, steps and options for reconstruct(). Swept with
# slice-64 at 8 views on shepp_logan:11, texture:12, ellipsoids:13, foam:14 (central 8 slices, 1% noise):
# DDS as its paper runs it (CG on the least-squares problem, 2 iterations per step, η 0.85, TV along Z
# by ADMM ρ 10, λ 0.04), warm-started from TV at σ_start = 0.1, 20 steps: 27.08 dB, +2.26 dB over TV
# and at least +1.42 on every volume (tied to 0.01 dB with the same without ADMM; the ADMM couples
# slices, the 3D setting of DDS). Table: benchmarks/results/sampler_sweep.md.
AUTO = {"method": "dds", "steps": 20,
        "options": {"prox": False, "cg_iters": 2, "tv_z": (10.0, 0.04), "x_init": "tv", "sigma_start": 0.1}}
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


def slab_options(opts: dict, start: int, stop: int, n_slices: int) -> dict:
    """``opts`` for the slab of slices ``start:stop``: a warm start tensor ``x_init`` of the whole
    volume ``(B, C, n_slices, Y, X)`` is cut to the slab; anything else passes unchanged (a tensor
    of another shape then fails in the sampler with a clear shape error)."""
    x = opts.get("x_init")
    if isinstance(x, torch.Tensor) and x.dim() == 5 and x.shape[2] == n_slices:
        return {**opts, "x_init": x[:, :, start:stop]}
    return opts
