"""The scale step on limited arcs: FBP's and SIRT's robust maximum against the truth, on TRAINING volumes.

``scale="auto"`` maps the 99.9th percentile of a quick reconstruction to 1 (tomodiff/recon/scale.py).
On a limited arc FBP's missing wedge lowers it; this prints the ratio estimate / true 99.9th
percentile for a non-negative Hann FBP and for 50 / 100 non-negative SIRT iterations, on corpus
volumes of the priors' training split (64², central 16 slices; benchmarks/tv_weight_rule.py), 32
parallel-beam views over 180, 120, 90 and 60 degrees, 1% noise.

    OMP_NUM_THREADS=1 python -m benchmarks.scale_arc --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.operators import GaussianNoise
from tomodiff.recon import fbp, sirt

from .tv_weight_rule import corpus_block

VOLUMES = ("lidc0314_chest", "vhf_pelvis", "mricrogl_head_ct")


def q999(x: torch.Tensor) -> float:
    return float(torch.quantile(x.flatten().float(), 0.999))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--arcs", default="180,120,90,60")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| volume | arc (deg) | FBP / truth | SIRT 50 / truth | SIRT 100 / truth |\n|---|---:|---:|---:|---:|")
    for name in VOLUMES:
        vol = corpus_block(args.data_dir, name, 16)
        true = q999(vol)
        for arc in map(float, args.arcs.split(",")):
            angles = np.radians(arc) * np.arange(32) / 32
            A = Projector(parallel_beam(tuple(vol.shape), angles, det_shape=(vol.shape[0], 91)))
            y = A(vol[None, None])
            y = GaussianNoise(0.01 * float(y.max()))(y, generator=torch.Generator().manual_seed(0))
            f = q999(fbp(A, y, filter="hann", nonneg=True))
            s50, s100 = (q999(sirt(A, y, n_iter=n, nonneg=True, progress=False)) for n in (50, 100))
            print(f"| {name} | {arc:g} | {f / true:.2f} | {s50 / true:.2f} | {s100 / true:.2f} |", flush=True)


if __name__ == "__main__":
    main()
