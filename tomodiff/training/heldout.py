"""The held-out denoising score that training logs and selects checkpoints by.

A fixed set of axial slices of volumes the network never trains on, at three scales (native,
2× and 4× coarser by block averaging), each centre-cropped to a multiple of 16 (at most 256²).
The score is the prior's denoising PSNR at σ = 0.1 minus that of the best Gaussian filter on the
same noisy slices (width tuned per scale: an oracle baseline), averaged over the scales. Noise is
seeded, so every evaluation of every checkpoint sees the same noisy slices.

With ``context`` K > 0 every scored slice comes with its K neighbours on each side (the volume
block-averaged in-plane by the factor, and through the plane by the factor times the in-plane to
slice spacing ratio, so slices stay about as far apart as pixels), all equally noisy: the
denoiser is called on the ``(1, 1, 2K+1, H, W)`` stack, as a volume prior is, and only the centre
slice is scored. Slice-by-slice priors get the same score as without context, so 2.5D and 2D
priors compare on the same noisy slices.

:class:`ConditionalScore` scores a conditional prior: from FBP of simulated 8- and 16-view scans
of the same slices (1 % noise), the denoiser's one-step estimate ``D(x_σ, c, σ)`` at σ = 1 (the
slice is then mostly buried in noise, so the estimate rests on ``c``) against the FBP itself.
σ = 1 rather than larger: EDM's training noise (ln σ ~ N(−1.2, 1.2²) in [−1, 1] units) reaches
σ ≥ 4 in under 1 % of steps, so estimates there are poor long after σ = 1 is learnt.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .ct_data import FILL_LEVEL, Volume
from .ct_pairs import Acquisition, scan_and_reconstruct

FACTORS = (1, 2, 4)
# Widths (pixels) the oracle Gaussian filter is tuned over; the model cards' tables use the same grid.
FILTER_WIDTHS = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0)


def psnr(x: np.ndarray, ref: np.ndarray, axes) -> np.ndarray:
    """PSNR in dB for data range 1, reduced over ``axes``."""
    mse = np.mean((np.asarray(x, np.float64) - ref) ** 2, axis=axes)
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-20))


def _psnr(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-slice PSNR (dB) for data range 1; x, ref ``(N, 1, H, W)``."""
    return psnr(x, ref, axes=(1, 2, 3))


def _stack(v: Volume, z: int, f: int, context: int) -> torch.Tensor:
    """``(1, 1, 2K+1, H, W)`` slices around z of ``v`` coarsened by f (see the module docstring)."""
    fz = max(1, int(round(f * float(np.mean(v.spacing[1:])) / v.spacing[0]))) if context else 1
    Z = v.shape[0]
    zc = min(z // fz, (Z - fz) // fz) if Z >= fz else 0
    idx = zc + np.arange(-context, context + 1)
    n = max(Z // fz, 1)
    idx = np.abs(idx)
    idx = np.where(idx > n - 1, 2 * (n - 1) - idx, idx).clip(0, n - 1)
    slabs = [v.data[int(i) * fz:int(i) * fz + fz].mean(0) for i in idx]
    d = torch.stack(slabs)[:, None]  # (2K+1, 1, Y, X)
    d = F.avg_pool2d(d, f) if f > 1 else d
    return d.transpose(0, 1)[None]


def eval_slices(volumes: list[Volume], n_per_volume: int = 6, max_size: int = 256,
                min_fill: float = 0.1, context: int = 0) -> dict[int, list[torch.Tensor]]:
    """``{factor: [(1, 1, H, W) slices]}``: ``n_per_volume`` evenly spaced, non-empty axial slices
    of each volume, block-averaged by ``factor`` and centre-cropped to a multiple of 16; with
    ``context`` K, ``(1, 1, 2K+1, H, W)`` stacks centred on those slices."""
    out: dict[int, list[torch.Tensor]] = {f: [] for f in FACTORS}
    for v in volumes:
        Z = v.shape[0]
        cand = [z for z in np.linspace(0, Z - 1, 3 * n_per_volume).round().astype(int)
                if (v.data[z] > FILL_LEVEL).float().mean() >= min_fill]
        for z in cand[:: max(1, len(cand) // n_per_volume)][:n_per_volume]:
            for f in FACTORS:
                if context:
                    d = _stack(v, int(z), f, context)
                else:
                    s = v.data[int(z)][None, None]
                    d = F.avg_pool2d(s, f) if f > 1 else s
                h, w = (min(n, max_size) // 16 * 16 for n in d.shape[-2:])
                if h < 32 or w < 32:
                    continue
                y0, x0 = (d.shape[-2] - h) // 2, (d.shape[-1] - w) // 2
                out[f].append(d[..., y0:y0 + h, x0:x0 + w].contiguous())
    return {f: s for f, s in out.items() if s}


def _centre(a: np.ndarray) -> np.ndarray:
    """The centre slice ``(1, 1, H, W)`` of a ``(1, 1, 2K+1, H, W)`` stack (a 4D array unchanged)."""
    return a[:, :, a.shape[2] // 2] if a.ndim == 5 else a


class HeldOutScore:
    """Callable ``score(denoiser) -> dict`` on a fixed, seeded noisy set (see the module docstring)."""

    def __init__(self, volumes: list[Volume], sigma: float = 0.1, seed: int = 0, n_per_volume: int = 6,
                 context: int = 0):
        self.sigma, self.names, self.context = sigma, [v.name for v in volumes], int(context)
        rng = np.random.default_rng(seed)
        self.sets = {}
        for f, slices in eval_slices(volumes, n_per_volume, context=self.context).items():
            clean = [s.numpy() for s in slices]
            noisy = [(c + sigma * rng.standard_normal(c.shape)).astype(np.float32) for c in clean]
            gauss = max((np.mean([_psnr(ndimage.gaussian_filter(_centre(n), (0, 0, w, w)), _centre(c)).mean()
                                  for n, c in zip(noisy, clean)]), w) for w in FILTER_WIDTHS)
            self.sets[f] = (clean, noisy, float(gauss[0]))

    @torch.no_grad()
    def __call__(self, denoiser, device=None) -> dict:
        per = {}
        params = getattr(denoiser, "parameters", None)
        dev = device if device is not None else next(params()).device if params is not None else torch.device("cpu")
        for f, (clean, noisy, gauss) in self.sets.items():
            p = np.mean([_psnr(_centre(denoiser(torch.from_numpy(n).to(dev), self.sigma).float().cpu().numpy()),
                               _centre(c)).mean() for n, c in zip(noisy, clean)])
            per[f] = {"prior_psnr": round(float(p), 3), "gaussian_psnr": round(gauss, 3),
                      "gain": round(float(p) - gauss, 3)}
        return {"gain": round(float(np.mean([d["gain"] for d in per.values()])), 3), "per_factor": per}


class ConditionalScore:
    """Callable ``score(denoiser) -> dict`` for a conditional prior ``D(x, sigma, cond)`` (see the
    module docstring). ``gain``: mean PSNR of the one-step conditional estimate minus that of the
    FBP it was given, over the scales and view counts."""

    def __init__(self, volumes: list[Volume], views=(8, 16), noise: float = 0.01, sigma: float = 1.0,
                 seed: int = 0, n_per_volume: int = 6):
        self.sigma, self.names = float(sigma), [v.name for v in volumes]
        rng = np.random.default_rng(seed)
        self.sets = []
        for f, slices in eval_slices(volumes, n_per_volume).items():
            for n in views:
                acq = Acquisition(tuple(np.linspace(0, np.pi, n, endpoint=False)), (noise,))
                for k, clean in enumerate(slices):
                    g = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
                    cond = scan_and_reconstruct(clean, acq, g)
                    start = torch.from_numpy(rng.standard_normal(clean.shape).astype(np.float32))
                    self.sets.append((f, n, clean.numpy(), cond, start))

    @torch.no_grad()
    def __call__(self, denoiser, device=None) -> dict:
        dev = device if device is not None else next(denoiser.parameters()).device
        rows: dict[str, list] = {}
        for f, n, clean, cond, start in self.sets:
            x = (torch.from_numpy(clean) + self.sigma * start).to(dev)
            est = denoiser(x, self.sigma, cond.to(dev)).float().cpu().numpy()
            rows.setdefault(f"x{f}_{n}views", []).append((_psnr(est, clean).mean(), _psnr(cond.numpy(), clean).mean()))
        per = {key: {"prior_psnr": round(float(np.mean([r[0] for r in v])), 3),
                     "fbp_psnr": round(float(np.mean([r[1] for r in v])), 3)} for key, v in rows.items()}
        for d in per.values():
            d["gain"] = round(d["prior_psnr"] - d["fbp_psnr"], 3)
        return {"gain": round(float(np.mean([d["gain"] for d in per.values()])), 3), "per_setting": per}
