"""Classifier-free guidance's weight w, chosen on TRAINING volumes of the conditional prior.

``method="cfg"`` samples with DDS through the guided denoiser ``(1 + w)·D(x, c) − w·D(x)``, c the
FBP of the data. This script sweeps w (and the number of steps) on corpus volumes of ct-cond's
training split, never on its validation or test volumes, beside TV with the discrepancy rule and
``auto`` with ct-slice on the same scans, and prints a table (mean PSNR over volumes, χ²/m); the
table in ``benchmarks/results/cfg_weight.md`` chose :data:`tomodiff.methods.CFG`.

Volumes: as :mod:`benchmarks.tv_weight_rule` (block-averaged to 64² in-plane, the central slices),
parallel beam, 8 and 16 views, 1% Gaussian noise with σ_y known; the mean of ``--samples`` samples.

    OMP_NUM_THREADS=1 python -m benchmarks.cfg_weight --data-dir ../shared/data --prior training/ct-cond
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.priors import load, load_file
from tomodiff.recon import psnr, reconstruct

from .tv_weight_rule import corpus_block

TUNE = ("lidc0314_chest", "mricrogl_head_ct", "vhf_pelvis")  # all in ct-cond's training split


def conditional_prior(path: str):
    """A prior file, or a training run directory (its best weights, exported to a temporary file)."""
    p = Path(path)
    if p.is_dir():
        from tomodiff.training.train import export

        out = Path("/tmp") / f"{p.name}-export.pt"
        export(p / "checkpoint.pt", out)
        p = out
    prior = load_file(p)
    prior.precision = "auto"  # as the CLI runs it
    return prior


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--prior", default="training/ct-cond", help="conditional prior file or training run")
    ap.add_argument("--weights", default="0,0.5,1,2")
    ap.add_argument("--steps", default="20")
    ap.add_argument("--tv-starts", default="", help="also warm-start from TV at these σ (comma-separated)")
    ap.add_argument("--views", default="8,16")
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--volumes", default=",".join(TUNE))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cond = conditional_prior(args.prior)
    slice_prior = load("ct-slice", precision="auto")
    rows = {}
    t0 = time.perf_counter()
    for name in args.volumes.split(","):
        vol = corpus_block(args.data_dir, name, args.slices)
        rng = float(vol.max() - vol.min())
        for views in map(int, args.views.split(",")):
            y, geometry, sigma_y = simulate_scan(vol, views=views, noise=0.01, seed=1)
            A = Projector(geometry)
            runs = {"tv": dict(method="tv"), "auto (ct-slice)": dict(method="auto", prior=slice_prior)}
            for steps in map(int, args.steps.split(",")):
                for w in map(float, args.weights.split(",")):
                    runs[f"cfg w={w:g} steps={steps}"] = dict(method="cfg", prior=cond, w=w, steps=steps,
                                                              x_init=None, sigma_start=None)
                    for start in map(float, filter(None, args.tv_starts.split(","))):
                        runs[f"cfg w={w:g} steps={steps} from TV at σ {start:g}"] = dict(
                            method="cfg", prior=cond, w=w, steps=steps, x_init="tv", sigma_start=start)
            for label, kw in runs.items():
                t = time.perf_counter()
                r = reconstruct(A, y, sigma_y=sigma_y, n_samples=args.samples if kw["method"] != "tv" else 1,
                                slab=None, progress=False, **kw)
                p = float(psnr(r.mean[0, 0], vol, data_range=rng))
                chi2 = r.provenance.get("data_consistency", {}).get("chi2_per_m", float("nan"))
                rows.setdefault((views, label), []).append((p, chi2, time.perf_counter() - t))
                print(f"{name:18s} {views:3d} views  {label:24s} {p:6.2f} dB  chi2/m {chi2:5.2f}  "
                      f"{time.perf_counter() - t:5.1f} s", flush=True)
    print(f"\nmean over {args.volumes} ({args.slices} slices, 64², 1% noise, mean of {args.samples}); "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("| views | method | PSNR (dB) | χ²/m | s |\n|---|---|---|---|---|")
    for (views, label), v in rows.items():
        a = np.array(v)
        print(f"| {views} | {label} | {a[:, 0].mean():.2f} | {np.nanmean(a[:, 1]):.2f} | {a[:, 2].mean():.1f} |")


if __name__ == "__main__":
    main()
