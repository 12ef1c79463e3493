"""Posterior-mean error and wall time against NFE for ΠGDM, DPS and DDS-CG on a Gaussian-mixture prior.

The prior is a mixture of K isotropic Gaussians on 12×12 images with smooth random means, so the
exact posterior mean is known by enumerating the components
(:meth:`GaussianMixturePrior.posterior_mean`). Two operators: a circular Gaussian blur and a 30%
pixel mask, Gaussian noise σ_y = 0.02. Each row: relative error ‖mean of n samples − E[x|y]‖/‖E[x|y]‖,
the Monte-Carlo floor of that error (‖per-pixel std‖/√n / ‖E[x|y]‖, what n exact posterior samples
would give), and the wall time of one batched run of n samples.

Run: ``.venv/bin/python benchmarks/sampler_benchmark.py [--samples 32] [--nfe 10 25 50 100 250 1000]``.
DPS's ζ is chosen from a small grid at the largest NFE on the same problem (stated in the output),
which favours DPS. Where deepinv is installed (it needs torchvision, so a separate environment with
torch 2.14.1 + torchvision 0.29.1), a ``deepinv-dps`` column runs ``deepinv.sampling.DPS`` (its
defaults: VP schedule, DDPM solver, residual-norm guidance) with the same exact denoiser, the same y
and the same number of denoiser calls; its ``weight`` is chosen the same way as DPS's ζ (own grid,
stated in the output). ``--no-deepinv`` leaves it out.
"""

from __future__ import annotations

import argparse
import time

import torch

from tomodiff.operators import GaussianBlur, GaussianNoise, Mask, random_pixel_mask, simulate
from tomodiff.priors import GaussianMixturePrior
from tomodiff.samplers import sample_posterior

# deepinv's DPS weights tried at the largest NFE (its "norm" guidance needs weights in the hundreds)
DEEPINV_WEIGHTS = [30, 100, 300, 1000, 3000]
# data x <-> deepinv image u in [0, 1]: x = C·(2u − 1); C = 2 holds every draw of make_prior()
# (max |x| ≈ 1.8 over 1e5 draws), so deepinv's clip of x̂0 to [−1, 1] (in u) never acts
DEEPINV_SCALE = 2.0


def deepinv_dps(prior, A, y, nfe, n, weight, seed=4, c=DEEPINV_SCALE):
    """``deepinv.sampling.DPS`` on the benchmark problem: ``(n, 1, *item_shape)`` samples in data units, seconds.

    deepinv's conventions (0.5): the denoiser is ``model(u, sigma)`` on images ``u`` in [0, 1] with
    ``sigma`` in the same units (the VP state is ``2u − 1``); the data term is
    ``weight·‖y − physics.A(û0)‖`` per batch item. Here ``model(u, s) = (D(x, 2c·s)/c + 1)/2`` with
    ``x = c(2u − 1)`` and ``D`` the prior's exact denoiser (deepinv evaluates it in float32), and
    ``physics.A(u) = A(c(2u − 1))``, so ``y`` and the residual are exactly ours. One sample per
    batch item: ``y`` repeated ``n`` times. ``num_steps = nfe + 1`` time points give ``nfe``
    denoiser calls (the last DDPM step, to t = 0, calls none), checked below.
    """
    import deepinv as dinv

    calls = [0]

    class Denoiser(torch.nn.Module):
        def forward(self, u, sigma, *args, **kwargs):
            calls[0] += 1
            s = torch.as_tensor(sigma, dtype=u.dtype, device=u.device).reshape(-1).expand(u.shape[0])
            return (prior(c * (2 * u - 1), 2 * c * s) / c + 1) / 2

    physics = dinv.physics.Physics(A=lambda u, **kw: A(c * (2 * u.to(y.dtype) - 1)))
    t = time.perf_counter()
    sampler = dinv.sampling.DPS(Denoiser(), num_steps=nfe + 1, weight=weight,
                                rng=torch.Generator().manual_seed(seed))
    u = sampler(y.repeat(n, *([1] * (y.dim() - 1))), physics, x_init=(n, *prior.item_shape), seed=seed)
    seconds = time.perf_counter() - t
    if calls[0] != nfe:
        raise RuntimeError(f"deepinv DPS called the denoiser {calls[0]} times for nfe={nfe}")
    return (c * (2 * u.to(y.dtype) - 1)).detach(), seconds


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
    use_deepinv = not args.no_deepinv
    if use_deepinv:
        try:
            import deepinv
            dinv_note = f", deepinv {deepinv.__version__}"
        except ImportError as err:
            use_deepinv, dinv_note = False, f", deepinv skipped ({err})"
    else:
        dinv_note = ", deepinv not run (--no-deepinv)"
    print(f"GMM prior K={prior.weights.numel()} on {side}x{side}, data_var={data_var:.3f}, sigma_y={sigma_y}, "
          f"n={n} samples per run, torch {torch.__version__}, threads=1{dinv_note}")
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
        note = ""
        if use_deepinv:
            def one_deepinv(nfe, weight):
                xs, sec = deepinv_dps(prior, A, y, nfe, n, weight)
                err = float((xs.mean(0) - exact).norm()) / norm
                floor = float(xs.std(0, correction=1).norm()) / n**0.5 / norm
                return err, floor, sec

            weight = min(DEEPINV_WEIGHTS, key=lambda w: one_deepinv(top, w)[0])
            configs["deepinv-dps"] = {"weight": weight}
            note = f"; deepinv DPS weight={weight} (best of {DEEPINV_WEIGHTS} at NFE={top})"
        print(f"\n{name}: prior-mean error {float((prior.mean - exact).norm()) / norm:.3f}; "
              f"DPS zeta={zeta} (best of {zetas} at NFE={top}){note}")
        print(f"{'NFE':>6} | " + " | ".join(f"{m:>22}" for m in configs))
        print(f"{'':>6} | " + " | ".join(f"{'err (MC floor)   time':>22}" for _ in configs))
        for nfe in args.nfe:
            cells = []
            for m, opts in configs.items():
                if m == "deepinv-dps":
                    err, floor, sec = one_deepinv(nfe, opts["weight"])
                else:
                    err, floor, sec = one("dds" if m == "dds-cg" else m, nfe, **opts)
                cells.append(f"{err:6.3f} ({floor:5.3f}) {sec:6.2f}s")
            print(f"{nfe:>6} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--nfe", type=int, nargs="+", default=[10, 25, 50, 100, 250, 1000])
    p.add_argument("--no-deepinv", action="store_true", help="leave out the deepinv DPS column")
    t = time.perf_counter()
    run(p.parse_args())
    print(f"\ntotal {time.perf_counter() - t:.0f}s")
