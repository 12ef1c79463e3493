"""The benchmark: held-out volumes × numbers of views × methods, plus the measured Diamond I13
scan, as tables and figures.

Every reconstruction is scored in 3D against its ground truth (PSNR, SSIM with data range 1) or,
for the measured scan, against SIRT from all its angles; with its data residual, wall time, NFE
and peak memory. Volumes are grouped by kind and full shape (``phantoms 64×64×64``, ...).
Results go to ``results.csv``, ``report.md``, ``psnr_vs_views.png`` and ``gallery.png`` in the
output directory.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import methods as registry
from ..ct import Projector
from ..ct.simulate import simulate_scan
from ..io.volumes import load_volume
from ..recon import psnr, reconstruct, ssim
from ..recon.calibration import coverage
from ..recon.slabs import plan_slabs, seam_ratio
from . import diamond_i13

FIELDS = ("group", "volume", "views", "method", "psnr", "ssim", "residual", "seconds", "nfe", "peak_memory_mb")
REAL_GROUP = "Diamond I13 (measured)"


@dataclass
class Row:
    group: str          # volumes scored together, e.g. "phantoms 64×64×64", or the measured scan
    volume: str
    views: int
    method: str
    psnr: float
    ssim: float
    residual: float
    seconds: float
    nfe: int
    peak_memory_mb: float


def volume_group(shape, description: dict) -> str:
    """Volumes scored together: simulated phantoms by shape (``phantoms 64×64×64``), the real VTK
    head (family ``real``) and the held-out real-CT crops (family ``real_ct``) apart from them."""
    family = description.get("family")
    kind = {"real": "real CT volume", "real_ct": "real CT (held out)"}.get(family, "phantoms")
    return f"{kind} " + "×".join(str(int(s)) for s in shape)


def _score(group, name, n_views, method, A, y, sigma_y, ref, *, scale=1.0, data_range=None, prior=None,
           steps=50, samples=1, seed=0, tv_lam=None, progress=True):
    """One reconstruction of ``y / scale`` (so that a [0, 1] prior fits), scored in 3D against ``ref``
    after multiplying back, with ``data_range`` as PSNR/SSIM peak (default: the reference's own
    max − min). Returns the row and the mean ``(Z, Y, X)`` as numpy."""
    kw = {}
    m = registry.get(method)
    if m.diffusion:  # an alias such as auto keeps its own number of steps (tomodiff.methods.AUTO)
        kw = dict(prior=prior, steps=steps if m.alias_of is None else None, n_samples=samples)
    if method == "tv" and tv_lam and n_views in tv_lam:
        kw["lam"] = tv_lam[n_views]
    # the benchmark set is stored in the priors' [0, 1] units, and real scans come here already divided by
    # their own ``scale``: no further scale step (scale=None), so rows compare methods, not estimators
    r = reconstruct(A, y / scale, method=method, sigma_y=sigma_y / scale, seed=seed, progress=progress,
                    scale=None, **kw)
    mean = scale * r.mean[0, 0].cpu().numpy()
    if data_range is None:
        data_range = float(ref.max() - ref.min())
    row = Row(group, name, n_views, method, float(psnr(mean, ref, data_range=data_range)),
              float(ssim(mean, ref, data_range=data_range)), r.residual, r.seconds, r.nfe, r.peak_memory_mb)
    return row, mean


def run_benchmark(volumes, views, methods, *, prior=None, steps=50, samples=1, noise=0.01, seed=0,
                  slices: int | None = None, tv_lam: dict | None = None, device="cpu", progress=True,
                  on_row=None) -> tuple[list[Row], dict]:
    """Reconstruct every (volume, views) scan with every method. ``slices``: keep only that many
    central axial slices of each volume (cheaper; scores are then over that slab). ``tv_lam``:
    TV weight per number of views (chosen beforehand on training phantoms, never on these).
    Returns the rows and, per volume, the central-slice images of the sparsest scan for the gallery."""

    rows, gallery = [], {}
    for name in volumes:
        vol, description = load_volume(name)
        group = volume_group(vol.shape, description)
        if slices is not None and slices < vol.shape[0]:
            z0 = (vol.shape[0] - slices) // 2
            vol = vol[z0:z0 + slices].contiguous()
        ref = vol.numpy()
        for n_views in views:
            y, geometry, sigma_y = simulate_scan(vol, views=n_views, noise=noise, seed=seed)
            A = Projector(geometry, device=device)
            for method in methods:
                row, mean = _score(group, name, n_views, method, A, y.to(device), sigma_y, ref, prior=prior,
                                   steps=steps, samples=samples, seed=seed, tv_lam=tv_lam, progress=progress)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
                if n_views == min(views):
                    gallery.setdefault(name, {"truth": ref[ref.shape[0] // 2]})[method] = mean[mean.shape[0] // 2]
    return rows, gallery


def run_real_scan(methods, *, steps_of_angles=(4, 8), prior=None, steps=50, samples=1, seed=0, path=None,
                  tv_lam=None, device="cpu", progress=True, on_row=None) -> tuple[list[Row], dict]:
    """The measured Diamond I13 scan (see :mod:`tomodiff.demos.diamond_i13`): every method from every
    ``k``-th angle, scored against SIRT from all 91 angles (PSNR/SSIM with the reference's value
    range as peak). Every method solves the problem scaled into the prior's [0, 1] range with the
    noise level estimated from air (both from the sparse scan only); results are scaled back."""

    scan = diamond_i13.load(path)
    ref = scan.reference().numpy()
    data_range = float(ref.max() - ref.min())
    name = "diamond_i13_24737"
    rows, gallery = [], {}
    for k in steps_of_angles:
        y, geometry = scan.sparse(k)
        A = Projector(geometry, device=device)
        y = y.to(device)
        scale, sigma_y = diamond_i13.prior_scaling(A, y)
        for method in methods:
            row, mean = _score(REAL_GROUP, name, geometry.n_angles, method, A, y, sigma_y, ref, scale=scale,
                               data_range=data_range, prior=prior, steps=steps, samples=samples, seed=seed,
                               tv_lam=tv_lam, progress=progress)
            rows.append(row)
            if on_row is not None:
                on_row(row)
            if k == max(steps_of_angles):
                z = ref.shape[0] // 2
                gallery.setdefault(name, {"truth": ref[z] / ref.max()})[method] = mean[z] / ref.max()
    return rows, gallery


def write_csv(rows, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(r).items()})
    return path


def summary_table(rows) -> list[dict]:
    """Mean over volumes of each (group, views, method): PSNR, SSIM, residual, seconds, NFE, peak
    memory; groups in order of appearance, views ascending, methods in the order they were run."""
    groups = list(dict.fromkeys(r.group for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    keys = sorted({(r.group, r.views, r.method) for r in rows},
                  key=lambda k: (groups.index(k[0]), k[1], methods.index(k[2])))
    out = []
    for group, views, method in keys:
        sel = [r for r in rows if (r.group, r.views, r.method) == (group, views, method)]
        out.append({"group": group, "views": views, "method": method, "n": len(sel),
                    **{f: float(np.mean([getattr(r, f) for r in sel])) for f in
                       ("psnr", "ssim", "residual", "seconds", "nfe", "peak_memory_mb")}})
    return out


def plot_psnr(rows, path: Path) -> Path:
    """PSNR against views, one panel per group, one line per method."""
    import matplotlib  # optional: matplotlib (figures only)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional: matplotlib (figures only)

    table = summary_table(rows)
    groups = list(dict.fromkeys(r["group"] for r in table))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.6 * len(groups), 3.8), squeeze=False)
    for ax, group in zip(axes[0], groups):
        sel = [r for r in table if r["group"] == group]
        for method in dict.fromkeys(r["method"] for r in sel):
            pts = [(r["views"], r["psnr"]) for r in sel if r["method"] == method]
            ax.plot(*zip(*pts), marker="o" if len(pts) > 1 else "s", label=method)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["views"] for r in sel}), [str(v) for v in sorted({r["views"] for r in sel})])
        ax.set_xlabel("number of views")
        ax.set_title(group, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("PSNR [dB] (mean over volumes)")
    for ax in axes[0]:  # each panel names its own methods (groups may differ, e.g. extra single-view rows)
        ax.legend(fontsize=7, ncol=2 if len(ax.get_lines()) > 8 else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_gallery(gallery: dict, path: Path, title: str = "central axial slice, sparsest scan") -> Path:
    """One row per volume (its truth or reference first), one column per method."""
    import matplotlib  # optional: matplotlib (figures only)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional: matplotlib (figures only)

    names = list(gallery)
    cols = list(dict.fromkeys(c for name in names for c in gallery[name]))
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
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # leave the title its own band
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_markdown(rows, setup: dict, path: Path, extra: str = "") -> Path:
    """The report: how it was made, then per group a table of means over its volumes."""
    table = summary_table(rows)
    lines = ["# tomodiff benchmark", "",
             f"Produced by `{setup.get('command', 'tomodiff benchmark')}` on {setup.get('machine', 'this machine')} "
             f"({time.strftime('%Y-%m-%d')}).", "",
             "Setup: " + ", ".join(f"{k}={v}" for k, v in setup.items() if k not in ("command", "machine")), ""]
    for group in dict.fromkeys(r["group"] for r in table):
        sel = [r for r in table if r["group"] == group]
        names = sorted({r.volume for r in rows if r.group == group})
        lines += [f"## {group}: mean over {len(names)} volume{'s' * (len(names) > 1)}", "",
                  "Volumes: " + ", ".join(f"`{n}`" for n in names), "",
                  "| views | method | PSNR [dB] | SSIM | residual | time [s] | NFE | peak MB |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in sel:
            lines.append(f"| {r['views']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['residual']:.4f} "
                         f"| {r['seconds']:.1f} | {r['nfe']:.0f} | {r['peak_memory_mb']:.0f} |")
        lines.append("")
    lines += ["![PSNR against views](psnr_vs_views.png)", "", "![gallery](gallery.png)", ""]
    if extra:
        lines += [extra, ""]
    lines += ["Per-reconstruction numbers: `results.csv`.", ""]
    path.write_text("\n".join(lines))
    return path


def seam_and_coverage(volume: str, prior, *, method: str = "auto", views: int = 8, samples: int = 8,
                      slices: int = 16, seam_slices: int = 64, slab: int = 32, overlap: int = 4, noise: float = 0.01,
                      seed: int = 0, k: float | None = None, device="cpu") -> dict:
    """Issue 12's two volume measurements for ``method`` on one volume.

    coverage: the fraction of voxels of the central ``slices`` whose truth lies in the central 90%
    interval ``mean ± k·z·std_raw`` of ``samples`` samples at ``views`` views, raw (``k = 1``) and with
    ``k`` (default: the run's own, as in its calibrated ``std``: from the training-fitted
    :data:`tomodiff.recon.calibration.TABLE`, ``k = 1`` where the table has no entry);
    seam ratio: :func:`tomodiff.recon.slabs.seam_ratio` of one reconstruction of the central
    ``seam_slices`` slices with slabs of ``slab`` sharing ``overlap`` (the truth's own ratio beside it).
    """

    if samples < 2:
        raise ValueError(f"coverage needs at least 2 samples, got {samples}")
    full, _ = load_volume(volume)

    def central(n):
        z0 = max(0, (full.shape[0] - n) // 2)
        return full[z0:z0 + n].contiguous()

    def solve(vol, **kw):
        y, geometry, sigma_y = simulate_scan(vol, views=views, noise=noise, seed=seed)
        return reconstruct(Projector(geometry, device=device), y.to(device), method=method, prior=prior,
                           sigma_y=sigma_y, seed=seed, progress=False, **kw)

    vol = central(slices)
    r = solve(vol, n_samples=samples)
    mean, std = r.mean[0, 0].cpu(), r.std_raw[0, 0].cpu()
    k = r.calibration["k"] if k is None else float(k)
    vol_s = central(seam_slices)
    plan = plan_slabs(vol_s.shape[0], slab, overlap)
    s = solve(vol_s, slab=slab, overlap=overlap)
    return {"volume": volume, "method": method, "views": views, "samples": samples, "k": k,
            "coverage_90_raw": coverage(mean, std, vol, 0.9), "coverage_90_calibrated": coverage(mean, std, vol, 0.9, k),
            "seam_ratio": seam_ratio(s.mean[0, 0].cpu(), plan), "seam_ratio_truth": seam_ratio(vol_s, plan),
            "plan": plan}


def seam_coverage_markdown(results: list[dict]) -> str:
    """A report section for :func:`seam_and_coverage` results, each target marked met or missed."""
    lines = ["## Uncertainty coverage and slab seams", "",
             "| volume | method | views | samples | 90% coverage raw | calibrated (k) | target 80–95% | seam ratio "
             "(truth) | target ≤ 1.2 |", "|---|---|---:|---:|---:|---:|---|---:|---|"]
    for d in results:
        cov_ok = 0.8 <= d["coverage_90_calibrated"] <= 0.95
        lines.append(f"| {d['volume']} | {d['method']} | {d['views']} | {d['samples']} | {d['coverage_90_raw']:.3f} | "
                     f"{d['coverage_90_calibrated']:.4f} ({d['k']:.2f}) | {'met' if cov_ok else 'missed'} | "
                     f"{d['seam_ratio']:.3f} ({d['seam_ratio_truth']:.3f}) | "
                     f"{'met' if d['seam_ratio'] <= 1.2 else 'missed'} |")
    return "\n".join(lines)
