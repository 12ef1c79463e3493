"""Defaults of dds, diffpir, sdedit and pigdm on TRAINING volumes (issue 20): the numbers their registry
defaults (:mod:`tomodiff.methods`) were chosen by, so that none falls below SIRT and each fits the data to
χ²/m in [0.5, 2] with the true σ_y.

Volumes (training only, never the held-out set of ``benchmarks.no_collapse``): the real-CT corpus volumes
``lidc0314_chest`` and ``philips_head_phantom`` (ct-slice's training split, block-averaged to 64², as
``benchmarks.dps_step`` loads them) and the training-seed phantoms ``shepp_logan:11:64``, ``texture:12:64``;
the central ``--slices`` axial slices. Scans: parallel beam at 4/8/16/32 views, 1% noise, the true σ_y.
Rows: SIRT and TV (the weight rule) as yardsticks, then each candidate start of each method (ct-slice,
its default steps, mean of ``--samples``), sampled once with no final step; the ``final …`` variants take
the *same* samples and apply the final data-consistency step afterwards (what the ``final_cg`` /
``final_target`` options do inside ``sample_posterior``): none, ``final_cg 2`` (ΠGDM's old default), or
CGLS stopped where each sample's χ²/m reaches 1 (the discrepancy principle, at most 50 iterations:
:func:`tomodiff.samplers.discrepancy.discrepancy_cg`). Each result is appended to ``--log`` as it
finishes; the table (means over the volumes of a group, and the worst margin to SIRT) is rebuilt from the
whole log.

    OMP_NUM_THREADS=1 python -m benchmarks.defaults_sweep --data-dir ../shared/data \\
        --out benchmarks/results/defaults_sweep.md
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.io.volumes import load_volume
from tomodiff.priors import load
from tomodiff.recon import psnr, reconstruct
from tomodiff.recon.consistency import data_consistency
from tomodiff.samplers.discrepancy import discrepancy_cg
from tomodiff.samplers.posterior import final_data_step

from .tv_weight_rule import corpus_block
from .volumes import central

VOLUMES = {"lidc0314_chest": "real CT", "shepp_logan:11:64": "phantom", "philips_head_phantom": "real CT",
           "texture:12:64": "phantom"}
WARM = {"x_init": "tv", "sigma_start": 0.1}
# (label, method, options): the old default first, then the candidates
CANDIDATES = [
    ("dds cold (old default)", "dds", {}),
    ("dds from TV σ 0.1", "dds", WARM),
    ("diffpir cold (old default)", "diffpir", {}),
    ("diffpir from TV σ 0.1", "diffpir", WARM),
    ("sdedit FBP t0 0.35 (old default)", "sdedit", {"t0": 0.35}),
    ("sdedit TV t0 0.35", "sdedit", {"t0": 0.35, "x_init": "tv"}),
    ("sdedit TV t0 0.2", "sdedit", {"t0": 0.2, "x_init": "tv"}),
    ("pigdm cold", "pigdm", {}),
    ("pigdm from TV σ 0.1", "pigdm", WARM),
]
FINALS = {"final none": None, "final_cg 2": ("cg", 2), "final stop χ²/m 1": ("stop", 50)}


def load_block(data_dir: Path, name: str, slices: int) -> torch.Tensor:
    if ":" in name:  # a training-seed phantom FAMILY:SEED:SIZE
        vol, desc = load_volume(name)
        if (desc.get("seed") or 0) >= 2_000_000_000:
            raise SystemExit(f"{name}: a benchmark-range seed; this sweep uses training seeds only")
        return central(vol, slices)
    return corpus_block(data_dir, name, slices)


def table(log: Path) -> list[str]:
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    sirt = {(r["volume"], r["views"]): r["psnr"] for r in recs if r["method"] == "sirt"}
    order = list(dict.fromkeys(r["method"] for r in recs))
    lines = []
    for group in dict.fromkeys(VOLUMES.values()):
        vols = [v for v, g in VOLUMES.items() if g == group]
        lines += [f"## {group}: {', '.join(vols)}", "",
                  "| views | method | PSNR (dB) | worst − SIRT (dB) | χ²/m (min–max) |", "|---:|---|---:|---:|---|"]
        for views in sorted({r["views"] for r in recs}):
            for label in order:
                rs = [r for r in recs if r["views"] == views and r["method"] == label and r["volume"] in vols]
                if len(rs) < len(vols):
                    continue
                margin = min(r["psnr"] - sirt.get((r["volume"], views), np.nan) for r in rs)
                c = [r["chi2_per_m"] for r in rs]
                bad = "" if label == "sirt" or (margin >= 0 and 0.5 <= min(c) and max(c) <= 2) else " ✗"
                lines.append(f"| {views} | {label}{bad} | {np.mean([r['psnr'] for r in rs]):.2f} | "
                             f"{'—' if label == 'sirt' else f'{margin:+.2f}'} | {min(c):.2f}–{max(c):.2f} |")
        lines.append("")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--views", default="4,8,16,32")
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--volumes", default=",".join(VOLUMES))
    ap.add_argument("--only", default=None, help="only candidates whose label starts with one of these (comma-separated)")
    ap.add_argument("--log", type=Path, default=Path("benchmarks/results/defaults_sweep.jsonl"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    prior = load("ct-slice", precision="auto")
    done = set()
    if args.log.is_file():
        done = {(r["volume"], r["views"], r["method"]) for r in map(json.loads, args.log.read_text().splitlines())}
    only = None if args.only is None else tuple(args.only.split(","))
    t0 = time.perf_counter()
    with args.log.open("a") as log:
        def record(name, views, label, x, A, y, sigma_y, vol, rng, seconds):
            p = float(psnr(x[0, 0], vol, data_range=rng))
            chi2 = data_consistency(A, x, y, sigma_y)["chi2_per_m"]
            log.write(json.dumps({"volume": name, "views": views, "method": label, "psnr": p, "chi2_per_m": chi2,
                                  "seconds": seconds}) + "\n")
            log.flush()
            print(f"{name:22s} {views:3d} views  {label:52s} {p:6.2f} dB  chi2/m {chi2:8.2f}  {seconds:6.1f} s",
                  flush=True)

        for name in args.volumes.split(","):
            vol = load_block(args.data_dir, name, args.slices)
            rng = float(vol.max() - vol.min())
            for views in map(int, args.views.split(",")):
                y, geometry, sigma_y = simulate_scan(vol, views=views, noise=0.01, seed=1)
                A = Projector(geometry)
                for m in ("sirt", "tv"):
                    if (name, views, m) not in done:
                        r = reconstruct(A, y, method=m, sigma_y=sigma_y, progress=False, slab=None)
                        record(name, views, m, r.mean, A, y, sigma_y, vol, rng, r.seconds)
                for label, m, kw in CANDIDATES:
                    if only is not None and not label.startswith(only):
                        continue
                    if all((name, views, f"{label}, {f}") in done for f in FINALS):
                        continue
                    r = reconstruct(A, y, method=m, prior=prior, sigma_y=sigma_y, n_samples=args.samples,
                                    progress=False, slab=None, keep_samples=True, final_cg=0, final_target=None, **kw)
                    s = r.samples.reshape(-1, *r.samples.shape[2:])        # (n·B, C, Z, Y, X), B = 1
                    for f, how in FINALS.items():
                        if how is None:
                            z = s
                        elif how[0] == "cg":
                            z = final_data_step(A, y, s, how[1])
                        else:
                            z = discrepancy_cg(A, y, s, sigma_y, target=1.0, max_iter=how[1])
                        record(name, views, f"{label}, {f}", z.reshape(r.samples.shape).mean(0), A, y, sigma_y,
                               vol, rng, r.seconds)
    lines = ["# Defaults of dds, diffpir, sdedit, pigdm on training volumes (issue 20)", "",
             f"Made by `python -m benchmarks.defaults_sweep` (last run {time.perf_counter() - t0:.0f} s; ct-slice, "
             f"default steps, mean of {args.samples} samples; central {args.slices} slices of 64² volumes, parallel "
             "beam, 1% noise, true σ_y; background trainings shared the 2 cores). Training volumes only. PSNR (dB) "
             "the mean over the group's volumes; *worst − SIRT*: the smallest PSNR margin over SIRT on one volume; "
             "χ²/m of the mean of the samples, min–max over the volumes; ✗: below SIRT on a volume or χ²/m outside "
             "[0.5, 2]. `final …`: the final data-consistency step applied to the same samples.", ""]
    text = "\n".join(lines + table(args.log)) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
