"""Forward models that are not linear: forward only, differentiated by autograd (for DPS)."""

from __future__ import annotations

import torch

from .base import LinearOperator, ShapedMap


class NonlinearOperator(ShapedMap):
    """Base for a differentiable, possibly nonlinear ``y = A(x)``.

    Subclasses implement ``_forward`` on ``(N, *domain_shape)`` tensors with ordinary
    differentiable torch code; autograd supplies the gradients DPS needs. Calling the operator
    checks shapes the same way :class:`LinearOperator` does.
    """

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._batched(self._forward, x, self.domain_shape, self.range_shape, "input")

    __call__ = forward

    def __repr__(self) -> str:
        return f"{type(self).__name__}(domain_shape={self.domain_shape}, range_shape={self.range_shape})"


class BeerLambert(NonlinearOperator):
    """Transmission measurement ``I = I0 · exp(−A x)`` of a linear projector ``A``.

    ``A`` gives line integrals of attenuation; ``I0`` is the unattenuated photon count per
    detector pixel (a float). Pair it with :class:`~tomodiff.operators.noise.PoissonNoise`
    at unit gain to simulate photon counts.
    """

    def __init__(self, A: LinearOperator, i0: float):
        super().__init__(A.domain_shape, A.range_shape)
        if not i0 > 0:
            raise ValueError(f"BeerLambert: i0 must be positive, got {i0}")
        self.A, self.i0 = A, float(i0)

    def _forward(self, x):
        # Goes through A's autograd bridge so the gradient uses the registered adjoint.
        return self.i0 * torch.exp(-self.A(x.unsqueeze(1)).squeeze(1))

    def __repr__(self):
        return f"BeerLambert({self.A!r}, i0={self.i0!r})"
