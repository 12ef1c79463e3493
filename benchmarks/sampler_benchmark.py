"""Posterior-mean error and wall time against NFE for ΠGDM, DPS and DDS-CG on a Gaussian-mixture prior.

The prior is a mixture of K isotropic Gaussians on 12×12 images with smooth random means, so the
exact posterior mean is known by enumerating the components
(:meth:`GaussianMixturePrior.posterior_mean`). Two operators: a circular Gaussian blur and a 30%
pixel mask, Gaussian noise σ_y = 0.02. Each row: relative error ‖mean of n samples − E[x|y]‖/‖E[x|y]‖,
the Monte-Carlo floor of that error (‖per-pixel std‖/√n / ‖E[x|y]‖, what n exact posterior samples
would give), and the wall time of one batched run of n samples.

Run: ``.venv/bin/python benchmarks/sampler_benchmark.py [--samples 32] [--nfe 10 25 50 100 250 1000]``.
DPS's ζ is chosen from a small grid at the largest NFE on the same problem (stated in the output),
which favours DPS. deepinv's DPS is not compared: installing deepinv replaces the project's torch
2.13 CPU build with torch 2.14 + CUDA and a torchvision that does not load with torch 2.13.
"""

from __future__ import annotations

import argparse
import time

import torch

from tomodiff.operators import GaussianBlur, GaussianNoise, Mask, random_pixel_mask, simulate
from tomodiff.priors import GaussianMixturePrior
from tomodiff.samplers import sample_posterior


def make_prior(K=6, side=12, comp_var=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    smooth = GaussianBlur((side, side), 1.5)
    means = smooth.forward(torch.randn((K, 1, side, side), generator=g, dtype=torch.float64)) * 2.0
    return GaussianMixturePrior(torch.ones(K), means, torch.full((K,), comp_var))


def run(args):
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronisation cost here
    prior = make_prior()
    side = prior.item_shape[-1]
    data_var = float(prior.variance.mean())
    ops = {"blur(σ=1.5)": GaussianBlur((side, side), 1.5),
           "mask(30%)": Mask(random_pixel_mask((side, side), 0.3, generator=torch.Generator().manual_seed(1)))}
    sigma_y, n = 0.02, args.samples
    print(f"GMM prior K={prior.weights.numel()} on {side}x{side}, data_var={data_var:.3f}, sigma_y={sigma_y}, "
          f"n={n} samples per run, torch threads=1")
    for name, A in ops.items():
        x = prior.sample(1, generator=torch.Generator().manual_seed(2))
        y = simulate(A, x, GaussianNoise(sigma_y), generator=torch.Generator().manual_seed(3))
        exact = prior.posterior_mean(A, y, sigma_y)
        norm = float(exact.norm())

        def one(method, nfe, **opts):
            r = sample_posterior(prior, A, y, method=method, sigma_y=sigma_y, steps=nfe, n_samples=n,
                                 generator=torch.Generator().manual_seed(4), progress=False, **opts)
            err = float((r.mean - exact).norm()) / norm
            floor = float(r.std.norm()) / n**0.5 / norm
            return err, floor, r.seconds

        top = max(args.nfe)
        zetas = [0.03, 0.1, 0.3, 1.0]
        zeta = min(zetas, key=lambda z: one("dps", top, zeta=z)[0])
        configs = {"pigdm": {"data_var": data_var}, "dps": {"zeta": zeta},
                   "dds-cg": {"cg_iters": 5, "data_var": data_var}}
        print(f"\n{name}: prior-mean error {float((prior.mean - exact).norm()) / norm:.3f}; "
              f"DPS zeta={zeta} (best of {zetas} at NFE={top})")
        print(f"{'NFE':>6} | " + " | ".join(f"{m:>22}" for m in configs))
        print(f"{'':>6} | " + " | ".join(f"{'err (MC floor)   time':>22}" for _ in configs))
        for nfe in args.nfe:
            cells = []
            for m, opts in configs.items():
                err, floor, sec = one("dds" if m == "dds-cg" else m, nfe, **opts)
                cells.append(f"{err:6.3f} ({floor:5.3f}) {sec:6.2f}s")
            print(f"{nfe:>6} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--nfe", type=int, nargs="+", default=[10, 25, 50, 100, 250, 1000])
    t = time.perf_counter()
    run(p.parse_args())
    print(f"\ntotal {time.perf_counter() - t:.0f}s")
