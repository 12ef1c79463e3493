"""A 2.5D prior: each axial slice is denoised from a stack of its 2k+1 neighbours.

Adjacent CT slices are nearly redundant; a network that sees them (k above and k below, all at
the same noise level) can average what a slice-by-slice prior has to guess. The network maps
``(N, 2k+1, H, W)`` stacks to the ``(N, 1, H, W)`` centre slices; :class:`SlabPrior` builds the
stacks from a volume (batched over Z) so that samplers, ΠGDM's vector-Jacobian product included,
see the usual ``D(x, sigma)`` on ``(B, C, Z, Y, X)`` volumes.
"""

from __future__ import annotations

import torch

from .edm import sigma_per_sample
from .slice_prior import Prior, _pad_to


def neighbour_stacks(x: torch.Tensor, context: int) -> torch.Tensor:
    """``(B, C, Z, Y, X)`` -> ``(B·C·Z, 2k+1, Y, X)``: for every slice z, slices z-k .. z+k.

    Beyond the ends of the volume the stack mirrors it (z = -1 reads slice 1), or repeats the
    edge slice where the volume is too short to mirror. Differentiable (a gather).
    """
    B, C, Z, Y, X = x.shape
    offsets = torch.arange(-context, context + 1, device=x.device)
    idx = torch.arange(Z, device=x.device)[:, None] + offsets[None]
    if Z > context:
        idx = torch.where(idx < 0, -idx, idx)
        idx = torch.where(idx > Z - 1, 2 * (Z - 1) - idx, idx)
    idx = idx.clamp(0, Z - 1)
    flat = x.reshape(B * C, Z, Y, X)
    return flat[:, idx.reshape(-1)].reshape(B * C * Z, 2 * context + 1, Y, X)


class SlabPrior(Prior):
    """2.5D prior (``net.context = k``). ``denoiser`` accepts ``(B, C, Z, Y, X)`` volumes: every
    channel's axial slice z is denoised from slices z-k .. z+k (mirrored at the ends, see
    :func:`neighbour_stacks`), in chunks of ``max_batch`` slices; sigma is a float or B values.

    Fallback: a single 2D image ``(B, C, H, W)`` is denoised as a stack of 2k+1 copies of itself
    (a through-plane-constant object), which is outside what the network was trained on; give
    volumes wherever there are neighbours. Sizes not a multiple of the network's downsampling
    factor are reflect-padded and cropped back, as for :class:`~tomodiff.priors.SlicePrior`.
    """

    @property
    def context(self) -> int:
        return int(self.net.context)

    def denoiser(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.dim() not in (4, 5):
            raise ValueError(f"SlabPrior: expected (B, C, Z, Y, X) or (B, C, H, W), got {tuple(x.shape)}")
        s = sigma_per_sample(sigma, x).reshape(-1)  # (B,)
        B, C = x.shape[:2]
        k = self.context
        if x.dim() == 5:
            stacks = neighbour_stacks(x, k)
            s_flat = s.repeat_interleave(C * x.shape[2])
        else:
            stacks = x.reshape(B * C, 1, *x.shape[2:]).expand(-1, 2 * k + 1, -1, -1)
            s_flat = s.repeat_interleave(C)
        padded, crop = _pad_to(stacks, self.net.net.multiple)
        out = self._chunked(padded, s_flat)
        if crop is not None:
            out = out[crop]
        return out.reshape(x.shape)
