"""Guidances that make neighbouring slices of a volume agree, without backprop through the denoiser.

A slice prior denoises each axial slice on its own; nothing in it says that slice ``z`` and
``z + 1`` belong to one object. Two cheap corrections to ``x̂0`` (both ``needs_grad = False``):

- :func:`z_smoothing`: a few gradient steps on ``½‖x − x̂0‖² + λ·TV_z(x)`` (TV along Z only,
  Huber-smoothed), the slice coupling of DiffusionMBIR/DDS applied to the denoised estimate;
- :func:`known_slices`: pull chosen slices of ``x̂0`` towards given values — used to make an
  overlapping slab continue the slab before it (the SyncDiffusion idea, with the previous slab
  fixed instead of averaged every step).

Volumes are ``(N, C, Z, Y, X)``.
"""

from __future__ import annotations

import torch

from ._common import Guidance, StepContext

__all__ = ["z_smoothing", "known_slices", "ZSmoothing", "KnownSlices", "tv_z"]


def tv_z(x: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """Huber-smoothed total variation along Z, ``Σ sqrt((x[z+1] − x[z])² + ε²) − ε`` per item, ``(N,)``."""
    d = x[:, :, 1:] - x[:, :, :-1]
    return (torch.sqrt(d * d + eps * eps) - eps).flatten(1).sum(1)


def _tv_z_grad(x: torch.Tensor, eps: float) -> torch.Tensor:
    d = x[:, :, 1:] - x[:, :, :-1]
    phi = d / torch.sqrt(d * d + eps * eps)
    g = torch.zeros_like(x)
    g[:, :, :-1] -= phi
    g[:, :, 1:] += phi
    return g


class ZSmoothing(Guidance):
    """Build with :func:`z_smoothing`."""

    needs_grad = False

    def __init__(self, weight: float, iters: int = 10, eps: float = 0.01):
        if not weight >= 0:
            raise ValueError(f"z_smoothing: weight must be >= 0, got {weight}")
        if int(iters) != iters or iters < 1:
            raise ValueError(f"z_smoothing: iters must be a positive integer, got {iters}")
        if not eps > 0:
            raise ValueError(f"z_smoothing: eps must be > 0, got {eps}")
        self.weight, self.iters, self.eps = float(weight), int(iters), float(eps)

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        x0 = ctx.denoised.detach()
        if x0.dim() != 5 or x0.shape[2] < 2 or self.weight == 0:
            return torch.zeros_like(x0)
        # gradient descent with step 1/L, L = 1 + 4λ/ε the Lipschitz constant of the objective
        step = 1.0 / (1.0 + 4.0 * self.weight / self.eps)
        x = x0.clone()
        for _ in range(self.iters):
            x = x - step * ((x - x0) + self.weight * _tv_z_grad(x, self.eps))
        return x - x0

    def __repr__(self):
        return f"z_smoothing(weight={self.weight!r}, iters={self.iters}, eps={self.eps!r})"


def z_smoothing(weight: float, *, iters: int = 10, eps: float = 0.01) -> ZSmoothing:
    """Couple axial slices: replace ``x̂0`` by ``iters`` gradient steps on ``½‖x − x̂0‖² + weight·TV_z(x)``.

    ``weight`` is in data units (a jump of size ``d`` between slices costs about ``weight·|d|``);
    ``eps`` smooths |·| near 0.
    """
    return ZSmoothing(weight, iters=iters, eps=eps)


class KnownSlices(Guidance):
    """Build with :func:`known_slices`."""

    needs_grad = False

    def __init__(self, values: torch.Tensor, start: int, strength: float = 1.0):
        if values.dim() != 5:
            raise ValueError(f"known_slices: values must be (N, C, Z, Y, X), got {tuple(values.shape)}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"known_slices: strength must be in [0, 1], got {strength}")
        self.values, self.start, self.strength = values.detach(), int(start), float(strength)

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        x0 = ctx.denoised.detach()
        delta = torch.zeros_like(x0)
        n = self.values.shape[2]
        if self.values.shape[:2] != x0.shape[:2] or self.values.shape[3:] != x0.shape[3:] \
                or self.start + n > x0.shape[2]:
            raise ValueError(f"known_slices: values {tuple(self.values.shape)} at Z offset {self.start} do not fit "
                             f"the sample batch {tuple(x0.shape)}")
        sl = slice(self.start, self.start + n)
        delta[:, :, sl] = self.strength * (self.values.to(x0) - x0[:, :, sl])
        return delta

    def __repr__(self):
        return f"known_slices(Z={self.values.shape[2]} at {self.start}, strength={self.strength!r})"


def known_slices(values: torch.Tensor, *, start: int = 0, strength: float = 1.0) -> KnownSlices:
    """Pull slices ``start : start + Z'`` of ``x̂0`` towards ``values`` ``(N, C, Z', Y, X)`` by ``strength``
    (1 = replace them, as in inpainting by replacement)."""
    return KnownSlices(values, start, strength)
