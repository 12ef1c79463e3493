"""Block-average downsampling (the super-resolution forward model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import LinearOperator


class Downsample(LinearOperator):
    """Average non-overlapping ``factor × factor`` blocks: ``(B, C, H, W) -> (B, C, H/f, W/f)``.

    ``A Aᵀ = I / f²``, so the ΠGDM term is a scalar division.
    """

    def __init__(self, image_shape, factor: int):
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 2:
            raise ValueError(f"Downsample: image_shape must be (H, W), got {image_shape}")
        if int(factor) != factor or factor < 1:
            raise ValueError(f"Downsample: factor must be a positive integer, got {factor!r}")
        factor = int(factor)
        if image_shape[0] % factor or image_shape[1] % factor:
            raise ValueError(f"Downsample: image shape {image_shape} is not divisible by factor {factor}")
        super().__init__(image_shape, (image_shape[0] // factor, image_shape[1] // factor))
        self.factor = factor

    def _forward(self, x):
        return F.avg_pool2d(x.unsqueeze(1), self.factor).squeeze(1)

    def _adjoint(self, y):
        f = self.factor
        return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / (f * f)

    def _gram_solve_exact(self, y, sigma2, r2):
        denom = sigma2 + r2 / self.factor**2
        if isinstance(denom, torch.Tensor):
            return torch.where(denom > 0, y / torch.where(denom > 0, denom, torch.ones_like(denom)), 0.0 * y)
        return y / denom if denom > 0 else torch.zeros_like(y)

    def __repr__(self):
        return f"Downsample({self.domain_shape}, factor={self.factor})"
