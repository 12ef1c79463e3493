"""The adjoint (dot-product) test every operator must pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # base imports this module for LinearOperator.dot_test
    from .base import LinearOperator


def dot_test(A: LinearOperator, *, dtype: torch.dtype = torch.float64,
             generator: torch.Generator | None = None, device=None,
             batch: tuple[int, int] = (1, 1)) -> float:
    """Normalised adjoint error ``|<Ax, y> − <x, Aᵀy>| / (‖Ax‖ ‖y‖)`` on random ``x``, ``y``.

    ``x`` has shape ``(*batch, *A.domain_shape)``, ``y`` ``(*batch, *A.range_shape)``, both
    standard normal from ``generator`` (drawn on the CPU, then moved to ``device``, so a seed
    gives the same numbers on any device). About 1e-15 for an exact transpose in float64.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    x = torch.randn((*batch, *A.domain_shape), generator=generator, dtype=dtype).to(device)
    y = torch.randn((*batch, *A.range_shape), generator=generator, dtype=dtype).to(device)
    ax = A.forward(x)
    aty = A.adjoint(y)
    lhs = torch.vdot(ax.flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), aty.flatten())
    scale = (ax.norm() * y.norm()).item()
    if scale == 0.0:
        raise ValueError(f"dot_test: A x is zero for a random x; {A!r} looks like a zero operator")
    return abs((lhs - rhs).item()) / scale
