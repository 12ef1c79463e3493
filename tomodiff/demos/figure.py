"""The 2D demo's outputs: the PNG grid and the text table."""

from __future__ import annotations

import numpy as np
import torch

from .image_tasks import Task
from .methods import METHOD_LABELS


def display(t: torch.Tensor, shape) -> np.ndarray:
    """A ``(1, 1, h, w)`` measurement as an ``shape`` image (nearest-neighbour upsampling of
    low-resolution ones; masked pixels stay 0)."""
    img = t[0, 0].detach().double().numpy()
    fy, fx = shape[0] // img.shape[0], shape[1] // img.shape[1]
    return np.kron(img, np.ones((fy, fx))) if (fy, fx) != (1, 1) else img


def save_figure(truth: torch.Tensor, tasks: list[Task], results: dict, path, *, title: str | None = None) -> None:
    """PNG: one row per task with measurement, each method's estimate (PSNR in the title), truth."""
    import matplotlib  # optional: matplotlib (figures only)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional: matplotlib (figures only)

    shape = tuple(truth.shape[-2:])
    methods = list(next(iter(results.values()))) if results else []
    ncol = len(methods) + 2
    fig, axes = plt.subplots(len(tasks), ncol, figsize=(1.9 * ncol, 2.05 * len(tasks) + 0.3), squeeze=False)
    for row, task in zip(axes, tasks):
        panels = [(display(task.y, shape), f"{task.name}\nmeasurement")]
        for m in methods:
            r = results[task.key][m]
            panels.append((r.estimate[0, 0].numpy(), f"{METHOD_LABELS[m]}\n{r.psnr:.1f} dB, SSIM {r.ssim:.2f}"))
        panels.append((truth[0, 0].numpy(), "truth"))
        for ax, (img, label) in zip(row, panels):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(label, fontsize=7)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_table(tasks: list[Task], results: dict) -> str:
    """Rows ``task  method  PSNR  SSIM  seconds  NFE``."""
    width = max(len(t.name) for t in tasks)
    lines = [f"{'task':<{width}}  {'method':<6}  {'PSNR [dB]':>9}  {'SSIM':>6}  {'time [s]':>8}  {'NFE':>4}"]
    for t in tasks:
        for m, r in results[t.key].items():
            lines.append(f"{t.name:<{width}}  {m:<6}  {r.psnr:9.2f}  {r.ssim:6.3f}  {r.seconds:8.2f}  {r.nfe:4d}")
    return "\n".join(lines)
