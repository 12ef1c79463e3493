"""Conjugate gradient for symmetric positive (semi-)definite systems, batched per item.

Each ``(b, c)`` item of a ``(B, C, ...)`` right-hand side is its own system, so results do
not depend on what else is in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class CGInfo:
    iterations: int
    relative_residual: torch.Tensor  # (B, C): ‖b − M x‖ / ‖b‖ per item at exit
    converged: bool


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-item inner product, keeping ``(B, C, 1, ..., 1)`` for broadcasting."""
    dims = tuple(range(2, a.dim()))
    return (a * b).sum(dim=dims, keepdim=True) if dims else a * b


def conjugate_gradient(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *,
                       x0: torch.Tensor | None = None, tol: float = 1e-6, max_iter: int = 100,
                       return_info: bool = False):
    """Solve ``M x = b`` for a symmetric positive semi-definite ``M`` given as ``apply``.

    Stops when every item's relative residual ``‖b − Mx‖/‖b‖`` is below ``tol`` or after
    ``max_iter`` iterations; an item stops changing once it has converged, so its solution does
    not depend on the rest of the batch. Items with ``b = 0`` return 0. For a singular but consistent
    system started from 0 the iterates stay in the range of ``M`` (minimum-norm solution).
    """
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    if not torch.isfinite(b).all():
        raise ValueError("conjugate_gradient: right-hand side contains NaN or Inf")
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = _dot(r, r)
    b_norm2 = _dot(b, b)
    threshold = (tol * tol) * b_norm2
    it = 0
    for it in range(1, max_iter + 1):
        if bool((rr <= threshold).all()):
            it -= 1
            break
        mp = apply(p)
        pmp = _dot(p, mp)
        # items that already converged are frozen, so an item's answer never depends on its batch
        active = (pmp > 0) & (rr > threshold)
        alpha = torch.where(active, rr / torch.where(active, pmp, torch.ones_like(pmp)),
                            torch.zeros_like(pmp))
        x = x + alpha * p
        r = r - alpha * mp
        rr_new = _dot(r, r)
        beta = torch.where(rr > 0, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)),
                           torch.zeros_like(rr))
        p = r + beta * p
        rr = rr_new
    if not return_info:
        return x
    rel = (rr / torch.where(b_norm2 > 0, b_norm2, torch.ones_like(b_norm2))).sqrt()
    rel = rel.reshape(rel.shape[:2]) if rel.dim() >= 2 else rel
    return x, CGInfo(iterations=it, relative_residual=rel, converged=bool((rr <= threshold).all()))
