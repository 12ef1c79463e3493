"""Sampler sweep on TRAINING-seed phantoms: methods × steps × key settings, against TV in the same run.

Never touches the benchmark volumes in ``phantoms/`` nor held-out real CT: every volume here is
``FAMILY:SEED:SIZE`` with a seed from ``tomodiff.phantoms.TRAIN_SEEDS`` (far below the benchmark
set's 2,000,000,000+). The best configuration within ``--budget`` steps is the one
``reconstruct(method="auto")`` should use (``tomodiff/methods.py``, ``AUTO``); the table says which.

    OMP_NUM_THREADS=1 python -m benchmarks.sampler_sweep --prior slice-64 --views 8 \\
        --out benchmarks/results/sampler_sweep.md

``--prior NAME`` takes any shipped prior (e.g. ``ct-slice`` once it ships); ``--volumes`` any
training volumes (phantom specs, ``ct_corpus/NAME`` for a training volume of the real-CT corpus,
block-averaged 4×, from ``$TOMODIFF_SHARED_DATA/ct_corpus`` — e.g.
``ct_corpus/lidc0314_chest,ct_corpus/philips_head_phantom`` from the ct-slice training split — or
``.npy``/``.h5`` files of training CT; never held-out ones).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.io.volumes import load_volume
from tomodiff.priors import load
from tomodiff.recon import psnr, reconstruct

from .volumes import TRAIN_VOLUMES, corpus_volume

# (label, method, options): the grid; steps are crossed with every entry
CONFIGS = [
    ("ΠGDM (ddpm)", "pigdm", {}),
    ("ΠGDM + final CG 5", "pigdm", {"final_cg": 5}),
    ("DDS prox, η 0.85", "dds", {"prox": True}),
    ("DDS paper (least squares), η 0.85", "dds", {"prox": False}),
    ("DDS paper, η 0.15", "dds", {"prox": False, "eta": 0.15}),
    ("DDS paper + TV-Z ADMM ρ10 λ0.04", "dds", {"prox": False, "tv_z": (10.0, 0.04)}),
    ("DiffPIR λ1", "diffpir", {"lam": 1.0}),
    ("DiffPIR λ0.2", "diffpir", {"lam": 0.2}),
    ("DDS paper, warm TV σ0.5", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.5}),
    ("DDS paper, warm TV σ1", "dds", {"prox": False, "x_init": "tv", "sigma_start": 1.0}),
    ("DDS paper, warm TV σ2", "dds", {"prox": False, "x_init": "tv", "sigma_start": 2.0}),
    ("DDS paper, warm TV σ5", "dds", {"prox": False, "x_init": "tv", "sigma_start": 5.0}),
    ("DDS paper, warm FBP σ1", "dds", {"prox": False, "x_init": "fbp", "sigma_start": 1.0}),
    ("DDS prox, warm TV σ1", "dds", {"prox": True, "x_init": "tv", "sigma_start": 1.0}),
    ("DiffPIR λ1, warm TV σ1", "diffpir", {"lam": 1.0, "x_init": "tv", "sigma_start": 1.0}),
    # second round, around the first round's best (warm starts from TV at small σ_start)
    ("DDS paper, warm TV σ0.1", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.1}),
    ("DDS paper, warm TV σ0.25", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.25}),
    ("DDS paper, warm TV σ0.5, CG 10", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.5, "cg_iters": 10}),
    ("DDS paper, warm TV σ0.5, CG 2", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.5, "cg_iters": 2}),
    ("DDS paper + TV-Z ADMM, warm TV σ0.5", "dds", {"prox": False, "tv_z": (10.0, 0.04), "x_init": "tv",
                                                   "sigma_start": 0.5}),
    ("DDS paper, warm TV σ0.5, η 0.5", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.5, "eta": 0.5}),
    ("DDS prox, warm TV σ0.5", "dds", {"prox": True, "x_init": "tv", "sigma_start": 0.5}),
    ("ΠGDM, warm TV σ0.5", "pigdm", {"x_init": "tv", "sigma_start": 0.5}),
    # third round: smaller σ_start
    ("DDS paper, warm TV σ0.05", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.05}),
    ("DDS paper, warm TV σ0.15", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.15}),
    ("DDS paper + TV-Z ADMM, warm TV σ0.1", "dds", {"prox": False, "tv_z": (10.0, 0.04), "x_init": "tv",
                                                   "sigma_start": 0.1}),
    ("DDS paper, warm TV σ0.1, CG 2", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.1, "cg_iters": 2}),
    # fourth round: fewer CG iterations per step
    ("DDS paper, warm TV σ0.1, CG 1", "dds", {"prox": False, "x_init": "tv", "sigma_start": 0.1, "cg_iters": 1}),
    ("DDS paper + TV-Z ADMM, warm TV σ0.1, CG 2", "dds", {"prox": False, "tv_z": (10.0, 0.04), "x_init": "tv",
                                                         "sigma_start": 0.1, "cg_iters": 2}),
]


def _load(spec, slices):
    if spec.startswith("ct_corpus/"):  # a TRAINING volume of the real-CT corpus, 4x block-averaged
        return corpus_volume(spec.split("/", 1)[1], slices)
    vol, desc = load_volume(spec)
    seed = desc.get("seed")
    if seed is not None and seed >= 2_000_000_000:
        raise SystemExit(f"{spec}: seed {seed} is in the benchmark range; the sweep uses training seeds only")
    z0 = (vol.shape[0] - slices) // 2
    return vol[z0:z0 + slices].contiguous()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", default="slice-64")
    p.add_argument("--views", default="8", help="comma-separated (default: %(default)s)")
    p.add_argument("--steps", default="10,20,50", help="comma-separated (default: %(default)s)")
    p.add_argument("--volumes", default=",".join(TRAIN_VOLUMES), help="training volumes (default: %(default)s)")
    p.add_argument("--slices", type=int, default=8, help="central axial slices per volume (default: %(default)s)")
    p.add_argument("--configs", default="all", help="comma-separated indices into CONFIGS, or all")
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--budget", type=int, default=20, help="most steps the winner may use (default: %(default)s)")
    p.add_argument("--noise", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/sampler_sweep.md"))
    p.add_argument("--append", action="store_true", help="add this run's tables to --out as a further round")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load(args.prior)
    views = [int(v) for v in args.views.split(",")]
    steps_list = [int(s) for s in args.steps.split(",")]
    configs = CONFIGS if args.configs == "all" else [CONFIGS[int(i)] for i in args.configs.split(",")]
    vols = {spec: _load(spec, args.slices) for spec in args.volumes.split(",")}
    rows = []  # (views, label, steps, psnr per volume, chi2 per volume, seconds)
    tv = {}
    for n_views in views:
        problems = {}
        for spec, vol in vols.items():
            y, geometry, sigma_y = simulate_scan(vol, views=n_views, noise=args.noise, seed=0)
            A = Projector(geometry)
            problems[spec] = (A, y, sigma_y, vol.numpy())
            r = reconstruct(A, y, method="tv", sigma_y=sigma_y, progress=False)
            tv[(n_views, spec)] = float(psnr(r.mean[0, 0].numpy(), vol.numpy(), data_range=1.0))
        print(f"{n_views} views: TV {np.mean([tv[(n_views, s)] for s in vols]):.2f} dB", flush=True)
        for label, method, options in configs:
            for steps in steps_list:
                ps, cs, t0 = [], [], time.perf_counter()
                for spec, (A, y, sigma_y, ref) in problems.items():
                    r = reconstruct(A, y, method=method, prior=prior, steps=steps, n_samples=args.samples,
                                    sigma_y=sigma_y, seed=0, progress=False, **options)
                    ps.append(float(psnr(r.mean[0, 0].numpy(), ref, data_range=1.0)))
                    cs.append(r.provenance["data_consistency"]["chi2_per_m"])
                secs = (time.perf_counter() - t0) / len(problems)
                rows.append((n_views, label, method, options, steps, ps, cs, secs))
                print(f"  {label:<36} {steps:>3} steps: {np.mean(ps):.2f} dB "
                      f"(Δ TV {np.mean(ps) - np.mean([tv[(n_views, s)] for s in vols]):+.2f}), "
                      f"chi2 {np.mean(cs):.2f}, {secs:.1f} s", flush=True)
    write_table(args, rows, tv, list(vols), views)
    return 0


def write_table(args, rows, tv, specs, views):
    head = "## Further round" if args.append else "# Sampler sweep (training-seed phantoms only)"
    lines = [head, "",
             f"`python -m benchmarks.sampler_sweep {' '.join(sys.argv[1:])}` — prior `{args.prior}`, "
             f"{args.slices} central slices of each volume, {args.noise:.0%} noise, {args.samples} sample(s), "
             f"{args.threads} thread(s), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "Volumes (training seeds; the benchmark set uses seeds ≥ 2,000,000,000): "
             + ", ".join(f"`{s}`" for s in specs) + ".", "",
             "PSNR is the mean over the volumes; Δ TV against TV (default λ) on the same scans in the same run; "
             "χ²/m = ‖y − A x̄‖²/(σ_y² m); time per volume.", ""]
    for n_views in views:
        tv_mean = float(np.mean([tv[(n_views, s)] for s in specs]))
        sel = [r for r in rows if r[0] == n_views]
        lines += [f"{'###' if args.append else '##'} {n_views} views (TV {tv_mean:.2f} dB)", "",
                  "| method | settings | steps | PSNR [dB] | Δ TV [dB] | worst Δ TV | χ²/m | time [s] |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for _, label, method, options, steps, ps, cs, secs in sel:
            worst = min(p - tv[(n_views, s)] for p, s in zip(ps, specs))
            lines.append(f"| {method} | {label} | {steps} | {np.mean(ps):.2f} | {np.mean(ps) - tv_mean:+.2f} | "
                         f"{worst:+.2f} | {np.mean(cs):.2f} | {secs:.1f} |")
        ok = [r for r in sel if r[4] <= args.budget]
        if ok:
            best = max(ok, key=lambda r: np.mean(r[5]))
            lines += ["", f"**Winner within {args.budget} steps:** {best[1]} (`method={best[2]!r}`, "
                          f"steps={best[4]}, options={best[3]!r}): {np.mean(best[5]):.2f} dB, "
                          f"{np.mean(best[5]) - tv_mean:+.2f} dB over TV.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    before = args.out.read_text() + "\n" if args.append and args.out.exists() else ""
    args.out.write_text(before + "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
