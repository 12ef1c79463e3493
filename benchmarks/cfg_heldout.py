"""Classifier-free guidance (ct-cond) on HELD-OUT real CT, beside the classical baselines and auto.

Volumes: the benchmark set's real-CT group, ``ct_abdomen_64`` and ``ct_chest_64`` (from
``imageio_stent_abdomen_cta`` and ``lidc2_chest_cta_8bit``, test volumes of both ct-cond and ct-slice:
no slice of them was trained on, nothing was tuned on them), the central ``--slices`` axial slices.
Scans: parallel beam at 4, 8, 16 and 32 views (ct-cond's training range is 4–64 views), and out of
its range 3 and 96 views and a fan beam at 8 views (source at 2, detector at 1 volume width from
the axis; solved slice by slice as a batch of 2D scans), Gaussian noise 1% of max(y), σ_y known.

Rows: FBP (Hann), SIRT (100 iterations), TV with the weight rule (χ²/m 0.8), oracle TV (the best
weight of a log grid tuned on the volume itself: an upper reference, not a method), ``auto``
(ct-slice) and ``cfg`` (ct-cond, :data:`tomodiff.methods.CFG`): the mean of ``--samples`` samples,
with χ²/m of the mean. PSNR with the reference's data range.

    OMP_NUM_THREADS=1 python -m benchmarks.cfg_heldout --prior training/ct-cond --out benchmarks/results/cfg_heldout.md
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from tomodiff import methods
from tomodiff.ct import Projector, fan_beam
from tomodiff.ct.simulate import simulate_scan
from tomodiff.io.volumes import load_volume
from tomodiff.operators import GaussianNoise
from tomodiff.priors import load
from tomodiff.recon import reconstruct
from tomodiff.recon.consistency import data_consistency

from .cfg_weight import conditional_prior
from .volumes import central

VOLUMES = ("ct_abdomen_64", "ct_chest_64")
SCANS = (("parallel", 4), ("parallel", 8), ("parallel", 16), ("parallel", 32), ("parallel", 3), ("parallel", 96),
         ("fan", 8))
ORACLE_K = range(-4, 15)  # TV weights 2^(k/2) × the old rule


def volume_psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float) -> float:
    """PSNR (dB) of the whole volume (every slice's error in one mean), peak = the reference's range."""
    return float(10 * torch.log10(data_range ** 2 / ((x.cpu() - ref) ** 2).mean()))


def fan_scan(vol: torch.Tensor, views: int, noise: float, seed: int):
    """The slices of ``vol`` ``(Z, Y, X)`` as a batch of 2D fan-beam scans: ``(y (Z, 1, A, U), A, σ_y)``."""
    Z, Y, X = vol.shape
    w = max(Y, X)
    sd, dd = 2.0 * w, 1.0 * w
    geometry = fan_beam((Y, X), np.linspace(0, 2 * np.pi, views, endpoint=False), det_shape=(2 * w,),
                        source_distance=sd, detector_distance=dd, det_spacing=(sd + dd) / sd)
    A = Projector(geometry)
    with torch.no_grad():
        clean = A(vol[:, None])
    sigma_y = noise * float(clean.max())
    return GaussianNoise(sigma_y)(clean, generator=torch.Generator().manual_seed(seed)), A, sigma_y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="ct-cond", help="conditional prior: shipped name, file or training run")
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--scans", default=",".join(f"{k}:{v}" for k, v in SCANS))
    ap.add_argument("--volumes", default=",".join(VOLUMES))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cond = load(args.prior, precision="auto") if "/" not in args.prior else conditional_prior(args.prior)
    slice_prior = load("ct-slice", precision="auto")
    t_all = time.perf_counter()
    rows = {}
    for name in args.volumes.split(","):
        vol = central(load_volume(name)[0], args.slices)
        rng = float(vol.max() - vol.min())
        for scan in args.scans.split(","):
            kind, views = scan.split(":")[0], int(scan.split(":")[1])
            if kind == "fan":
                y, A, sigma_y = fan_scan(vol, views, 0.01, seed=1)
                ref, slab = vol[:, None], {}
            else:
                y, geometry, sigma_y = simulate_scan(vol, views=views, noise=0.01, seed=1)
                A, ref, slab = Projector(geometry), vol[None, None], {"slab": None}

            def score(label, r, chi2=None):
                p = volume_psnr(r.mean, ref, rng)
                if chi2 is None:
                    chi2 = data_consistency(A, r.mean, y, sigma_y)["chi2_per_m"]
                rows.setdefault((f"{kind} {views}", label), []).append((p, chi2, r.seconds))
                print(f"{name:14s} {kind:8s} {views:3d}  {label:24s} {p:6.2f} dB  chi2/m {chi2:6.2f}  "
                      f"{r.seconds:6.1f} s", flush=True)

            for m in ("fbp", "sirt"):
                score(m, reconstruct(A, y, method=m, progress=False))
            score("TV (weight rule)", reconstruct(A, y, method="tv", sigma_y=sigma_y, progress=False))
            lam0 = methods.default_tv_weight(A)
            best = max((reconstruct(A, y, method="tv", lam=lam0 * 2 ** (k / 2), scale=None, progress=False)
                        for k in ORACLE_K), key=lambda r: volume_psnr(r.mean, ref, rng))
            score("oracle TV (tuned on it)", best)
            for label, m, prior in (("auto (ct-slice)", "auto", slice_prior), ("cfg (ct-cond)", "cfg", cond)):
                score(label, reconstruct(A, y, method=m, prior=prior, sigma_y=sigma_y, n_samples=args.samples,
                                         progress=False, **slab))
    lines = [f"# cfg on held-out real CT ({', '.join(args.volumes.split(','))}, central {args.slices} slices, "
             f"1% noise, mean of {args.samples} samples)", "",
             f"Made by `python -m benchmarks.cfg_heldout --prior {args.prior}` in {time.perf_counter() - t_all:.0f} s "
             f"on {platform.machine()} ({torch.get_num_threads()} torch thread; two trainings shared the CPU, so "
             "times are comparable within a row group only). PSNR (dB) is the mean over the volumes; χ²/m of the "
             "result (1 = fits the data to the noise). cfg ran with "
             f"`{methods.CFG['options']}`, {methods.CFG['steps']} steps; auto with `{methods.AUTO['options']}`.", "",
             "| scan | method | PSNR (dB) | χ²/m | s |", "|---|---|---:|---:|---:|"]
    for (scan, label), v in rows.items():
        a = np.array(v)
        lines.append(f"| {scan} | {label} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} | {a[:, 2].mean():.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
