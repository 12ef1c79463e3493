"""Whitening: a linear operator ``W A`` with ``W = diag(w)``, so that heteroscedastic noise becomes white.

For measurements ``y = A x + n`` with independent noise of per-ray std ``σ_i``, the whitened problem
``y' = W y = (W A) x + W n`` with ``w_i = s / σ_i`` has noise of one std ``s`` on every ray: any
solver or sampler that takes a scalar ``sigma_y`` then sees the right likelihood with
``sigma_y = s``, and least squares on it is the penalised weighted least squares (PWLS) objective
``Σ_i (A x − y)_i² s² / σ_i²``. :func:`whiten` builds both from a per-ray variance; ``s = 1`` gives
unit-variance noise, the default ``s = σ̄ = (mean 1/σ_i²)^{-½}`` keeps the data's scale (weights of
mean 1), so weights and step sizes tuned on the unweighted problem keep their meaning.

Shapes: ``A`` maps ``(B, C, *domain)`` to ``(B, C, *range)``; ``w`` is ``range``-shaped (one
weight per ray, shared by every item) or ``(B, C, *range)`` (per item).
"""

from __future__ import annotations

import math

import torch

from .base import LinearOperator

__all__ = ["Whitened", "whiten"]


class Whitened(LinearOperator):
    """``W A`` with ``W = diag(w)``: forward ``w · A x``, adjoint ``Aᵀ (w · y)`` (exact when ``A``'s is).

    A: any :class:`LinearOperator`; w: positive finite weights (the square roots of PWLS weights,
    ``s/σ_i``), of shape ``A.range_shape`` (every item) or ``(B, C, *A.range_shape)`` (per item,
    for inputs of that ``B, C``).
    """

    def __init__(self, A: LinearOperator, w: torch.Tensor):
        if not isinstance(A, LinearOperator):
            raise TypeError(f"Whitened: A must be a LinearOperator, got {type(A).__name__}")
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"Whitened: w must be a torch.Tensor of shape {A.range_shape}, got {type(w).__name__}")
        if tuple(w.shape[-len(A.range_shape):]) != tuple(A.range_shape) or w.dim() not in (len(A.range_shape),
                                                                                         len(A.range_shape) + 2):
            raise ValueError(f"Whitened: w must have shape {A.range_shape} or (B, C, {A.range_shape}), "
                             f"got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or bool((w <= 0).any()):
            raise ValueError("Whitened: w must be finite and positive (w_i = s / sigma_i)")
        super().__init__(A.domain_shape, A.range_shape)
        self.A = A
        self.w = w.reshape(-1, *A.range_shape) if w.dim() > len(A.range_shape) else w
        self.matched = A.matched

    def _weights(self, like: torch.Tensor) -> torch.Tensor:
        w = self.w.to(dtype=like.dtype, device=like.device)
        if w.dim() > len(self.range_shape) and w.shape[0] not in (1, like.shape[0]):
            raise ValueError(f"Whitened: per-item weights for {w.shape[0]} items, applied to {like.shape[0]}")
        return w

    def _forward(self, x):
        out = self.A._forward(x)
        return self._weights(out) * out

    def _adjoint(self, y):
        return self.A._adjoint(self._weights(y) * y)

    def __repr__(self):
        return f"Whitened({self.A!r}, w={tuple(self.w.shape)})"


def whiten(A: LinearOperator, y: torch.Tensor, variance, *, scale: float | None = None
           ) -> tuple[Whitened, torch.Tensor, float]:
    """The whitened problem ``(W A, W y, s)`` for per-ray noise ``variance``.

    Parameters
    ----------
    A: the forward operator; y: measurements ``(B, C, *A.range_shape)``.
    variance: per-ray noise variance in ``y``'s units squared, ``A.range_shape`` or ``y``'s shape
        (tensor or array), finite and positive.
    scale: the std ``s`` of the whitened noise; ``None``: ``σ̄ = (mean 1/variance)^{-½}`` (weights of
        mean 1, the data's own scale); ``1``: unit-variance noise.

    Returns
    -------
    ``(W A, W y, s)``: pass ``sigma_y = s`` to a sampler or to a χ²/m check on the whitened problem.
    """
    v = torch.as_tensor(variance).to(dtype=torch.float64)
    if not bool(torch.isfinite(v).all()) or bool((v <= 0).any()):
        raise ValueError("whiten: variance must be finite and positive")
    if tuple(v.shape) == tuple(y.shape):  # per item; one item shares its weights like a range-shaped one
        v = v if y.shape[0] * y.shape[1] > 1 else v.reshape(A.range_shape)
    elif tuple(v.shape) != tuple(A.range_shape):
        raise ValueError(f"whiten: variance must have shape {A.range_shape} or {tuple(y.shape)}, got {tuple(v.shape)}")
    s = float((1.0 / v).mean().rsqrt()) if scale is None else float(scale)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"whiten: scale must be finite and > 0, got {scale!r}")
    w = (s / v.sqrt()).to(y.dtype if y.is_floating_point() else torch.float32).to(y.device)
    return Whitened(A, w), w * y, s
