"""TV-regularised least squares by the primal–dual hybrid gradient (Chambolle–Pock) method.

Solves, per ``(b, c)`` item,

    min_x  ½‖A x − y‖² + lam · TV(x)  (+ x ≥ 0 when ``nonneg``),   TV(x) = Σ_voxels ‖∇x‖₂

with isotropic TV over all of the domain's spatial dims (2D images or 3D volumes), forward
differences with unit (voxel) spacing and a zero difference at the far boundary (Neumann).

Notation (code -> Chambolle & Pock 2011, Alg. 1): ``K = [A; c∇]`` with ``c = ‖A‖/‖∇‖`` so both blocks
have the same norm (this balances the two dual updates), ``p``/``q`` the dual variables of the data
term and of TV, ``tau``/``sigma`` the primal/dual steps with ``tau·sigma·‖K‖² < 1``, ``x_bar`` the
over-relaxed primal point (θ = 1). The primal objective is not monotone along PDHG iterates, but it
converges to the minimum.

PWLS (``weights`` ``w``, e.g. 1/variance of each ray): the data term becomes ``½ Σ_i w̃_i (A x − y)_i²``
with ``w̃ = w / mean(w)`` (mean 1 per item, so that ``lam`` keeps its unweighted meaning); it is PDHG
on ``(W̃^½ A, W̃^½ y)``, whose norm is estimated by power iteration unless ``op_norm`` gives it.
"""

from __future__ import annotations

import math

import torch

from ..operators.base import LinearOperator
from ._common import (Callback, check_measurement, check_n_iter, check_operator, check_positive,
                      check_x0, iterations)
from .weights import SqrtWeighted, check_weights, normalized


def gradient(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Forward differences over the last ``ndim`` dims: ``(B, C, *S) -> (B, C, ndim, *S)``."""
    out = x.new_zeros((*x.shape[:2], ndim, *x.shape[2:]))
    for i in range(ndim):
        d = x.dim() - ndim + i
        n = x.shape[d]
        out[:, :, i].narrow(d, 0, n - 1).copy_(x.narrow(d, 1, n - 1) - x.narrow(d, 0, n - 1))
    return out


def divergence(g: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of :func:`gradient`: ``(B, C, ndim, *S) -> (B, C, *S)``."""
    ndim = g.shape[2]
    out = g.new_zeros((*g.shape[:2], *g.shape[3:]))
    for i in range(ndim):
        gi = g[:, :, i]
        d = gi.dim() - ndim + i
        n = gi.shape[d]
        # -(∇ᵀ g)_j = g_j − g_{j−1}, with g_{−1} = 0 and g_{n−1} ignored (it is always 0 in ∇x)
        out.narrow(d, 0, n - 1).add_(gi.narrow(d, 0, n - 1))
        out.narrow(d, 1, n - 1).sub_(gi.narrow(d, 0, n - 1))
    return out


def tv_objective(A: LinearOperator, x: torch.Tensor, y: torch.Tensor, lam: float, weights=None) -> torch.Tensor:
    """Per-item primal objective ``½‖A x − y‖²_W̃ + lam·TV(x)``, shape ``(B, C)`` (``weights`` as :func:`tv`)."""
    ndim = len(A.domain_shape)
    r = A.forward(x) - y
    w = check_weights(A, weights, y, "tv_objective")
    if w is not None:
        r = normalized(w).sqrt() * r
    data = 0.5 * (r * r).sum(dim=tuple(range(2, r.dim())))
    tv = gradient(x, ndim).pow(2).sum(dim=2).sqrt().sum(dim=tuple(range(2, x.dim())))
    return data + lam * tv


def tv(A: LinearOperator, y: torch.Tensor, *, lam: float, n_iter: int = 200,
       x0: torch.Tensor | None = None, nonneg: bool = True, op_norm: float | None = None, weights=None,
       callback: Callback | None = None, progress: bool = True) -> torch.Tensor:
    """TV-regularised reconstruction with ``n_iter`` Chambolle–Pock iterations.

    Parameters
    ----------
    A:
        Any :class:`~tomodiff.operators.LinearOperator` (a CT ``Projector`` of any backend); the
        TV acts on all dims of ``A.domain_shape`` — ``(Y, X)`` or ``(Z, Y, X)``.
    y:
        Measurements ``(B, C, *A.range_shape)``.
    lam:
        TV weight (>= 0), in units of ``y``² per (``x``-unit × voxel): the gradient uses voxel
        differences, not world-unit derivatives, so the same ``lam`` suits a resampled volume only
        approximately.
    n_iter:
        Number of PDHG iterations (>= 1).
    x0:
        Starting volume ``(B, C, *A.domain_shape)``; zeros by default. Dual variables start at 0.
    nonneg:
        Constrain ``x >= 0``.
    op_norm:
        ``‖A‖₂`` if known; otherwise estimated with ``A.norm()`` (power iteration, 50 steps, from a fixed seeded start).
        The steps are ``tau = sigma = 0.99 / (√2 · 1.01 ‖A‖)``. With ``weights``: ``‖W̃^½ A‖``.
    weights:
        PWLS weights per ray (``1/Var y_i`` or proportional; 0 ignores a ray), shape
        ``A.range_shape`` or ``y``'s, rescaled to mean 1 (module docstring); ``None``: unweighted.
    callback:
        ``callback(k, x)`` after iteration ``k`` (1-based); return value ignored.
    progress:
        Show a tqdm progress bar.

    Returns
    -------
    ``x`` of shape ``(B, C, *A.domain_shape)`` in ``y``'s dtype.
    """
    name = "tv"
    check_operator(A, name)
    y = check_measurement(A, y, name)
    n_iter = check_n_iter(n_iter, name)
    lam = check_positive(lam, "lam", name, allow_zero=True)
    x = check_x0(A, x0, y, name)
    ndim = len(A.domain_shape)
    w = check_weights(A, weights, y, name)
    if w is not None:  # PDHG on the weighted problem (W̃^½ A, W̃^½ y)
        w = normalized(w)
        A, y = SqrtWeighted(A, w), w.sqrt() * y
        norm_op = SqrtWeighted(A.A, w.flatten(0, 1).amax(0)[None, None])  # bounds every item's norm
    else:
        norm_op = A

    with torch.no_grad():
        if op_norm is None:  # from a fixed start: the same result in every run and on every rank
            op_norm = norm_op.norm(generator=torch.Generator(device=y.device).manual_seed(0), dtype=y.dtype,
                                   device=y.device)
        # power iteration approaches ‖A‖ from below: a 1% margin keeps tau·sigma·‖K‖² < 1
        norm_a = 1.01 * check_positive(op_norm, "op_norm (‖A‖)", name)
        grad_norm = math.sqrt(4.0 * ndim)          # ‖∇‖² ≤ 4·ndim for unit forward differences
        c = norm_a / grad_norm
        tau = sigma = 0.99 / (math.sqrt(2.0) * norm_a)
        radius = lam / c                           # lam·|∇x| = (lam/c)·|c∇x|

        if nonneg:
            x = x.clamp_min(0.0)
        x_bar = x.clone()
        p = torch.zeros_like(y)
        q = x.new_zeros((*x.shape[:2], ndim, *x.shape[2:]))
        for k in iterations(n_iter, progress, "TV-PDHG"):
            # 1. dual step on the data term: prox of σF*, F(z) = ½‖z − y‖²
            p = (p + sigma * (A.forward(x_bar) - y)) / (1.0 + sigma)
            # 2. dual step on TV: project each voxel's gradient vector onto the ball of `radius`
            q = q + (sigma * c) * gradient(x_bar, ndim)
            scale = (q.pow(2).sum(dim=2, keepdim=True).sqrt() / radius).clamp_min(1.0) \
                if radius > 0 else None
            q = q / scale if scale is not None else torch.zeros_like(q)
            # 3. primal step (Kᵀ = [Aᵀ, −c·div]) and the non-negativity prox
            x_new = x - tau * (A.adjoint(p) - c * divergence(q))
            if nonneg:
                x_new = x_new.clamp_min(0.0)
            # 4. over-relaxation
            x_bar = 2.0 * x_new - x
            x = x_new
            if callback is not None:
                callback(k, x)
    return x
