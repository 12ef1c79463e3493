"""Choose DPS's step ζ per 2D task for a prior: ``python -m tomodiff.demos.tune_dps [--prior P]``.

For each task of the demo and each ζ of a grid, runs DPS at ``--steps`` on the demo image with
``--seeds`` different masks/noise/sampler seeds and prints the mean PSNR (dB) per ζ and the best ζ,
as a table and (``--json``) a ``{task: best ζ}`` dict to paste into ``methods.DPS_ZETA``. Cost:
tasks × grid × seeds runs of ``steps`` NFE each (defaults: 5 × 4 × 2 × 50 NFE, a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json

import torch

from .compare import score
from .image_tasks import TASKS, demo_image, make_tasks
from .methods import load_prior, solve


def tune(prior, *, zetas=(1.0, 3.0, 10.0, 30.0), steps: int = 50, seeds=(0, 1), noise_sigma: float = 0.01,
         size: int = 64, family: str = "shepp_logan", tasks=None) -> dict[str, dict[float, float]]:
    """``{task: {ζ: mean PSNR over seeds}}`` for DPS with ``prior`` on the demo's tasks."""

    x = demo_image(size, family)
    table: dict[str, dict[float, list[float]]] = {}
    for seed in seeds:
        for task in make_tasks(x, noise_sigma=noise_sigma, seed=seed, keys=tasks or TASKS):
            for z in zetas:
                est = solve("dps", task, prior=prior, noise_sigma=noise_sigma, steps=steps, zeta=z, seed=seed)
                table.setdefault(task.key, {}).setdefault(z, []).append(score(est.image.clamp(0, 1), x)[0])
    return {k: {z: sum(v) / len(v) for z, v in row.items()} for k, row in table.items()}


def main(argv=None) -> int:

    ap = argparse.ArgumentParser(prog="python -m tomodiff.demos.tune_dps", description=__doc__.split("\n")[0])
    ap.add_argument("--prior", default="slice-64", help="shipped prior name or .pt path (default: %(default)s)")
    ap.add_argument("--zetas", default="1,3,10,30", help="comma-separated grid (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=2, help="number of seeds averaged (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    zetas = tuple(float(z) for z in a.zetas.split(","))
    res = tune(load_prior(a.prior), zetas=zetas, steps=a.steps, seeds=tuple(range(a.seeds)))
    best = {k: max(row, key=row.get) for k, row in res.items()}
    if a.json:
        print(json.dumps({"mean_psnr": {k: {f"{z:g}": round(p, 2) for z, p in r.items()} for k, r in res.items()},
                          "best_zeta": best}, indent=2))
        return 0
    print(f"{'task':<15} " + " ".join(f"ζ={z:<6g}" for z in zetas) + "  best")
    for k, row in res.items():
        print(f"{k:<15} " + " ".join(f"{row[z]:8.2f}" for z in zetas) + f"  {best[k]:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
