"""DPS and TV settings of the render demo, tuned on a training object of the prior, scored held out.

The render demo (``tomodiff demo --task render``, tomodiff/demos/render_demo.py) fits the corpus's
engine block with ``tv`` and ``dps``. The shipped prior ``ct-slab`` never saw the engine block, but it
was trained on ``bonsai_tree`` and ``carp_fish``; every setting here is chosen on one of those (the
demo's own density loading, ``load_density(size, path)``), and only the chosen settings are then run
once on the engine block.

The problem is exactly the demo's: :func:`render_demo.load_density`, :func:`emission_absorption`,
:func:`cameras` (8 orthographic cameras at 20°, novel ones half-way between at −10°), back-light 1,
1% noise (seed 0), and :func:`tomodiff.recon.reconstruct` on the renderer, scored as ``run_demo``
scores (PSNR of novel views over the clean images' range; emission and absorption over their maxima).
``run_demo`` does not pass DPS options, so this script calls ``reconstruct`` itself with them;
the demo's default row (TV lam 0.001, DPS ζ 0.5 "norm", σ_start 0.05, 20 steps, from that TV fit)
is one of the configurations.

Configurations (``--configs``, comma-separated names from :data:`CONFIGS`); TV fits are cached per
weight within a process. Results are appended, one JSON line per configuration, to ``--jsonl``.

Usage:  OMP_NUM_THREADS=1 python -m benchmarks.render_dps_sweep --volume /work/shared/data/ct_corpus/bonsai_tree.npz \
            --configs tv_0.001,dps_default --jsonl benchmarks/results/render_dps_sweep.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tomodiff.demos import render_demo as rd
from tomodiff.recon import psnr, reconstruct
from tomodiff.render import EmissionAbsorption

# name -> (tv lam, dps options or None for the TV row itself, steps)
CONFIGS = {
    "tv_0.0005": (0.0005, None, None),
    "tv_0.001": (0.001, None, None),   # the demo's TV (render_fit.TV_DEFAULTS)
    "tv_0.002": (0.002, None, None),
    "tv_0.004": (0.004, None, None),
    "tv_0.008": (0.008, None, None),
    "dps_default": (0.001, {"zeta": 0.5, "variant": "norm", "sigma_start": 0.05}, 20),
    "dps_s0.1": (0.001, {"zeta": 0.5, "variant": "norm", "sigma_start": 0.1}, 20),
    "dps_s0.2": (0.001, {"zeta": 0.5, "variant": "norm", "sigma_start": 0.2}, 20),
    "dps_s0.4": (0.001, {"zeta": 0.5, "variant": "norm", "sigma_start": 0.4}, 20),
    "dps_z0.2": (0.001, {"zeta": 0.2, "variant": "norm", "sigma_start": 0.05}, 20),
    "dps_z1": (0.001, {"zeta": 1.0, "variant": "norm", "sigma_start": 0.05}, 20),
    "dps_z2": (0.001, {"zeta": 2.0, "variant": "norm", "sigma_start": 0.05}, 20),
    "dps_z5": (0.001, {"zeta": 5.0, "variant": "norm", "sigma_start": 0.05}, 20),
    "dps_tv0.0005": (0.0005, {"zeta": 0.5, "variant": "norm", "sigma_start": 0.05}, 20),
    "dps_line0.5": (0.001, {"zeta": 0.5, "variant": "line", "sigma_start": 0.05}, 20),
    "dps_line1": (0.001, {"zeta": 1.0, "variant": "line", "sigma_start": 0.05}, 20),
    "dps_steps50": (0.001, {"zeta": 0.5, "variant": "norm", "sigma_start": 0.05}, 50),
    # the line step with its data-fit stop at chi2/m 1 (reconstruct passes sigma_y to the renderer's DPS)
    "dps_line1_stop": (0.001, {"zeta": 1.0, "variant": "line", "target": 1.0, "sigma_start": 0.05}, 20),
    "dps_line1.5_stop": (0.001, {"zeta": 1.5, "variant": "line", "target": 1.0, "sigma_start": 0.05}, 20),
    "dps_line1.5_stop50": (0.001, {"zeta": 1.5, "variant": "line", "target": 1.0, "sigma_start": 0.05}, 50),
}


def problem(volume_path, size=32, views=8, noise=0.01, seed=0):
    """The render demo's problem (run_demo's first lines)."""
    density, source = rd.load_density(size, volume_path)
    truth = rd.emission_absorption(density)
    voxel = rd.WORLD_SIZE / size
    R = EmissionAbsorption(truth.shape[2:], rd.cameras(views), voxel_size=voxel, background=rd.BACK_LIGHT)
    R_novel = EmissionAbsorption(truth.shape[2:], rd.cameras(views, novel=True), voxel_size=voxel,
                                 background=rd.BACK_LIGHT)
    with torch.no_grad():
        clean, novel_truth = R(truth), R_novel(truth)
    sigma_y = float(noise) * float(clean.max())
    y = clean + sigma_y * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    return dict(R=R, R_novel=R_novel, truth=truth, clean=clean, novel_truth=novel_truth, y=y, sigma_y=sigma_y,
                source=source, image_range=float(clean.max() - clean.min()), seed=seed)


def score(P, x):
    """run_demo's scores of a reconstruction ``x`` (1, 2, Z, Y, X)."""
    R, truth = P["R"], P["truth"]
    with torch.no_grad():
        fitted, novel = R(x), P["R_novel"](x)
    chi2 = float(((fitted - P["y"]) / P["sigma_y"]).pow(2).mean())
    return {
        "novel": float(psnr(novel[0, 0], P["novel_truth"][0, 0], data_range=P["image_range"])),
        "fitted": float(psnr(fitted[0, 0], P["clean"][0, 0], data_range=P["image_range"])),
        "emission": float(psnr(x[0, 0], truth[0, 0], data_range=float(truth[0, 0].max()))),
        "absorption": float(psnr(x[0, 1], truth[0, 1], data_range=float(truth[0, 1].max()))),
        "chi2_per_m": chi2,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volume", required=True, help="an .npz of the corpus (render_demo.load_density's path)")
    ap.add_argument("--configs", required=True, help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--jsonl", type=Path, default=Path("benchmarks/results/render_dps_sweep.jsonl"))
    ap.add_argument("--label", default="train", help="'train' or 'heldout', stored with each row")
    ap.add_argument("--prior", default="ct-slab")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    P = problem(args.volume)
    print(P["source"], "sigma_y", P["sigma_y"], flush=True)
    prior, tv_cache = None, {}
    for name in args.configs.split(","):
        lam, dps_opts, steps = CONFIGS[name]
        t0 = time.perf_counter()
        if lam not in tv_cache:
            r = reconstruct(P["R"], P["y"], method="tv", sigma_y=P["sigma_y"], seed=P["seed"], progress=False,
                            lam=lam)
            tv_cache[lam] = (r.mean, time.perf_counter() - t0)
        if dps_opts is None:
            x, seconds = tv_cache[lam]
        else:
            if prior is None:
                from tomodiff.priors import load
                prior = load(args.prior, device="cpu", precision="auto")
            t1 = time.perf_counter()
            r = reconstruct(P["R"], P["y"], method="dps", prior=prior, steps=steps, n_samples=1,
                            sigma_y=P["sigma_y"], seed=P["seed"], progress=False, x_init=tv_cache[lam][0],
                            **dps_opts)
            x, seconds = r.mean, time.perf_counter() - t1
        row = {"label": args.label, "volume": Path(args.volume).stem, "config": name, "tv_lam": lam,
               "dps": dps_opts, "steps": steps, **score(P, x), "seconds": round(seconds, 1)}
        print(json.dumps(row), flush=True)
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
