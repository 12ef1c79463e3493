"""ΠGDM's time per NFE per slice against a plain fp32 forward+VJP of the same network, one run.

Peer: the prior's network in fp32 eager (``precision="fp32"``), one forward and one vector–Jacobian
product back to the input on a batch of ``--slices`` 64² slices (what a VJP-guided step needs of
the network, nothing else). Rows: one whole ΠGDM step as the samplers call it
(:func:`tomodiff.samplers._common.guided_denoise` with :func:`tomodiff.samplers.pigdm` and the
registry's CG settings, ``cg_max_iter`` 10, ``cg_tol`` 1e-3, :func:`tomodiff.recon.solvers.diffusion_options`)
on a ``--slices``-slice slab of a training volume scanned at ``--views`` parallel-beam views with
1% noise, for ``jacobian`` ``"vjp"`` and ``"gaussian"`` and precision fp32 and ``"auto"`` (bf16
where the CPU has it), at σ_t 1, 0.1 and 0.01 (the CG count varies with σ_t; the mean is shown).
Every row is timed interleaved with the peer, round by round, the fastest of ``--rounds`` kept (CPU
time of this process with one thread: little disturbed by other work). End to end (``--end-to-end``,
on by default): ``reconstruct(method="pigdm")`` at 50 steps, 1 sample, on the same slab, per NFE
per slice, wall and CPU time.

    OMP_NUM_THREADS=1 python -m benchmarks.pigdm_speed --out benchmarks/results/pigdm_speed.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from tomodiff import methods
from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.phantoms import generate
from tomodiff.priors import load
from tomodiff.recon import reconstruct
from tomodiff.recon.solvers import diffusion_options
from tomodiff.samplers import pigdm
from tomodiff.samplers._common import guided_denoise

from .sampler_speed import make_prior, time_rows

SIGMAS = (1.0, 0.1, 0.01)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="ct-slice")
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--end-to-end", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    base = load(a.prior)
    priors = {"fp32": make_prior(base, precision="fp32"), "auto": make_prior(base, precision="auto")}
    resolved = priors["auto"].resolved_precision()
    load_start = os.getloadavg()[0]
    # a training-seed phantom slab (benchmarks/volumes.py TRAIN_VOLUMES: texture:12), its scan and ΠGDM's options
    vol = generate("texture", (a.slices, 64, 64), seed=12)
    y, geometry, sigma_y = simulate_scan(vol, views=a.views, noise=0.01, seed=1)
    A = Projector(geometry)
    opts = diffusion_options("pigdm", base, {})
    gen = torch.Generator().manual_seed(1)
    x_vol = {s: (vol[None, None] + s * torch.randn((1, 1, *vol.shape), generator=gen)) for s in SIGMAS}
    x_sl = vol[:, None] + 0.1 * torch.randn((a.slices, 1, 64, 64), generator=gen)
    v_sl = torch.randn_like(x_sl)

    def peer():
        xg = x_sl.clone().requires_grad_(True)
        d = priors["fp32"].denoiser(xg, torch.full((a.slices,), 0.1))
        torch.autograd.grad(d, xg, grad_outputs=v_sl)

    def peer_fwd():
        with torch.no_grad():
            priors["fp32"].denoiser(x_sl, torch.full((a.slices,), 0.1))

    def step(prec, jac, s):
        g = pigdm(A, y, sigma_y, data_var=opts["data_var"], method="auto", cg_tol=opts["cg_tol"],
                  cg_max_iter=opts["cg_max_iter"], jacobian=jac)
        return lambda: guided_denoise(priors[prec].denoiser, x_vol[s], s, s * 0.8, 0.36, 0, 50, g)

    rows = {("peer", None, None): peer, ("fwd", None, None): peer_fwd}
    for prec in ("fp32", "auto"):
        for jac in ("vjp", "gaussian"):
            for s in SIGMAS:
                rows[(prec, jac, s)] = step(prec, jac, s)
    t = time_rows(rows, a.rounds)
    per = {k: v / a.slices * 1e3 for k, v in t.items()}  # ms per slice
    p = per[("peer", None, None)]
    lines = [f"# ΠGDM speed: `{a.prior}`, {a.slices}-slice slab of 64², {a.views} parallel views, "
             f"{platform.machine()}, torch {torch.__version__}, 1 thread, {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"Made by `python -m benchmarks.pigdm_speed`. `precision=\"auto\"` resolves to **{resolved}** here. "
             f"Load average at start {load_start:.2f} (two trainings shared the 2 cores; CPU time of this process, "
             f"fastest of {a.rounds} interleaved rounds). ΠGDM options as the registry runs them: "
             f"`{dict(methods.get('pigdm').options)}`, CG `cg_max_iter={opts['cg_max_iter']}, cg_tol={opts['cg_tol']}`.",
             "", f"Peer: fp32 eager forward+VJP **{p:.2f} ms/slice** (forward alone {per[('fwd', None, None)]:.2f}).",
             "Target: ΠGDM per NFE per slice ≤ 0.5 × the peer.", "",
             "| precision | jacobian | " + " | ".join(f"σ_t {s:g} [ms/slice]" for s in SIGMAS)
             + " | mean [ms/slice] | ÷ peer | ≤ 0.5 |", "|---|---|" + "---:|" * (len(SIGMAS) + 3)]
    ratios = {}
    for prec in ("fp32", "auto"):
        for jac in ("vjp", "gaussian"):
            vals = [per[(prec, jac, s)] for s in SIGMAS]
            mean = sum(vals) / len(vals)
            ratios[(prec, jac)] = mean / p
            lines.append(f"| {prec if prec == 'fp32' else f'auto ({resolved})'} | {jac} | "
                         + " | ".join(f"{v:.2f}" for v in vals)
                         + f" | {mean:.2f} | {mean / p:.2f} | {'met' if mean / p <= 0.5 else 'missed'} |")
    if a.end_to_end:
        lines += ["", f"End to end: `reconstruct(method=\"pigdm\")`, 50 steps, 1 sample, the same slab "
                      "(per NFE per slice; wall includes the scale step and the final CG):", "",
                  "| precision | jacobian | wall [ms/slice/NFE] | CPU [ms/slice/NFE] | CPU ÷ peer |", "|---|---|---:|---:|---:|"]
        for prec in ("fp32", "auto"):
            for jac in ("vjp", "gaussian"):
                w0, c0 = time.perf_counter(), time.process_time()
                r = reconstruct(A, y, method="pigdm", prior=priors[prec], sigma_y=sigma_y, jacobian=jac,
                                progress=False, slab=None)
                w, c = (time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3
                n = r.nfe
                lines.append(f"| {prec} | {jac} | {w / n / a.slices:.2f} | {c / n / a.slices:.2f} | "
                             f"{c / n / a.slices / p:.2f} |")
                print(lines[-1], flush=True)
    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
