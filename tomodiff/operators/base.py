"""The linear-operator interface every forward model in tomodiff implements.

Shapes
------
An operator maps tensors of shape ``(B, C, *domain_shape)`` to ``(B, C, *range_shape)``.
``domain_shape`` / ``range_shape`` never include the batch and channel dims; every
operator acts on each ``(b, c)`` item independently.

Subclasses implement ``_forward`` and ``_adjoint`` on tensors whose leading dims have
been flattened to one, ``(N, *domain_shape)`` -> ``(N, *range_shape)``; the base class
validates shapes and restores the ``(B, C)`` dims.

Calling ``A(x)`` (or ``A.T(y)``) goes through :class:`_ApplyLinear`, one
``torch.autograd.Function`` whose backward *is* the registered adjoint, so gradients
never trace the forward's internals (which may be ASTRA, a sparse matrix, an FFT).
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

from .dot_test import dot_test as _dot_test
from .solvers import conjugate_gradient

Shape = tuple[int, ...]


def _as_shape(shape: Sequence[int], what: str) -> Shape:
    try:
        out = tuple(int(s) for s in shape)
    except TypeError as err:
        raise TypeError(f"{what} must be a sequence of ints, got {shape!r}") from err
    if any(s < 1 for s in out):
        raise ValueError(f"{what} must have positive entries, got {out}")
    return out


class ShapedMap:
    """Shape bookkeeping shared by linear and nonlinear operators."""

    def __init__(self, domain_shape: Sequence[int], range_shape: Sequence[int]):
        self.domain_shape: Shape = _as_shape(domain_shape, "domain_shape")
        self.range_shape: Shape = _as_shape(range_shape, "range_shape")

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raise a clear error unless ``x`` has shape ``(B, C, *domain_shape)``; return it."""
        self._check(x, self.domain_shape, "input")
        return x

    def _check(self, t: torch.Tensor, shape: Shape, what: str) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{type(self).__name__}: {what} must be a torch.Tensor, got {type(t).__name__}")
        expected = f"(B, C, {', '.join(map(str, shape))})"
        if t.dim() != len(shape) + 2:
            raise ValueError(
                f"{type(self).__name__}: {what} must have {len(shape) + 2} dims {expected}, "
                f"got {t.dim()} dims with shape {tuple(t.shape)}")
        if tuple(t.shape[2:]) != shape:
            raise ValueError(
                f"{type(self).__name__}: {what} must have shape {expected}, got {tuple(t.shape)}")
        if not (t.is_floating_point() and t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)):
            raise TypeError(f"{type(self).__name__}: {what} must be a real floating tensor, got {t.dtype}")

    def _batched(self, fn, t, in_shape, out_shape, what):
        self._check(t, in_shape, what)
        lead = t.shape[:2]
        out = fn(t.reshape(-1, *in_shape))
        return out.reshape(*lead, *out_shape)


def check_measurement(A, y, who: str, *, dtypes=None) -> torch.Tensor:
    """``y`` must be a finite floating tensor of shape ``(B, C, *A.range_shape)`` (and, with
    ``dtypes``, of one of those dtypes); the error names ``who``, what was expected and what was
    received. Works for linear and nonlinear operators. The project's one measurement check."""
    if not hasattr(A, "range_shape"):
        raise TypeError(f"{who}: A must be an operator with a range_shape, got {type(A).__name__}")
    expected = f"(B, C, {', '.join(map(str, A.range_shape))})"
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{who}: y must be a torch.Tensor of shape {expected}, got {type(y).__name__}")
    if y.dim() != len(A.range_shape) + 2 or tuple(y.shape[2:]) != tuple(A.range_shape):
        raise ValueError(f"{who}: y must have shape {expected} (the range of {A!r}), got {tuple(y.shape)}")
    if not y.is_floating_point():
        raise TypeError(f"{who}: y must be a floating tensor, got {y.dtype}")
    if dtypes is not None and y.dtype not in dtypes:
        raise TypeError(f"{who}: y must be {' or '.join(str(d).replace('torch.', '') for d in dtypes)}, got {y.dtype}")
    bad = ~torch.isfinite(y)
    if bad.any():
        raise ValueError(f"{who}: y contains NaN or Inf ({int(bad.sum())} of {y.numel()} entries)")
    return y


class _ApplyLinear(torch.autograd.Function):
    """y = A x with dL/dx = Aᵀ dL/dy (and the same for Aᵀ, whose adjoint is A)."""

    @staticmethod
    def forward(ctx, x, op):  # noqa: D401 - torch API
        ctx.op = op
        return op.forward(x)

    @staticmethod
    def backward(ctx, grad_out):
        # Going through ``op.T(...)`` again (not ``op.adjoint``) keeps double-backward exact.
        return ctx.op.T(grad_out), None


class LinearOperator(ShapedMap):
    """A linear map between tensor spaces with a registered adjoint.

    Parameters
    ----------
    domain_shape, range_shape:
        Shapes of one item without batch and channel dims, e.g. ``(H, W)``.

    Subclasses override ``_forward`` and ``_adjoint`` (both on ``(N, *shape)`` tensors) and,
    when they know their spectrum, ``_gram_solve_exact`` (see :meth:`gram_solve`).
    """

    #: True when ``_adjoint`` is the exact transpose of ``_forward`` (dot test ~ machine eps).
    matched: bool = True

    def __init__(self, domain_shape: Sequence[int], range_shape: Sequence[int]):
        super().__init__(domain_shape, range_shape)
        self._transpose: LinearOperator | None = None

    # ------------------------------------------------------------------ to implement
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _gram_solve_exact(self, y: torch.Tensor, sigma2, r2) -> torch.Tensor:
        """Solve ``(sigma2 I + r2 A Aᵀ) z = y`` exactly on ``(N, *range_shape)``; or NotImplemented."""
        return NotImplemented

    # ------------------------------------------------------------------ public API
    @property
    def has_exact_gram_solve(self) -> bool:  # overridden by wrappers that delegate
        """Whether :meth:`gram_solve` uses a closed form (known spectrum) rather than CG."""
        return type(self)._gram_solve_exact is not LinearOperator._gram_solve_exact

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``A`` to ``x`` of shape ``(B, C, *domain_shape)``; returns ``(B, C, *range_shape)``."""
        return self._batched(self._forward, x, self.domain_shape, self.range_shape, "input")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply ``Aᵀ`` to ``y`` of shape ``(B, C, *range_shape)``; returns ``(B, C, *domain_shape)``."""
        return self._batched(self._adjoint, y, self.range_shape, self.domain_shape, "measurement")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable ``A x``: autograd's backward is :meth:`adjoint`."""
        return _ApplyLinear.apply(x, self)

    @property
    def T(self) -> "LinearOperator":
        """The adjoint operator, cached, with ``A.T.T is A``."""
        if self._transpose is None:
            self._transpose = _Adjoint(self)
        return self._transpose

    def gram_solve(self, y: torch.Tensor, *, sigma, r, tol: float = 1e-6, max_iter: int = 100,
                   method: str = "auto") -> torch.Tensor:
        """Return ``z = (sigma² I + r² A Aᵀ)⁻¹ y`` for ``y`` of shape ``(B, C, *range_shape)``.

        This is the ΠGDM measurement-space term. ``sigma`` and ``r`` are floats or per-item
        tensors broadcastable to ``(B, C, 1, ..., 1)``. ``method="exact"`` uses the operator's known
        spectrum (raises if it has none), ``"cg"`` the conjugate-gradient solver with ``tol``
        (relative residual) and ``max_iter``, ``"auto"`` exact when available.
        Where ``sigma² + r² λ = 0`` (e.g. ``sigma = 0`` on masked-out pixels) the
        pseudo-inverse convention is used: that component of ``z`` is 0.
        """
        self._check(y, self.range_shape, "measurement")
        if method not in ("auto", "exact", "cg"):
            raise ValueError(f"method must be 'auto', 'exact' or 'cg', got {method!r}")
        n = len(self.range_shape)
        # per-item coefficients, shaped (B, C, 1, ..., 1) or plain floats
        sigma2 = _per_item(_square(sigma, y), y, n)
        r2 = _per_item(_square(r, y), y, n)
        if method != "cg":
            flat = y.reshape(-1, *self.range_shape)
            z = self._gram_solve_exact(flat, _flatten_lead(sigma2), _flatten_lead(r2))
            if z is not NotImplemented:
                return z.reshape(y.shape)
            if method == "exact":
                raise NotImplementedError(
                    f"{type(self).__name__} has no closed-form gram solve; use method='cg'")

        def normal(z):
            return sigma2 * z + r2 * self.forward(self.adjoint(z))

        return conjugate_gradient(normal, y, tol=tol, max_iter=max_iter)

    def norm(self, *, n_iter: int = 50, tol: float = 1e-6, generator: torch.Generator | None = None,
             dtype=torch.float64, device=None) -> float:
        """Largest singular value ``‖A‖₂`` by power iteration on ``AᵀA``."""
        x = torch.randn((1, 1, *self.domain_shape), generator=generator, dtype=dtype, device=device)
        x = x / x.norm()
        estimate = 0.0
        for _ in range(n_iter):
            z = self.adjoint(self.forward(x))
            new = z.norm().item()
            if new == 0.0:
                return 0.0
            x = z / new
            if abs(new - estimate) <= tol * new:
                estimate = new
                break
            estimate = new
        return math.sqrt(estimate)

    def dot_test(self, **options) -> float:
        """Normalised adjoint error ``|<Ax, y> − <x, Aᵀy>| / (‖Ax‖ ‖y‖)`` of this operator; the
        options (``dtype``, ``generator``, ``device``, ``batch``) are those of
        :func:`tomodiff.operators.dot_test`."""
        return _dot_test(self, **options)

    # ------------------------------------------------------------------ algebra
    def __matmul__(self, other):
        if isinstance(other, LinearOperator):
            return _Composition(self, other)
        if isinstance(other, torch.Tensor):
            return self(other)
        return NotImplemented

    def __mul__(self, scalar):
        if isinstance(scalar, numbers.Real):
            return _Scaled(self, float(scalar))
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        if isinstance(scalar, numbers.Real):
            return _Scaled(self, 1.0 / float(scalar))
        return NotImplemented

    def __neg__(self):
        return _Scaled(self, -1.0)

    def __add__(self, other):
        if isinstance(other, LinearOperator):
            return _Sum(self, other)
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, LinearOperator):
            return _Sum(self, _Scaled(other, -1.0))
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}(domain_shape={self.domain_shape}, range_shape={self.range_shape})"

def _square(v, like: torch.Tensor):
    if isinstance(v, torch.Tensor):
        v = v.to(dtype=like.dtype, device=like.device)
        if (v < 0).any() or not torch.isfinite(v).all():
            raise ValueError("sigma and r must be finite and non-negative")
        return v * v
    v = float(v)
    if v < 0 or not math.isfinite(v):
        raise ValueError(f"sigma and r must be finite and non-negative, got {v}")
    return v * v


def _per_item(c, y: torch.Tensor, n_spatial: int):
    """A coefficient broadcastable to ``(B, C, 1, ..., 1)``, expanded to exactly that shape."""
    if not isinstance(c, torch.Tensor):
        return c
    per_item = (y.shape[0], y.shape[1]) + (1,) * n_spatial
    try:
        return torch.broadcast_to(c, per_item)
    except RuntimeError as err:
        raise ValueError(
            f"sigma and r must be floats or tensors broadcastable to per-item shape {per_item}, "
            f"got shape {tuple(c.shape)}") from err


def _flatten_lead(c):
    return c.reshape(-1, *c.shape[2:]) if isinstance(c, torch.Tensor) else c


class _Adjoint(LinearOperator):
    def __init__(self, op: LinearOperator):
        super().__init__(op.range_shape, op.domain_shape)
        self.op = op
        self._transpose = op
        self.matched = op.matched

    def _forward(self, x):
        return self.op._adjoint(x)

    def _adjoint(self, y):
        return self.op._forward(y)

    def __repr__(self):
        return f"{self.op!r}.T"


class _Composition(LinearOperator):
    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        if inner.range_shape != outer.domain_shape:
            raise ValueError(
                f"cannot compose: {type(outer).__name__} expects domain {outer.domain_shape} but "
                f"{type(inner).__name__} produces range {inner.range_shape}")
        super().__init__(inner.domain_shape, outer.range_shape)
        self.outer, self.inner = outer, inner
        self.matched = outer.matched and inner.matched

    def _forward(self, x):
        return self.outer._forward(self.inner._forward(x))

    def _adjoint(self, y):
        return self.inner._adjoint(self.outer._adjoint(y))

    def __repr__(self):
        return f"({self.outer!r} @ {self.inner!r})"


class _Scaled(LinearOperator):
    def __init__(self, op: LinearOperator, scale: float):
        super().__init__(op.domain_shape, op.range_shape)
        self.op, self.scale = op, scale
        self.matched = op.matched

    def _forward(self, x):
        return self.scale * self.op._forward(x)

    def _adjoint(self, y):
        return self.scale * self.op._adjoint(y)

    @property
    def has_exact_gram_solve(self) -> bool:
        return self.op.has_exact_gram_solve

    def _gram_solve_exact(self, y, sigma2, r2):
        # (σ²I + r²(sA)(sA)ᵀ) = (σ²I + (r s)² AAᵀ)
        return self.op._gram_solve_exact(y, sigma2, r2 * self.scale**2)

    def __repr__(self):
        return f"{self.scale!r} * {self.op!r}"


class _Sum(LinearOperator):
    def __init__(self, a: LinearOperator, b: LinearOperator):
        if a.domain_shape != b.domain_shape or a.range_shape != b.range_shape:
            raise ValueError(
                f"cannot add operators of shapes {a.domain_shape}->{a.range_shape} and "
                f"{b.domain_shape}->{b.range_shape}")
        super().__init__(a.domain_shape, a.range_shape)
        self.a, self.b = a, b
        self.matched = a.matched and b.matched

    def _forward(self, x):
        return self.a._forward(x) + self.b._forward(x)

    def _adjoint(self, y):
        return self.a._adjoint(y) + self.b._adjoint(y)

    def __repr__(self):
        return f"({self.a!r} + {self.b!r})"
