"""A lean U-Net with a noise-level embedding, 2D or 3D from one definition.

``UNet(dims=2)`` maps ``(B, C, H, W)`` to the same shape, ``UNet(dims=3)`` maps ``(B, C, D, H, W)``;
spatial sizes must be divisible by ``2 ** (len(channels) - 1)``. The noise level enters as
``c_noise`` (a ``(B,)`` tensor, EDM's ``ln(σ)/4``) through Fourier features and an MLP, and
modulates every residual block by a per-channel scale and shift. No attention: at 64² the 8²
bottleneck with 3x3 convolutions already sees the whole image, and attention is slow on CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv(dims: int):
    return {2: nn.Conv2d, 3: nn.Conv3d}[dims]


def _groups(c: int) -> int:
    for g in (8, 4, 2, 1):
        if c % g == 0:
            return g
    return 1


class NoiseEmbedding(nn.Module):
    """``c_noise (B,) -> (B, dim)``: fixed sinusoidal features then a two-layer MLP."""

    def __init__(self, dim: int, n_freq: int = 16):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(64.0), n_freq)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freq, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        a = c_noise[:, None].float() * self.freqs[None]
        return self.mlp(torch.cat([a.sin(), a.cos()], dim=1))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the second normalisation modulated by the noise embedding."""

    def __init__(self, dims: int, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        Conv = _conv(dims)
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), Conv(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), Conv(c_out, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.skip = Conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb).view(emb.shape[0], -1, *([1] * (x.dim() - 2))).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class UNet(nn.Module):
    """U-Net ``F(x, c_noise)`` with one residual block per level on the way down and two on the way up.

    dims: 2 or 3; in_channels; out_channels (default: in_channels; a 2.5D or conditional prior
    reads several channels and returns one); channels: width per resolution level (the first is
    full resolution); emb_dim: width of the noise embedding.
    """

    def __init__(self, dims: int = 2, in_channels: int = 1, channels=(32, 64, 96, 128), emb_dim: int = 128,
                 out_channels: int | None = None):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"UNet: dims must be 2 or 3, got {dims}")
        out_channels = in_channels if out_channels is None else int(out_channels)
        self.config = {"dims": dims, "in_channels": in_channels, "channels": list(channels), "emb_dim": emb_dim,
                       "out_channels": out_channels}
        Conv = _conv(dims)
        self.dims, self.levels = dims, len(channels)
        self.embed = NoiseEmbedding(emb_dim)
        self.stem = Conv(in_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        c_prev = channels[0]
        for c in channels:
            self.down.append(ResBlock(dims, c_prev, c, emb_dim))
            c_prev = c
        self.mid = ResBlock(dims, c_prev, c_prev, emb_dim)
        self.up = nn.ModuleList()
        for c in reversed(channels):
            self.up.append(ResBlock(dims, c_prev + c, c, emb_dim))
            c_prev = c
        self.head = nn.Sequential(nn.GroupNorm(_groups(c_prev), c_prev), nn.SiLU(), Conv(c_prev, out_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    @property
    def multiple(self) -> int:
        """Spatial sizes must be divisible by this."""
        return 2 ** (self.levels - 1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.dims + 2:
            raise ValueError(f"UNet({self.dims}D): expected a {self.dims + 2}D input, got shape {tuple(x.shape)}")
        if any(s % self.multiple for s in x.shape[2:]):
            raise ValueError(f"UNet: spatial shape {tuple(x.shape[2:])} must be divisible by {self.multiple}")
        emb = self.embed(c_noise.reshape(-1).expand(x.shape[0]))
        pool = F.avg_pool2d if self.dims == 2 else F.avg_pool3d
        h, skips = self.stem(x), []
        for i, block in enumerate(self.down):
            if i > 0:
                h = pool(h, 2)
            h = block(h, emb)
            skips.append(h)
        h = self.mid(h, emb)
        for i, block in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.head(h)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
