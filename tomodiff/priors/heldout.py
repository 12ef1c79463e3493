"""The held-out denoising score that training logs and selects checkpoints by.

A fixed set of axial slices of volumes the network never trains on, at three scales (native,
2× and 4× coarser by block averaging), each centre-cropped to a multiple of 16 (at most 256²).
The score is the prior's denoising PSNR at σ = 0.1 minus that of the best Gaussian filter on the
same noisy slices (width tuned per scale: an oracle baseline), averaged over the scales. Noise is
seeded, so every evaluation of every checkpoint sees the same noisy slices.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .ct_data import FILL_LEVEL, Volume
from .evaluate import FILTER_WIDTHS, psnr

FACTORS = (1, 2, 4)


def _psnr(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-slice PSNR (dB) for data range 1; x, ref ``(N, 1, H, W)``."""
    return psnr(x, ref, axes=(1, 2, 3))


def eval_slices(volumes: list[Volume], n_per_volume: int = 6, max_size: int = 256,
                min_fill: float = 0.1) -> dict[int, list[torch.Tensor]]:
    """``{factor: [(1, 1, H, W) slices]}``: ``n_per_volume`` evenly spaced, non-empty axial slices
    of each volume, block-averaged by ``factor`` and centre-cropped to a multiple of 16."""
    out: dict[int, list[torch.Tensor]] = {f: [] for f in FACTORS}
    for v in volumes:
        Z = v.shape[0]
        cand = [z for z in np.linspace(0, Z - 1, 3 * n_per_volume).round().astype(int)
                if (v.data[z] > FILL_LEVEL).float().mean() >= min_fill]
        for z in cand[:: max(1, len(cand) // n_per_volume)][:n_per_volume]:
            s = v.data[int(z)][None, None]
            for f in FACTORS:
                d = F.avg_pool2d(s, f) if f > 1 else s
                h, w = (min(n, max_size) // 16 * 16 for n in d.shape[2:])
                if h < 32 or w < 32:
                    continue
                y0, x0 = (d.shape[2] - h) // 2, (d.shape[3] - w) // 2
                out[f].append(d[..., y0:y0 + h, x0:x0 + w].contiguous())
    return {f: s for f, s in out.items() if s}


class HeldOutScore:
    """Callable ``score(denoiser) -> dict`` on a fixed, seeded noisy set (see the module docstring)."""

    def __init__(self, volumes: list[Volume], sigma: float = 0.1, seed: int = 0, n_per_volume: int = 6):
        self.sigma, self.names = sigma, [v.name for v in volumes]
        rng = np.random.default_rng(seed)
        self.sets = {}
        for f, slices in eval_slices(volumes, n_per_volume).items():
            clean = [s.numpy() for s in slices]
            noisy = [(c + sigma * rng.standard_normal(c.shape)).astype(np.float32) for c in clean]
            gauss = max((np.mean([_psnr(ndimage.gaussian_filter(n, (0, 0, w, w)), c).mean()
                                  for n, c in zip(noisy, clean)]), w) for w in FILTER_WIDTHS)
            self.sets[f] = (clean, noisy, float(gauss[0]))

    @torch.no_grad()
    def __call__(self, denoiser) -> dict:
        per = {}
        params = getattr(denoiser, "parameters", None)
        dev = next(params()).device if params is not None else torch.device("cpu")
        for f, (clean, noisy, gauss) in self.sets.items():
            p = np.mean([_psnr(denoiser(torch.from_numpy(n).to(dev), self.sigma).float().cpu().numpy(), c).mean()
                         for n, c in zip(noisy, clean)])
            per[f] = {"prior_psnr": round(float(p), 3), "gaussian_psnr": round(gauss, 3),
                      "gain": round(float(p) - gauss, 3)}
        return {"gain": round(float(np.mean([d["gain"] for d in per.values()])), 3), "per_factor": per}
