"""Input checks and small helpers shared by the classical reconstructions."""

from __future__ import annotations

import math
import numbers
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..operators.base import LinearOperator
from ..operators.base import check_measurement as _check_measurement

Callback = Callable[[int, torch.Tensor], object]


def check_operator(A, name: str) -> None:
    if not isinstance(A, LinearOperator):
        raise TypeError(f"{name}: A must be a tomodiff LinearOperator, got {type(A).__name__}")


def check_measurement(A: LinearOperator, y, name: str) -> torch.Tensor:
    """The one measurement check (:func:`tomodiff.operators.base.check_measurement`) with the
    classical solvers' dtype rule: float32 or float64."""
    return _check_measurement(A, y, name, dtypes=(torch.float32, torch.float64))


def check_x0(A: LinearOperator, x0, y: torch.Tensor, name: str) -> torch.Tensor:
    """The starting volume: zeros, or ``x0`` of shape ``(B, C, *A.domain_shape)`` (finite)."""
    shape = (*y.shape[:2], *A.domain_shape)
    if x0 is None:
        return torch.zeros(shape, dtype=y.dtype, device=y.device)
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"{name}: x0 must be a torch.Tensor of shape {shape}, got {type(x0).__name__}")
    if tuple(x0.shape) != shape:
        raise ValueError(f"{name}: x0 must have shape {shape} (y's batch dims + the operator's domain), "
                         f"got {tuple(x0.shape)}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError(f"{name}: x0 contains NaN or Inf")
    return x0.detach().to(dtype=y.dtype, device=y.device).clone()


def check_n_iter(n_iter, name: str) -> int:
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) or n_iter < 1:
        raise ValueError(f"{name}: n_iter must be an integer >= 1, got {n_iter!r}")
    return int(n_iter)


def check_positive(value, what: str, name: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: {what} must be a real number, got {value!r}") from err
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: {what} must be finite and {bound}, got {value!r}")
    return v


def iterations(n_iter: int, progress: bool, desc: str):
    """``range(1, n_iter + 1)`` wrapped in a tqdm bar unless ``progress`` is False."""
    return tqdm(range(1, n_iter + 1), desc=desc, disable=not progress, leave=False)


def item_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-item inner product over the non-(B, C) dims, shape ``(B, C)``."""
    return (a * b).sum(dim=tuple(range(2, a.dim())))


def per_item(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``(B, C)`` coefficient reshaped to broadcast against ``like`` ``(B, C, ...)``."""
    return c.reshape(*c.shape, *([1] * (like.dim() - 2)))


def safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den`` is 0 (items that have already converged)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))
