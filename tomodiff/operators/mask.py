"""Pixel masks for inpainting and outpainting, and helpers that build them."""

from __future__ import annotations

import torch

from .base import LinearOperator


class Mask(LinearOperator):
    """Multiply by a fixed mask: ``(B, C, H, W) -> (B, C, H, W)``, zero where unobserved.

    ``mask`` has shape ``(H, W)`` (shared by every channel) or ``(C, H, W)``; values 1 for
    observed pixels and 0 for missing ones (any weights in [0, 1] work: the operator is the
    diagonal ``diag(m)``, so ``A Aᵀ = diag(m²)`` and the ΠGDM term is elementwise).
    A ``(C, H, W)`` mask makes ``C`` part of the operator's shape: inputs are ``(B, 1, C, H, W)``.
    """

    def __init__(self, mask: torch.Tensor):
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(mask)
        if mask.dim() not in (2, 3):
            raise ValueError(f"Mask: mask must have shape (H, W) or (C, H, W), got {tuple(mask.shape)}")
        mask = mask.to(torch.float64) if mask.dtype == torch.bool or not mask.is_floating_point() else mask
        if not torch.isfinite(mask).all() or (mask < 0).any() or (mask > 1).any():
            raise ValueError("Mask: mask values must be finite and in [0, 1]")
        super().__init__(mask.shape, mask.shape)
        self.mask = mask.detach()
        self._cache: dict = {}

    def _m(self, like):
        key = (like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = self.mask.to(dtype=like.dtype, device=like.device)
        return self._cache[key]

    def _forward(self, x):
        return x * self._m(x)

    _adjoint = _forward

    def _gram_solve_exact(self, y, sigma2, r2):
        denom = sigma2 + r2 * self._m(y) ** 2
        safe = torch.where(denom > 0, denom, torch.ones_like(denom))
        return torch.where(denom > 0, y / safe, torch.zeros_like(y))

    @property
    def observed_fraction(self) -> float:
        return float((self.mask > 0).double().mean())

    def __repr__(self):
        return f"Mask(shape={self.domain_shape}, observed={self.observed_fraction:.3f})"


def _check_hw(shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image shape must be (H, W) with positive entries, got {shape}")
    return shape


def random_pixel_mask(shape, keep: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean ``(H, W)`` mask keeping each pixel with probability ``keep`` (seeded)."""
    shape = _check_hw(shape)
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"random_pixel_mask: keep must be in [0, 1], got {keep}")
    return torch.rand(shape, generator=generator) < keep


def box_mask(shape, boxes) -> torch.Tensor:
    """Boolean ``(H, W)`` mask that hides each ``(top, left, height, width)`` box (inpainting)."""
    shape = _check_hw(shape)
    m = torch.ones(shape, dtype=torch.bool)
    for box in boxes:
        top, left, h, w = (int(v) for v in box)
        if h < 1 or w < 1 or top < 0 or left < 0 or top + h > shape[0] or left + w > shape[1]:
            raise ValueError(f"box_mask: box {box} does not fit in an image of shape {shape}")
        m[top:top + h, left:left + w] = False
    return m


def center_mask(shape, keep: float = 0.5) -> torch.Tensor:
    """Boolean ``(H, W)`` mask observing only a centred region covering ``keep`` of each side
    (outpainting: reconstruct what lies outside it)."""
    shape = _check_hw(shape)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"center_mask: keep must be in (0, 1], got {keep}")
    m = torch.zeros(shape, dtype=torch.bool)
    h, w = max(1, round(shape[0] * keep)), max(1, round(shape[1] * keep))
    top, left = (shape[0] - h) // 2, (shape[1] - w) // 2
    m[top:top + h, left:left + w] = True
    return m
