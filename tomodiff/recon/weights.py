"""PWLS weights for the classical solvers: the one check and the operator ``W^½ A`` they share.

Penalised weighted least squares replaces ``‖A x − y‖²`` by ``Σ_i w_i (A x − y)_i²`` with
``w_i = 1/Var(y_i)`` (or anything proportional to it: only the ratios matter to SIRT and CGLS,
and TV rescales them to mean 1 so that its ``lam`` keeps the unweighted meaning). Rays of weight 0
are ignored. Weights come from the counts of a raw scan (:func:`tomodiff.io.noise.line_integral_variance`).

Shapes: ``weights`` is ``A.range_shape`` (one weight per ray, every item) or ``(B, C, *A.range_shape)``
like ``y``; :func:`check_weights` returns ``(1 | B, 1 | C, *A.range_shape)`` in ``y``'s dtype and device.
"""

from __future__ import annotations

import torch

from ..operators.base import LinearOperator

__all__ = ["check_weights", "SqrtWeighted", "normalized"]


def check_weights(A: LinearOperator, weights, y: torch.Tensor, name: str) -> torch.Tensor | None:
    """``weights`` as a ``(1|B, 1|C, *range)`` tensor like ``y`` (``None`` passes through); one clear
    error for a wrong shape, negative, non-finite or all-zero weights."""
    if weights is None:
        return None
    w = torch.as_tensor(weights)
    rng = tuple(A.range_shape)
    if tuple(w.shape) == rng:
        w = w.reshape(1, 1, *rng)
    elif not (w.dim() == len(rng) + 2 and tuple(w.shape[2:]) == rng and w.shape[0] in (1, y.shape[0])
              and w.shape[1] in (1, y.shape[1])):
        raise ValueError(f"{name}: weights must have shape {rng} or {tuple(y.shape)} (one per ray), got {tuple(w.shape)}")
    w = w.to(dtype=y.dtype, device=y.device)
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"{name}: weights must be finite and >= 0 (1/variance of each ray)")
    if not bool((w.flatten(2).amax(-1) > 0).all()):
        raise ValueError(f"{name}: weights are all zero (for some item): no ray would count")
    return w


def normalized(w: torch.Tensor) -> torch.Tensor:
    """``w`` scaled to mean 1 over its rays (per item)."""
    return w / w.flatten(2).mean(-1).reshape(*w.shape[:2], *([1] * (w.dim() - 2)))


class SqrtWeighted(LinearOperator):
    """``W^½ A``: forward ``√w · A x``, adjoint ``Aᵀ(√w · r)``; ``w`` from :func:`check_weights`
    (zeros allowed). Applied to ``(B, C, ...)`` tensors only through :meth:`forward`/:meth:`adjoint`.
    It carries ``A.geometry`` for rules that count views; it is not a projector of that geometry
    (FBP of it would be wrong), and stays inside the classical solvers."""

    def __init__(self, A: LinearOperator, w: torch.Tensor):
        super().__init__(A.domain_shape, A.range_shape)
        self.A, self.sqrt_w = A, w.sqrt()
        self.matched = A.matched
        if getattr(A, "geometry", None) is not None:  # for rules that count views (TV's default weight)
            self.geometry = A.geometry

    def forward(self, x):
        return self.sqrt_w * self.A.forward(x)

    def adjoint(self, y):
        return self.A.adjoint(self.sqrt_w * y)

    def _forward(self, x):
        raise NotImplementedError("SqrtWeighted applies through forward/adjoint on (B, C, ...) tensors")

    _adjoint = _forward
