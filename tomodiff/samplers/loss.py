"""Guidance by any differentiable loss on the denoised estimate (the DESIGN's custom guidance).

``x_next = x_next^uncond − ξ_t ∇_{x_t} L(x̂0(x_t))``: nonnegativity, a known region, a physics or
perceptual loss, a coupling loss between overlapping windows. Several guidances sum.

Notation map: ``loss`` → ``L``; ``scale`` → ``ξ_t`` (a float or a callable of ``σ_t``);
``denoised`` → ``x̂0``; ``x`` → ``x_t``.
"""

from __future__ import annotations

import torch

from ._common import Guidance, StepContext

__all__ = ["loss_guidance", "LossGuidance"]


class LossGuidance(Guidance):
    """Guidance by ``L(x̂0)``; build it with :func:`loss_guidance`."""

    needs_grad = True

    def __init__(self, loss, scale):
        if not callable(loss):
            raise TypeError(f"loss_guidance: loss must be callable, got {type(loss).__name__}")
        self.loss, self.scale = loss, scale

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        xi = float(self.scale(ctx.sigma)) if callable(self.scale) else float(self.scale)
        # 1. L(x̂0): a scalar or one value per item (summed: per-item losses stay independent)
        L = self.loss(ctx.denoised)
        if not isinstance(L, torch.Tensor) or not L.requires_grad:
            raise TypeError("loss_guidance: the loss must return a tensor that depends on its input x0_hat")
        # 2. ∇_{x_t} L through the denoiser
        (grad,) = torch.autograd.grad(L.sum(), ctx.x, retain_graph=True)
        # 3. a step −ξ∇ on x_next is a change −ξ∇/gain of x̂0
        return (-xi / ctx.gain) * grad

    def __repr__(self):
        return f"loss_guidance({self.loss!r}, scale={self.scale!r})"


def loss_guidance(loss, scale) -> LossGuidance:
    """Guide by ``loss(x0_hat) -> tensor`` (scalar or per item) with step ``scale`` (float or ``sigma -> ξ``)."""
    return LossGuidance(loss, scale)
