"""Run every (task, method) pair of the 2D demo and score it against the truth."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..recon.metrics import psnr, ssim
from .image_tasks import Task
from .methods import solve


@dataclass
class Result:
    """One method on one task: ``estimate`` ``(1, 1, H, W)`` clipped to [0, 1], PSNR (dB, data
    range 1) and SSIM of the clipped estimate against the truth, wall time, NFE."""

    task: str
    method: str
    estimate: torch.Tensor
    psnr: float
    ssim: float
    seconds: float
    nfe: int

    def summary(self) -> dict:
        return {"psnr": round(self.psnr, 3), "ssim": round(self.ssim, 4), "seconds": round(self.seconds, 3),
                "nfe": self.nfe}


def score(estimate: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """``(PSNR dB, SSIM)`` of ``(1, 1, H, W)`` images, with the truth's own range as peak."""

    a, b = truth[0, 0].double().numpy(), estimate[0, 0].double().numpy()
    return float(psnr(b, a)), float(ssim(b, a))


def compare(truth: torch.Tensor, tasks: list[Task], methods, *, prior=None, noise_sigma: float,
            steps: int = 50, lam: float = 1e-3, zeta: float | None = None, seed: int = 0,
            progress: bool = False, log=None) -> dict[str, dict[str, Result]]:
    """``{task key: {method: Result}}`` for every task and method (see :func:`methods.solve`).

    ``truth``: ``(1, 1, H, W)`` in [0, 1]. ``log``: optional ``callable(str)`` told about each run.
    """
    out: dict[str, dict[str, Result]] = {}
    for task in tasks:
        out[task.key] = {}
        for method in methods:
            est = solve(method, task, prior=prior, noise_sigma=noise_sigma, steps=steps, lam=lam, zeta=zeta,
                        seed=seed, progress=progress)
            x = est.image.detach().clamp(0, 1)
            p, s = score(x, truth)
            out[task.key][method] = Result(task.key, method, x, p, s, est.seconds, est.nfe)
            if log is not None:
                log(f"{task.key:<15} {method:<6} PSNR {p:6.2f} dB  {est.seconds:6.1f} s")
    return out
