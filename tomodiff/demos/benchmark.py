"""The phantom benchmark: held-out volumes × numbers of views × methods, as tables and figures.

Every reconstruction is scored in 3D against its ground truth (PSNR, SSIM with data range 1),
with its data residual, wall time, NFE and peak memory. Results go to ``results.csv``,
``report.md``, ``psnr_vs_views.png`` and ``gallery.png`` in the output directory.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FIELDS = ("volume", "views", "method", "psnr", "ssim", "residual", "seconds", "nfe", "peak_memory_mb")


@dataclass
class Row:
    volume: str
    views: int
    method: str
    psnr: float
    ssim: float
    residual: float
    seconds: float
    nfe: int
    peak_memory_mb: float


def run_benchmark(volumes, views, methods, *, prior=None, steps=50, samples=1, noise=0.01, seed=0,
                  slices: int | None = None, tv_lam: dict | None = None, device="cpu", progress=True,
                  on_row=None) -> tuple[list[Row], dict]:
    """Reconstruct every (volume, views) scan with every method. ``slices``: keep only that many
    central axial slices of each volume (cheaper; scores are then over that slab). ``tv_lam``:
    TV weight per number of views (chosen beforehand on training phantoms, never on these).
    Returns the rows and, per volume, the central-slice images of the sparsest scan for the gallery."""
    from ..ct import Projector
    from ..ct.simulate import simulate_scan
    from ..io.volumes import load_volume
    from ..recon import psnr, reconstruct, ssim
    from ..recon.reconstruct import DIFFUSION

    rows, gallery = [], {}
    for name in volumes:
        vol, _ = load_volume(name)
        if slices is not None and slices < vol.shape[0]:
            z0 = (vol.shape[0] - slices) // 2
            vol = vol[z0:z0 + slices].contiguous()
        ref = vol.numpy()
        for n_views in views:
            y, geometry, sigma_y = simulate_scan(vol, views=n_views, noise=noise, seed=seed)
            y = y.to(device)
            A = Projector(geometry, device=device)
            for method in methods:
                kw = {}
                if method in DIFFUSION:
                    kw = dict(prior=prior, steps=steps, n_samples=samples)
                if method == "tv" and tv_lam and n_views in tv_lam:
                    kw["lam"] = tv_lam[n_views]
                r = reconstruct(A, y, method=method, sigma_y=sigma_y, seed=seed, progress=progress, **kw)
                mean = r.mean[0, 0].cpu().numpy()
                row = Row(name, n_views, method, float(psnr(mean, ref, data_range=1.0)),
                          float(ssim(mean, ref, data_range=1.0)), r.residual, r.seconds, r.nfe, r.peak_memory_mb)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
                if n_views == min(views):
                    gallery.setdefault(name, {"truth": ref[ref.shape[0] // 2]})[method] = mean[mean.shape[0] // 2]
    return rows, gallery


def write_csv(rows, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(r).items()})
    return path


def summary_table(rows) -> list[dict]:
    """Mean over volumes of each (views, method): PSNR, SSIM, seconds, NFE, peak memory."""
    out = []
    keys = sorted({(r.views, r.method) for r in rows}, key=lambda k: (k[0], k[1]))
    for views, method in keys:
        sel = [r for r in rows if r.views == views and r.method == method]
        out.append({"views": views, "method": method, "n": len(sel),
                    **{f: float(np.mean([getattr(r, f) for r in sel])) for f in
                       ("psnr", "ssim", "residual", "seconds", "nfe", "peak_memory_mb")}})
    return out


def plot_psnr(rows, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary_table(rows)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method in dict.fromkeys(r["method"] for r in table):
        pts = [(r["views"], r["psnr"]) for r in table if r["method"] == method]
        ax.plot(*zip(*pts), marker="o", label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of views")
    ax.set_ylabel("PSNR [dB] (mean over volumes)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_gallery(gallery: dict, path: Path, views: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(gallery)
    cols = list(gallery[names[0]])
    fig, axes = plt.subplots(len(names), len(cols), figsize=(1.8 * len(cols), 1.8 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(gallery[name].get(col, np.zeros((2, 2))), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(col, fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=6)
    fig.suptitle(f"central axial slice, {views} views", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_markdown(rows, setup: dict, path: Path, extra: str = "") -> Path:
    table = summary_table(rows)
    lines = ["# tomodiff phantom benchmark", "",
             f"Produced by `{setup.get('command', 'tomodiff benchmark')}` on {setup.get('machine', 'this machine')} "
             f"({time.strftime('%Y-%m-%d')}).", "",
             "Setup: " + ", ".join(f"{k}={v}" for k, v in setup.items() if k not in ("command", "machine")), "",
             "## Mean over volumes", "",
             "| views | method | n | PSNR [dB] | SSIM | residual | time [s] | NFE | peak MB |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {r['views']} | {r['method']} | {r['n']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r['residual']:.4f} | {r['seconds']:.1f} | {r['nfe']:.0f} | {r['peak_memory_mb']:.0f} |")
    lines += ["", "![PSNR against views](psnr_vs_views.png)", "", "![gallery](gallery.png)", ""]
    if extra:
        lines += [extra, ""]
    lines += ["Per-reconstruction numbers: `results.csv`.", ""]
    path.write_text("\n".join(lines))
    return path
