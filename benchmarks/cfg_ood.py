"""cfg (ct-cond) OUT of its training distribution: 3 and 96 views, fan beam, and a measured scan.

``ct-cond`` was trained on simulated parallel-beam scans with 4–64 views. This report puts the
conditional route (``method="cfg"``) where it was not trained, beside the classical baselines and
``auto`` (the shipped default prior, ct-slice), so that a conditional model that hallucinates off
its training distribution shows.

Simulated part: the held-out real-CT crops ``ct_abdomen_64`` and ``ct_chest_64`` (test volumes of
ct-cond and ct-slice), the central ``--slices`` axial slices; parallel beam at 3 and 96 views
(:func:`tomodiff.ct.simulate.simulate_scan`), fan beam at 8 and 16 views (the fan of
:mod:`benchmarks.cfg_heldout`: source at 2, detector at 1 volume width from the axis, solved slice by
slice as a batch of 2D scans); Gaussian noise 1% of max(y), σ_y known. Rows: FBP, SIRT, TV with the
weight rule (``method="tv"`` given σ_y: χ²/m 0.8), ``auto`` and ``cfg`` (the mean of ``--samples``
samples). PSNR and SSIM of the whole volume with the reference's data range; "below TV (rule)"
flags a PSNR below TV's.

Measured part: Diamond I13 (``diamond_i13_24737/24737_raw.npz`` in the shared data folder), detector
rows ``--rows``, reconstructed with the ``tomodiff reconstruct`` command line: SIRT from all 91
angles (``--center-offset auto --air-region 0:20,0:20``) is the reference; SIRT, TV, auto and cfg
from every 8th angle (``--thin 8``: 12 angles) with the centre found on the full scan. PSNR
against the reference with its data range; a figure of the central row.

    OMP_NUM_THREADS=1 python -m benchmarks.cfg_ood --out benchmarks/results/cfg_ood.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from tomodiff import methods
from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.io.volumes import load_volume
from tomodiff.priors import load
from tomodiff.recon import reconstruct
from tomodiff.recon.consistency import data_consistency
from tomodiff.recon.metrics import psnr, ssim

from .cfg_heldout import fan_scan
from .volumes import central

VOLUMES = ("ct_abdomen_64", "ct_chest_64")
SCANS = (("parallel", 3), ("parallel", 96), ("fan", 8), ("fan", 16))
I13 = Path("diamond_i13_24737") / "24737_raw.npz"
I13_METHODS = ("sirt", "tv", "auto", "cfg")
LABELS = {"fbp": "FBP", "sirt": "SIRT", "tv": "TV (weight rule)", "auto": "auto (ct-slice)",
          "cfg": "cfg (ct-cond)"}


def simulated(args, rows):
    """Fill ``rows[(scan, label)]`` with ``[(psnr, ssim, chi2/m, seconds) or refusal text, ...]``."""
    cond = load("ct-cond", precision="auto")
    slice_prior = load("ct-slice", precision="auto")
    for name in args.volumes.split(","):
        vol = central(load_volume(name)[0], args.slices)
        rng = float(vol.max() - vol.min())
        for kind, views in SCANS:
            if kind == "fan":
                y, A, sigma_y = fan_scan(vol, views, 0.01, seed=1)
                ref, slab = vol[:, None], {}
            else:
                y, geometry, sigma_y = simulate_scan(vol, views=views, noise=0.01, seed=1)
                A, ref, slab = Projector(geometry), vol[None, None], {"slab": None}
            scan = f"{kind} {views}"
            for m in ("fbp", "sirt", "tv", "auto", "cfg"):
                kw = {}
                if m == "tv":
                    kw = {"sigma_y": sigma_y}
                elif m in ("auto", "cfg"):
                    kw = {"prior": slice_prior if m == "auto" else cond, "sigma_y": sigma_y,
                          "n_samples": args.samples, **slab}
                try:
                    r = reconstruct(A, y, method=m, progress=False, **kw)
                except Exception as e:  # a refusal is the row
                    rows.setdefault((scan, LABELS[m]), []).append(f"refused: {type(e).__name__}: {e}")
                    print(f"{name:14s} {scan:12s} {m:5s} REFUSED {e}", flush=True)
                    continue
                x = r.mean.detach().cpu()
                z = x.reshape(ref.shape[0] * ref.shape[1], *ref.shape[-2:]) if kind == "fan" else x[0, 0]
                r0 = ref.reshape(z.shape)
                p, s = psnr(z, r0, rng), ssim(z, r0, rng)
                chi2 = data_consistency(A, r.mean, y, sigma_y)["chi2_per_m"]
                rows.setdefault((scan, LABELS[m]), []).append((p, s, chi2, r.seconds))
                print(f"{name:14s} {scan:12s} {m:5s} {p:6.2f} dB  SSIM {s:.3f}  chi2/m {chi2:7.2f}  "
                      f"{r.seconds:6.1f} s", flush=True)


def cli(path, out, method, extra, samples):
    """One ``tomodiff reconstruct`` of the I13 file; returns (volume, its JSON summary, stderr)."""
    import h5py
    cmd = [str(Path(sys.executable).parent / "tomodiff"), "reconstruct", str(path), "--method", method,
           "--air-region", "0:20,0:20", "--out", str(out), "--threads", "1", "--json", *extra]
    if method in ("auto", "cfg"):
        cmd += ["--samples", str(samples), "--seed", "0"]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    with h5py.File(out, "r") as f:
        x = f["reconstruction/mean"][()]
        center = json.loads(f["provenance"].attrs["json"]).get("preprocessing", {}).get("center", {})
    return x, {**json.loads(p.stdout), "center": center}, p.stderr, cmd


def chi2_of(summary):
    """χ²/m from a ``--json`` summary (diffusion: data_consistency; classical: noise)."""
    for key in ("data_consistency", "noise"):
        d = summary.get(key) or {}
        if isinstance(d, dict) and d.get("chi2_per_m") is not None:
            return float(d["chi2_per_m"])
    return float("nan")


def measured(args, work: Path):
    """I13 rows and the central-row images: (rows, images, reference command, offset, sparse auto offset)."""
    path = Path(args.data_dir) / I13
    rows_opt = ["--rows", args.rows]
    ref, s, err, ref_cmd = cli(path, work / "ref.h5", "sirt", rows_opt + ["--center-offset", "auto"], 0)
    off = float(s["center"]["offset_px"])
    rng = float(ref.max() - ref.min())
    out, images = [], {"SIRT, 91 angles (reference)": ref[ref.shape[0] // 2]}
    sparse_auto = None
    for m in I13_METHODS:
        x, s, err, cmd = cli(path, work / f"{m}12.h5", m,
                             rows_opt + ["--thin", "8", "--center-offset", f"{off:+.2f}"], args.samples)
        p, q = psnr(x, ref, rng), ssim(x, ref, rng)
        warn = "; ".join(line.split("warning: ", 1)[1].split(";")[0] for line in err.splitlines()
                         if "warning:" in line)
        out.append((LABELS[m], p, q, chi2_of(s), s["seconds"], warn))
        images[f"{LABELS[m]}, 12 angles\n{p:.2f} dB"] = x[x.shape[0] // 2]
        print(f"I13 12 angles {m:5s} {p:6.2f} dB  SSIM {q:.3f}  chi2/m {chi2_of(s):6.2f}  {s['seconds']:.1f} s "
              f"{warn}", flush=True)
    # what auto would choose on the 12 angles alone (the sparse runs above use the full scan's centre)
    _, s, _, _ = cli(path, work / "fbp12_auto.h5", "fbp", rows_opt + ["--thin", "8", "--center-offset", "auto"], 0)
    sparse_auto = s["center"].get("offset_px")
    return out, images, ref_cmd, off, sparse_auto


def figure(images, path: Path, rows: str, half: int = 24):
    """Three rows: the whole slice, a zoom on the sample, and the zoom's difference to the reference."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(2.6 * len(images), 8.4), layout="constrained")
    axes = fig.subplots(3, len(images))
    ref = next(iter(images.values()))
    lo, hi = np.percentile(ref, 0.5), np.percentile(ref, 99.5)
    w = np.argwhere(ref > 0.5 * hi)
    cy, cx = (w.min(0) + w.max(0)) // 2 if len(w) else (ref.shape[0] // 2, ref.shape[1] // 2)
    zy = slice(max(cy - half, 0), cy + half)
    zx = slice(max(cx - half, 0), cx + half)
    d = 0.25 * (hi - lo)
    for j, (title, im) in enumerate(images.items()):
        axes[0, j].imshow(im, cmap="gray", vmin=lo, vmax=hi)
        axes[0, j].set_title(title, fontsize=9)
        axes[1, j].imshow(im[zy, zx], cmap="gray", vmin=lo, vmax=0.5 * hi)
        axes[2, j].imshow(im[zy, zx] - ref[zy, zx], cmap="RdBu_r", vmin=-d, vmax=d)
        for i in range(3):
            axes[i, j].set_axis_off()
    axes[1, 0].set_title(f"zoom {2 * half}² px, grey up to half the peak", fontsize=8)
    axes[2, 0].set_title("minus the reference (±25% of its range)", fontsize=8)
    fig.suptitle(f"Diamond I13, central row of detector rows {rows} (grey: the reference's 0.5–99.5 "
                 "percentiles)", fontsize=9)
    fig.savefig(path, dpi=100)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--volumes", default=",".join(VOLUMES))
    ap.add_argument("--rows", default="64:72", help="I13 detector rows (axial slices)")
    ap.add_argument("--data-dir", default=os.environ.get("TOMODIFF_SHARED_DATA", "/work/shared/data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/cfg_ood"))
    ap.add_argument("--skip-simulated", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    args.work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    rows = {}
    if not args.skip_simulated:
        simulated(args, rows)
    t_sim = time.perf_counter() - t_all
    i13, images, ref_cmd, off, sparse_auto = measured(args, args.work)
    png = (args.out.with_suffix(".png") if args.out else args.work / "cfg_ood.png")
    figure(images, png, args.rows)

    lines = ["# cfg out of its training distribution (ct-cond: simulated parallel beam, 4–64 views)", "",
             f"Made by `python -m benchmarks.cfg_ood` in {time.perf_counter() - t_all:.0f} s "
             f"({t_sim:.0f} s simulated) on {platform.machine()} (1 torch thread; two trainings shared the "
             "CPU, so seconds compare within a row group only). cfg ran with "
             f"`{methods.CFG['options']}`, {methods.CFG['steps']} steps; auto (ct-slice) with "
             f"`{methods.AUTO['options']}`. Diffusion rows are the **mean of {args.samples} samples** "
             "(χ²/m of the mean).", "",
             f"## Simulated: {', '.join(args.volumes.split(','))} (held out), central {args.slices} slices, "
             "1% noise, σ_y known", "",
             "PSNR/SSIM of the whole volume (data range: the reference's), the mean over the volumes; χ²/m "
             "1 = fits the data to the noise. Fan beam: source at 2, detector at 1 volume width from the axis, "
             "each slice a 2D scan. *below TV (rule)*: PSNR below TV with the weight rule on the same scan.", "",
             "| scan | method | PSNR (dB) | SSIM | χ²/m | s | below TV (rule) |",
             "|---|---|---:|---:|---:|---:|---|"]
    below = []
    for scan in dict.fromkeys(k[0] for k in rows):
        tv = rows.get((scan, LABELS["tv"]))
        tv_p = np.mean([v[0] for v in tv]) if tv and not any(isinstance(v, str) for v in tv) else None
        for label in LABELS.values():
            v = rows.get((scan, label))
            if v is None:
                continue
            if any(isinstance(e, str) for e in v):
                lines.append(f"| {scan} | {label} | {next(e for e in v if isinstance(e, str))} | | | | |")
                continue
            a = np.array(v)
            flag = ""
            if label != LABELS["tv"] and tv_p is not None:
                d = a[:, 0].mean() - tv_p
                flag = f"**yes** ({d:+.2f} dB)" if d < 0 else f"no ({d:+.2f} dB)"
                if d < 0 and label in (LABELS["auto"], LABELS["cfg"]):
                    below.append(f"{label} at {scan} ({d:+.2f} dB)")
            lines.append(f"| {scan} | {label} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.3f} | "
                         f"{a[:, 2].mean():.2f} | {a[:, 3].mean():.1f} | {flag} |")
    if rows:
        lines += ["", "Diffusion rows below TV (rule): " + (", ".join(below) if below else "none") + "."]
    lines += ["", "## Measured: Diamond I13, 12 of 91 angles, against SIRT from all 91", "",
              f"Detector rows {args.rows} (axial slices, 160² voxels), `tomodiff reconstruct` defaults "
              "(σ_y from the counts, PWLS weights for SIRT/TV). Reference: `" +
              " ".join(["tomodiff"] + ref_cmd[1:]).replace(str(Path(args.data_dir)), "$DATA")
              .replace(str(args.work) + "/", "") + "`, centre "
              f"offset {off:+.2f} px (auto on all 91 angles). The 12-angle runs add `--thin 8 --center-offset "
              f"{off:+.2f}`" + (f": auto on the 12 angles alone would pick {sparse_auto:+.2f} px, and a "
                                "reconstruction off the reference's centre would be scored against a shifted "
                                "object" if sparse_auto is not None else "") + ". PSNR/SSIM over the rows, data "
              "range the reference's. χ²/m as the command reports it (TV's rule aims at 0.8; a measured scan "
              "has more than Poisson noise in it).", "",
              "| method (12 angles) | PSNR (dB) | SSIM | χ²/m | s | warning |", "|---|---:|---:|---:|---:|---|"]
    for label, p, q, c, sec, warn in i13:
        lines.append(f"| {label} | {p:.2f} | {q:.3f} | {c:.2f} | {sec:.1f} | {warn} |")
    lines += ["", f"![I13 central row: reference, SIRT, TV, auto and cfg from 12 angles]({png.name})", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
