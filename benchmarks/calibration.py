"""Fit the interval scale ``k`` of :mod:`tomodiff.recon.calibration` on TRAINING data, then measure
coverage on held-out volumes (reporting only).

Training data: the sweep's training-seed phantoms and two training volumes of the real-CT corpus
(``lidc0314_chest``, ``philips_head_phantom``: in the ``ct-slice`` training split, see
``scripts/train_ct_slice.sh``), block-averaged 4× to 64² slices. Held out: the eight 64³ benchmark
phantoms and the VTK head (``real_head_vtk``). Method: ``reconstruct(method="auto")``, 8 views, 1%
noise, 8 samples, central slices; interval ``mean ± k·z_p·std``.

    OMP_NUM_THREADS=1 TOMODIFF_SHARED_DATA=../shared/data python -m benchmarks.calibration \
        --out benchmarks/results/calibration
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.io.volumes import load_volume
from tomodiff.priors import load
from tomodiff.recon import reconstruct
from tomodiff.methods import AUTO
from tomodiff.recon.calibration import coverage, fit_scale

from .coverage_plot import NOMINAL, plot_coverage
from .volumes import HELD_OUT_64, REAL, TRAIN_VOLUMES, central, corpus_volume, shared_data

TRAIN_CT = ["lidc0314_chest", "philips_head_phantom"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", default="slice-64")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--slices", type=int, default=8, help="central slices of each training volume")
    p.add_argument("--test-slices", type=int, default=16, help="central slices of each held-out volume")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/calibration"))
    p.add_argument("--data-dir", type=Path, default=None,
                   help="shared data folder with ct_corpus/ (default: $TOMODIFF_SHARED_DATA)")
    args = p.parse_args(argv)
    data_dir = shared_data(args.data_dir)  # before any work: the training CT comes from there
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    prior = load(args.prior)

    def draw(vol):
        y, geometry, sigma_y = simulate_scan(vol, views=8, noise=0.01, seed=0)
        r = reconstruct(Projector(geometry), y, method="auto", prior=prior, sigma_y=sigma_y, n_samples=args.samples,
                        seed=0, progress=False)
        return r.mean[0, 0], r.std[0, 0], vol

    def pooled(items):
        return [torch.cat([it[i].reshape(-1) for it in items]) for i in range(3)]

    train_ph = [draw(central(load_volume(s)[0], args.slices)) for s in TRAIN_VOLUMES]
    train_ct = [draw(corpus_volume(n, args.slices, data_dir)) for n in TRAIN_CT]
    k = fit_scale(*pooled(train_ph + train_ct), 0.9)
    res = {"k": k, "fitted_on": TRAIN_VOLUMES + [f"ct_corpus/{n} (4x block average)" for n in TRAIN_CT],
           "k_phantoms_only": fit_scale(*pooled(train_ph), 0.9), "k_ct_only": fit_scale(*pooled(train_ct), 0.9),
           "auto": AUTO, "samples": args.samples, "prior": args.prior,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"k = {k:.3f} (phantoms only {res['k_phantoms_only']:.3f}, CT only {res['k_ct_only']:.3f})", flush=True)
    held_ph = pooled([draw(central(load_volume(n)[0], args.test_slices)) for n in HELD_OUT_64])
    held_real = pooled([draw(central(load_volume(REAL)[0], args.test_slices))])
    for key, (m, s, t) in (("phantoms", held_ph), ("real_head", held_real)):
        res[key] = {str(q): {"raw": coverage(m, s, t, q), "calibrated": coverage(m, s, t, q, k)} for q in NOMINAL}
        print(f"{key}: 90% coverage {res[key]['0.9']}", flush=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=1))
    write_report(res, args.out)
    return 0


def write_report(res, out: Path):
    plot_coverage({"held-out phantoms": res["phantoms"], "real head (held out)": res["real_head"]},
                  f"k = {res['k']:.2f}, fitted on training phantoms + training CT", out / "calibration_curve.png")
    ph, rh = res["phantoms"]["0.9"], res["real_head"]["0.9"]
    lines = ["# Calibrated uncertainty of the default sampler", "",
             f"`python -m benchmarks.calibration` — prior `{res['prior']}`, `method=\"auto\"` ({res['auto']}), "
             f"8 views, 1% noise, {res['samples']} samples, {res['date']}.", "",
             f"k = **{res['k']:.3f}**, fitted (90% interval) on training data only: {', '.join(res['fitted_on'])}. "
             f"Phantoms alone would give {res['k_phantoms_only']:.3f}, the CT volumes alone {res['k_ct_only']:.3f}. "
             "This is `tomodiff.recon.calibration.CALIBRATION`.", "",
             "![calibration curve](calibration_curve.png)", "",
             "| nominal | held-out phantoms raw | calibrated | real head raw | calibrated |", "|---:|---:|---:|---:|---:|"]
    for q in NOMINAL:
        a, b = res["phantoms"][str(q)], res["real_head"][str(q)]
        lines.append(f"| {q} | {a['raw']:.3f} | {a['calibrated']:.3f} | {b['raw']:.3f} | {b['calibrated']:.3f} |")
    lines += ["", "| target | measured | |", "|---|---|---|",
              f"| 90% interval covers 80–95% (held-out phantoms) | {ph['calibrated']:.4f} | "
              f"{'met' if 0.8 <= ph['calibrated'] <= 0.95 else 'missed'} |",
              f"| 90% interval covers 80–95% (held-out real head) | {rh['calibrated']:.4f} | "
              f"{'met' if 0.8 <= rh['calibrated'] <= 0.95 else 'missed'} |", ""]
    (out / "report.md").write_text("\n".join(lines))
    print(f"wrote {out / 'report.md'}")


if __name__ == "__main__":
    raise SystemExit(main())
