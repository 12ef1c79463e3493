"""ΠGDM's Jacobian on real CT TRAINING volumes: backpropagation through the network against the
Gaussian Jacobian ``(r_t²/σ_t²) I`` (no backpropagation; :mod:`tomodiff.samplers.pigdm`).

Volumes: corpus volumes of ct-slice's training split (block-averaged to 64² in-plane, central
slices; :func:`benchmarks.tv_weight_rule.corpus_block`), parallel beam at 4/8/16/32 views, 1% noise,
σ_y known; ΠGDM at its defaults (50 steps) with ct-slice, mean of ``--samples``; SIRT and TV (weight
rule) on the same scans. Prints a markdown table (mean over volumes) with χ²/m and seconds.

    OMP_NUM_THREADS=1 python -m benchmarks.pigdm_jacobian --data-dir ../shared/data
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
from tomodiff.priors import load
from tomodiff.recon import psnr, reconstruct
from tomodiff.recon.consistency import data_consistency

from .tv_weight_rule import corpus_block

VOLUMES = ("lidc0314_chest", "mricrogl_head_ct", "vhf_pelvis")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--views", default="4,8,16,32")
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--final-cg", default="", help="also the Gaussian Jacobian with these final CG iterations")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--volumes", default=",".join(VOLUMES))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    prior = load("ct-slice", precision="auto")
    rows, t0 = {}, time.perf_counter()
    for name in args.volumes.split(","):
        vol = corpus_block(args.data_dir, name, args.slices)
        rng = float(vol.max() - vol.min())
        for views in map(int, args.views.split(",")):
            y, geometry, sigma_y = simulate_scan(vol, views=views, noise=0.01, seed=1)
            A = Projector(geometry)
            runs = {"sirt": dict(method="sirt"), "tv (weight rule)": dict(method="tv"),
                    "pigdm, jacobian vjp": dict(method="pigdm", prior=prior, jacobian="vjp", final_cg=0),
                    "pigdm, jacobian gaussian": dict(method="pigdm", prior=prior, jacobian="gaussian", final_cg=0)}
            for k in map(int, filter(None, args.final_cg.split(","))):
                runs[f"pigdm, gaussian, final_cg {k}"] = dict(method="pigdm", prior=prior, jacobian="gaussian",
                                                              final_cg=k)
            for label, kw in runs.items():
                diffusion = kw["method"] == "pigdm"
                r = reconstruct(A, y, sigma_y=sigma_y, progress=False, slab=None,
                                n_samples=args.samples if diffusion else 1, **kw)
                p = float(psnr(r.mean[0, 0], vol, data_range=rng))
                chi2 = data_consistency(A, r.mean, y, sigma_y)["chi2_per_m"]
                rows.setdefault((views, label), []).append((p, chi2, r.seconds))
                print(f"{name:18s} {views:3d} views  {label:26s} {p:6.2f} dB  chi2/m {chi2:7.2f}  {r.seconds:6.1f} s",
                      flush=True)
    print(f"\nmean over {args.volumes} ({args.slices} slices, 64², 1% noise, mean of {args.samples}); "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("| views | method | PSNR (dB) | χ²/m | s |\n|---|---|---:|---:|---:|")
    for (views, label), v in rows.items():
        a = np.array(v)
        print(f"| {views} | {label} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} | {a[:, 2].mean():.1f} |")


if __name__ == "__main__":
    main()
