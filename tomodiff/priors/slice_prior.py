"""A 2D prior applied to images, or to volumes slice by slice (axial slices batched over Z)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .edm import EDMDenoiser, sigma_per_sample


class Prior:
    """A trained denoiser with its model-card facts. ``denoiser(x, sigma)`` is the contract:
    x in data units ([0, 1] for phantoms), sigma the noise std in the same units."""

    def __init__(self, net: EDMDenoiser, size: int, info: dict | None = None, max_batch: int = 64):
        self.net, self.size, self.info, self.max_batch = net, int(size), dict(info or {}), int(max_batch)

    @property
    def name(self) -> str:
        return self.info.get("name", type(self).__name__)

    @property
    def sigma_max(self) -> float:
        """Noise level (data units) to start sampling from: EDM's σ_max = 40 in the network's
        normalised space, the top of what training showed the network (its unconditional-sample
        grids start there too)."""
        return 40.0 / self.net.scale

    def to(self, device):
        self.net.to(device)
        return self

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, size={self.size})"

    def __call__(self, x, sigma):
        return self.denoiser(x, sigma)

    def _chunked(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The network on a batch in chunks of ``max_batch``; ``s`` is ``(B,)``."""
        outs = [self.net(x[i:i + self.max_batch], s[i:i + self.max_batch]) for i in range(0, x.shape[0], self.max_batch)]
        return torch.cat(outs) if len(outs) > 1 else outs[0]


def _pad_to(x: torch.Tensor, multiple: int):
    """Reflect-pad the trailing spatial dims up to a multiple; returns (padded, crop slices)."""
    pads, crop = [], []
    for n in reversed(x.shape[2:]):
        extra = (-n) % multiple
        pads += [extra // 2, extra - extra // 2]
    for n in x.shape[2:]:
        extra = (-n) % multiple
        crop.append(slice(extra // 2, extra // 2 + n))
    if not any(pads):
        return x, None
    mode = "reflect" if min(x.shape[2:]) > max(pads) else "replicate"
    return F.pad(x, pads, mode=mode), (slice(None), slice(None), *crop)


class SlicePrior(Prior):
    """2D prior. ``denoiser`` accepts ``(B, C, H, W)`` images or ``(B, C, Z, Y, X)`` volumes (each
    channel and axial slice denoised independently, all slices of the batch in chunks of
    ``max_batch``); sigma is a float or B values. Sizes that are not a multiple of the network's
    downsampling factor are reflect-padded and cropped back; the network was trained on
    ``size``² slices, other sizes work but are outside its training distribution."""

    def denoiser(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.dim() not in (4, 5):
            raise ValueError(f"SlicePrior: expected (B, C, H, W) or (B, C, Z, Y, X), got {tuple(x.shape)}")
        s = sigma_per_sample(sigma, x).reshape(-1)  # (B,)
        B, C = x.shape[:2]
        if x.dim() == 5:
            Z, Y, X = x.shape[2:]
            flat = x.reshape(B * C * Z, 1, Y, X)
            s_flat = s.repeat_interleave(C * Z)
        else:
            Y, X = x.shape[2:]
            flat, s_flat = x.reshape(B * C, 1, Y, X), s.repeat_interleave(C)
        padded, crop = _pad_to(flat, self.net.net.multiple)
        out = self._chunked(padded, s_flat)
        if crop is not None:
            out = out[crop]
        return out.reshape(x.shape)
