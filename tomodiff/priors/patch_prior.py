"""A 3D prior applied to volumes with overlapping sliding-window patches."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from .edm import sigma_per_sample
from .slice_prior import Prior


def _starts(n: int, size: int, stride: int) -> list[int]:
    """Window starts covering [0, n) with windows of ``size`` (n >= size), last one flush with the end."""
    s = list(range(0, n - size + 1, stride))
    if s[-1] != n - size:
        s.append(n - size)
    return s


def _profile(size: int, dtype) -> torch.Tensor:
    """1D blending weight of a window: a triangle, positive at the edges, peaked in the middle."""
    i = torch.arange(size, dtype=dtype)
    return torch.minimum(i + 1, size - i)


class PatchPrior(Prior):
    """3D prior. ``denoiser`` accepts ``(B, C, Z, Y, X)`` volumes (channels independent); the volume
    is cut into ``size``³ patches overlapping by ``1 - stride/size`` (default half), each patch is
    denoised (batched, chunks of ``max_batch``) and the results are blended with separable triangular
    weights. Volumes smaller than a patch are reflect/replicate-padded. sigma: float or B values.
    ``speed``: ``precision``, ``channels_last``, ``inference_mode`` as for :class:`Prior`
    (channels-last applies to 2D networks only)."""

    def __init__(self, net, size: int, info: dict | None = None, max_batch: int = 16, stride: int | None = None,
                 **speed):
        super().__init__(net, size, info, max_batch, **speed)
        self.stride = int(stride or size // 2)

    def denoiser(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"PatchPrior: expected a volume batch (B, C, Z, Y, X), got {tuple(x.shape)}; "
                             "use a slice prior for 2D images")
        P = self.size
        s = sigma_per_sample(sigma, x).reshape(-1)
        B, C, Z, Y, X = x.shape
        v = x.reshape(B * C, 1, Z, Y, X)
        sv = s.repeat_interleave(C)
        pads = []
        for n in (X, Y, Z):
            extra = max(0, P - n)
            pads += [extra // 2, extra - extra // 2]
        if any(pads):
            v = F.pad(v, pads, mode="reflect" if min(Z, Y, X) > max(pads) else "replicate")
        n = v.shape[2:]
        starts = list(itertools.product(*[_starts(m, P, self.stride) for m in n]))
        w1 = _profile(P, x.dtype).to(x.device)
        w = w1[:, None, None] * w1[None, :, None] * w1[None, None, :]
        out, wsum = torch.zeros_like(v), torch.zeros_like(v[:1, :1])
        # all patches of all batch items, in chunks
        index = [(b, st) for st in starts for b in range(v.shape[0])]
        for i in range(0, len(index), self.max_batch):
            chunk = index[i:i + self.max_batch]
            patches = torch.stack([v[b, :, z:z + P, y:y + P, q:q + P] for b, (z, y, q) in chunk])
            den = self._run(patches, sv[[b for b, _ in chunk]]) * w
            for k, (b, (z, y, q)) in enumerate(chunk):
                out[b:b + 1, :, z:z + P, y:y + P, q:q + P] = out[b:b + 1, :, z:z + P, y:y + P, q:q + P] + den[k]
        for z, y, q in starts:
            wsum[:, :, z:z + P, y:y + P, q:q + P] += w
        out = out / wsum
        if any(pads):
            out = out[:, :, pads[4]:pads[4] + Z, pads[2]:pads[2] + Y, pads[0]:pads[0] + X]
        return out.reshape(x.shape)
