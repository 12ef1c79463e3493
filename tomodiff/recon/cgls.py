"""CGLS: conjugate gradient on the normal equations ``AᵀA x = Aᵀ y``, per ``(b, c)`` item.

Notation (code -> Björck's / Hestenes–Stiefel's CGLS): ``r = y − A x`` (residual), ``s = Aᵀ r``
(normal-equation residual), ``p`` (search direction), ``gamma = ‖s‖²``, ``alpha``, ``beta`` the
step and conjugation coefficients. Without ever forming ``AᵀA`` this minimises ``‖A x − y‖`` over
the growing Krylov spaces ``x0 + span{s0, AᵀA s0, ...}``, so ``‖y − A x_k‖`` never increases and
the error ``‖x_k − x*‖`` decreases too; ``‖Aᵀ r_k‖`` is *not* monotone in theory.
Each item has its own ``alpha``/``beta``, so the result of an item does not depend on the batch.

PWLS (``weights`` ``w``): CGLS on ``(W^½ A, W^½ y)``, i.e. ``argmin Σ_i w_i (A x − y)_i²``; ``r`` is
then the weighted residual ``W^½(y − A x)``. Scaling ``w`` does not change the iterates.
"""

from __future__ import annotations

import torch

from ..operators.base import LinearOperator
from ._common import (Callback, check_measurement, check_n_iter, check_operator, check_x0,
                      item_dot, iterations, per_item, safe_div)
from .weights import SqrtWeighted, check_weights


def cgls(A: LinearOperator, y: torch.Tensor, *, n_iter: int = 20, x0: torch.Tensor | None = None,
         weights=None, callback: Callback | None = None, progress: bool = True) -> torch.Tensor:
    """Least-squares ``argmin ‖A x − y‖²`` by ``n_iter`` CGLS iterations (early iterations regularise).

    Parameters
    ----------
    A:
        Any :class:`~tomodiff.operators.LinearOperator` with a matched adjoint (an unmatched one,
        such as ASTRA's 3D backprojector, breaks the conjugacy CGLS relies on).
    y:
        Measurements ``(B, C, *A.range_shape)``; for CT line integrals in world units.
    n_iter:
        Number of iterations (>= 1). Items whose normal-equation residual reaches exactly 0 stop
        moving (their step becomes 0).
    x0:
        Starting point ``(B, C, *A.domain_shape)``; zeros by default.
    weights:
        PWLS weights per ray (``1/Var y_i`` or proportional; 0 ignores a ray), shape
        ``A.range_shape`` or ``y``'s; ``None``: unweighted least squares.
    callback:
        ``callback(k, x)`` after iteration ``k`` (1-based); return value ignored.
    progress:
        Show a tqdm progress bar.

    Returns
    -------
    ``x`` of shape ``(B, C, *A.domain_shape)``. No non-negativity option: clamping would break
    the conjugate directions; use :func:`sirt` or :func:`tv` for constrained solutions.
    """
    name = "cgls"
    check_operator(A, name)
    y = check_measurement(A, y, name)
    n_iter = check_n_iter(n_iter, name)
    x = check_x0(A, x0, y, name)
    w = check_weights(A, weights, y, name)
    if w is not None:  # CGLS on the weighted problem (W^½ A, W^½ y)
        A, y = SqrtWeighted(A, w), w.sqrt() * y

    with torch.no_grad():
        r = y - A.forward(x) if x0 is not None else y.clone()
        s = A.adjoint(r)
        p = s.clone()
        gamma = item_dot(s, s)
        for k in iterations(n_iter, progress, "CGLS"):
            q = A.forward(p)
            alpha = safe_div(gamma, item_dot(q, q))
            x = x + per_item(alpha, p) * p
            r = r - per_item(alpha, q) * q
            s = A.adjoint(r)
            gamma_new = item_dot(s, s)
            beta = safe_div(gamma_new, gamma)
            p = s + per_item(beta, p) * p
            gamma = gamma_new
            if callback is not None:
                callback(k, x)
    return x
