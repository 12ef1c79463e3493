"""SIRT: the simultaneous iterative reconstruction technique with row/column-sum weights.

Notation (code -> paper symbol, e.g. Gregor & Benson 2008): ``R = 1 / (A 1)`` (inverse row sums),
``C = 1 / (Aᵀ 1)`` (inverse column sums). Each iteration is

    x ← P( x + C Aᵀ R (y − A x) )          P = clamp to [min_value, max_value]

a projected gradient step on the weighted least-squares objective ``½‖A x − y‖²_R`` with the
diagonal preconditioner ``C``. For a non-negative ``A``, ``‖C^½ Aᵀ R A C^½‖ ≤ 1``, so step 1 is
stable and that objective never increases (with or without the box projection).

PWLS (``weights`` ``w``, e.g. 1/variance of each ray): ``R ← w·R`` and ``C ← 1/(Aᵀ w)`` (over the
rays that touch the volume), the same iteration for the objective ``½ Σ_i w_i (A x − y)_i² / (A 1)_i``.
The bound still holds: for any non-negative symmetric ``M = Aᵀ(wR)A``, ``diag(M 1)^{-½} M diag(M 1)^{-½}``
has norm ≤ 1, and ``M 1 = Aᵀ(w R A 1) = Aᵀ w``. Only the weights' ratios matter.
"""

from __future__ import annotations

import torch

from ..operators.base import LinearOperator
from ._common import (Callback, check_measurement, check_n_iter, check_operator, check_x0,
                      iterations)
from .weights import check_weights


def _inverse_sums(s: torch.Tensor, eps: float) -> torch.Tensor:
    # Rows that no voxel touches (detector pixels outside the volume's shadow) and voxels
    # that no ray crosses get weight 0: they carry no information.
    return torch.where(s > eps, 1.0 / s.clamp_min(eps), torch.zeros_like(s))


def sirt(A: LinearOperator, y: torch.Tensor, *, n_iter: int = 100, x0: torch.Tensor | None = None,
         nonneg: bool = True, max_value: float | None = None, relaxation: float = 1.0,
         weights=None, callback: Callback | None = None, progress: bool = True) -> torch.Tensor:
    """Reconstruct ``x`` from ``y ≈ A x`` with ``n_iter`` SIRT iterations.

    Parameters
    ----------
    A:
        Any :class:`~tomodiff.operators.LinearOperator` with non-negative entries (a CT
        ``Projector`` of any backend). Row and column sums are computed as ``A 1`` and ``Aᵀ 1``.
    y:
        Measurements, ``(B, C, *A.range_shape)`` — for CT a sinogram ``(B, C, A, U)`` or
        projections ``(B, C, A, V, U)`` of line integrals (world units × attenuation). Each
        ``(b, c)`` item is reconstructed independently in one batched call.
    n_iter:
        Number of iterations (>= 1).
    x0:
        Starting volume ``(B, C, *A.domain_shape)``; zeros by default.
    nonneg, max_value:
        Box constraint applied after every step: ``x >= 0`` when ``nonneg`` and ``x <= max_value``
        when given.
    relaxation:
        Step length in (0, 2); 1 is the classical SIRT (and guarantees monotone decrease of the
        weighted residual).
    weights:
        PWLS weights per ray (``1/Var y_i`` or proportional; 0 ignores a ray), shape
        ``A.range_shape`` or ``y``'s; ``None``: classical SIRT (all 1). See the module docstring.
    callback:
        ``callback(k, x)`` after iteration ``k`` (1-based) with the current ``(B, C, *domain)``
        estimate; its return value is ignored.
    progress:
        Show a tqdm progress bar.

    Returns
    -------
    ``x`` of shape ``(B, C, *A.domain_shape)`` in ``y``'s dtype — attenuation per world unit for CT.
    """
    name = "sirt"
    check_operator(A, name)
    y = check_measurement(A, y, name)
    n_iter = check_n_iter(n_iter, name)
    if not 0.0 < float(relaxation) < 2.0:
        raise ValueError(f"{name}: relaxation must lie in (0, 2), got {relaxation!r}")
    x = check_x0(A, x0, y, name)
    w = check_weights(A, weights, y, name)
    lo = 0.0 if nonneg else None

    with torch.no_grad():
        one_x = torch.ones((1, 1, *A.domain_shape), dtype=y.dtype, device=y.device)
        one_y = torch.ones((1, 1, *A.range_shape), dtype=y.dtype, device=y.device)
        row = A.forward(one_x)
        col = A.adjoint(one_y)
        if bool((row < 0).any()) or bool((col < 0).any()):
            raise ValueError(f"{name}: A 1 or Aᵀ 1 has negative entries; SIRT's weights need a "
                             "non-negative operator (e.g. a projector)")
        # relative threshold: sums below 1e-6 of the largest are numerically empty rays/voxels
        R = _inverse_sums(row, 1e-6 * float(row.max()))
        if w is not None:  # PWLS: R ← w·R, C ← 1/(Aᵀ w) over the rays that touch the volume
            R = w * R
            col = A.adjoint(w * (R > 0).to(y.dtype))
        Cw = relaxation * _inverse_sums(col, 1e-6 * float(col.max()))
        if lo is not None or max_value is not None:
            x = x.clamp(min=lo, max=max_value)
        for k in iterations(n_iter, progress, "SIRT"):
            x = x + Cw * A.adjoint(R * (y - A.forward(x)))
            if lo is not None or max_value is not None:
                x = x.clamp(min=lo, max=max_value)
            if callback is not None:
                callback(k, x)
    return x
