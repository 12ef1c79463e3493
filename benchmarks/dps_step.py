"""DPS's step rule on real CT TRAINING volumes: a fixed ζ against the line-searched step, with and
without final CG iterations on the data term (the numbers the registry's dps defaults come from).

Volumes: ``lidc0314_chest`` and ``philips_head_phantom`` (ct-slice's training split, block-averaged to
64² in-plane, central ``--slices`` slices: :func:`benchmarks.tv_weight_rule.corpus_block`), parallel
beam at 4/8/16/32 views, 1% noise, σ_y known (the true one). Rows: SIRT and TV (weight rule) as the
yardsticks; DPS (ct-slice, 50 steps, mean of ``--samples``) with the old fixed ``ζ 0.3`` ("norm"
variant) and with ``variant="line"`` at several ``ζ``, from noise or (``--warm tv:0.1,...``) warm-started
from TV at ``σ_start`` as ``auto`` is; ``--target`` sets the line step's discrepancy stop (χ²/m; the
rows without it ran before it existed, with 0 = off). ``final_cg k`` rows take the *same* samples
and apply ``k`` CG iterations on ``AᵀA x = Aᵀy`` from each (exactly what the ``final_cg`` option does
inside ``sample_posterior``), so they cost no extra sampling. PSNR with the reference's range; χ²/m of
the mean of the samples. Results are appended line by line to ``--log`` (an interruption loses
little) and the table, rebuilt from the whole log, is written to ``--out``.

    OMP_NUM_THREADS=1 python -m benchmarks.dps_step --data-dir ../shared/data --out benchmarks/results/dps_step.md
    OMP_NUM_THREADS=1 python -m benchmarks.dps_step --data-dir ../shared/data --zetas 1.5 --warm tv:0.1,tv:0.3 \
        --no-baselines --out benchmarks/results/dps_step.md
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
from tomodiff.priors import load
from tomodiff.recon import psnr, reconstruct
from tomodiff.recon.consistency import data_consistency
from tomodiff.samplers.posterior import final_data_step

from .tv_weight_rule import corpus_block

VOLUMES = ("lidc0314_chest", "philips_head_phantom")  # ct-slice training volumes (benchmarks/volumes.py)
FINAL_CG = (0, 2, 5, 10)


def runs(zetas, warm=(), old=True, target=0.0):
    """``{label: dps options}``: the old fixed step, the line step at each ζ, and the line step at each ζ
    warm-started from each ``(kind, σ_start)`` of ``warm`` (as ``auto`` is: x_init + σ_start·n)."""
    out = {"dps norm ζ 0.3 (old default)": dict(zeta=0.3, variant="norm")} if old else {}
    stop = f", stop at χ²/m {target:g}" if target else ""
    for z in zetas:
        if not warm or old:
            out[f"dps line ζ {z:g}{stop}"] = dict(zeta=z, variant="line", target=target)
        for kind, s in warm:
            out[f"dps line ζ {z:g}, from {kind} σ {s:g}{stop}"] = dict(zeta=z, variant="line", x_init=kind,
                                                                      sigma_start=s, target=target)
    return out


def table(log: Path, volumes) -> list[str]:
    """Table rows ``| views | method | PSNR | χ²/m | s |`` averaged over ``volumes``, from every line of ``log``
    (so runs made at different times land in one table; a method is listed once all volumes have it)."""
    rows = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if r["volume"] in volumes:
            rows.setdefault((r["views"], r["method"]), {})[r["volume"]] = (r["psnr"], r["chi2_per_m"], r["seconds"])
    out = []
    for (views, label), v in sorted(rows.items(), key=lambda kv: kv[0][0]):
        if len(v) < len(volumes):
            continue
        a = np.array(list(v.values()), dtype=float)
        out.append(f"| {views} | {label} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} | {a[:, 2].mean():.1f} |")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--views", default="4,8,16,32")
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--zetas", default="0.5,1,1.5")
    ap.add_argument("--volumes", default=",".join(VOLUMES))
    ap.add_argument("--warm", default="", help="warm starts KIND:SIGMA_START,... (e.g. tv:0.1,tv:0.3); with them "
                                                 "only the warm-started line steps run (and SIRT/TV unless --no-baselines)")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--target", type=float, default=0.0,
                    help="the line step's discrepancy stop (χ²/m; 0: none, the rows before it existed)")
    ap.add_argument("--log", type=Path, default=Path("benchmarks/results/dps_step.jsonl"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    prior = load("ct-slice", precision="auto")
    rows, t0 = {}, time.perf_counter()
    log = args.log.open("a")

    def record(name, views, label, x, A, y, sigma_y, vol, rng, seconds):
        p = float(psnr(x[0, 0], vol, data_range=rng))
        chi2 = data_consistency(A, x, y, sigma_y)["chi2_per_m"]
        rows.setdefault((views, label), []).append((p, chi2, seconds))
        log.write(json.dumps({"volume": name, "views": views, "method": label, "psnr": p, "chi2_per_m": chi2,
                              "seconds": seconds}) + "\n")
        log.flush()
        print(f"{name:22s} {views:3d} views  {label:36s} {p:6.2f} dB  chi2/m {chi2:8.2f}  {seconds:6.1f} s", flush=True)

    for name in args.volumes.split(","):
        vol = corpus_block(args.data_dir, name, args.slices)
        rng = float(vol.max() - vol.min())
        for views in map(int, args.views.split(",")):
            y, geometry, sigma_y = simulate_scan(vol, views=views, noise=0.01, seed=1)
            A = Projector(geometry)
            for m in () if args.no_baselines else ("sirt", "tv"):
                r = reconstruct(A, y, method=m, sigma_y=sigma_y, progress=False, slab=None)
                record(name, views, m, r.mean, A, y, sigma_y, vol, rng, r.seconds)
            warm = [(w.split(":")[0], float(w.split(":")[1])) for w in args.warm.split(",") if w]
            for label, kw in runs([float(z) for z in args.zetas.split(",")], warm, old=not warm,
                                    target=args.target).items():
                r = reconstruct(A, y, method="dps", prior=prior, sigma_y=sigma_y, n_samples=args.samples,
                                progress=False, slab=None, keep_samples=True, final_cg=0, **kw)
                s = r.samples.reshape(-1, *r.samples.shape[2:])        # (n·B, C, Z, Y, X), B = 1
                for k in FINAL_CG:
                    x = (final_data_step(A, y, s, k) if k else s).reshape(r.samples.shape).mean(0)
                    record(name, views, f"{label}, final_cg {k}", x, A, y, sigma_y, vol, rng, r.seconds)
    lines = [f"# DPS step rule on real CT training volumes ({', '.join(args.volumes.split(','))})", "",
             f"Made by `python -m benchmarks.dps_step` in {time.perf_counter() - t0:.0f} s (ct-slice, 50 steps, "
             f"mean of {args.samples} samples; block-averaged to 64², central {args.slices} slices, parallel beam, "
             "1% noise, true σ_y; two trainings shared the 2 cores). PSNR (dB) and χ²/m of the mean, averaged over "
             "the volumes. `final_cg k`: k CG iterations on the data term from each sample.", "",
             "| views | method | PSNR (dB) | χ²/m | s |", "|---|---|---:|---:|---:|"]
    log.close()
    lines += table(args.log, args.volumes.split(","))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
