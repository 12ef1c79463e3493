"""Time per NFE per slice of a shipped slice prior, fp32 eager against the faster variants, one table.

Every row calls the prior the way the samplers do (``prior.denoiser(x, sigma)`` on a batch of
``--batch`` 64² slices): *forward* under ``torch.no_grad()`` (DDS, SDEdit, unconditional sampling),
*forward+VJP* with a vector–Jacobian product back to the input (ΠGDM, DPS). The peer is plain fp32
eager (a prior's defaults, ``precision="fp32"``: the network exactly as trained), measured in the same run, interleaved with the variants round by round; each time is the
fastest of ``--rounds`` rounds (the least disturbed by other work on the machine).

Accuracy: denoising PSNR (σ = 0.05, 0.1, 0.2) on real CT slices (``$TOMODIFF_SHARED_DATA/ct_corpus``:
64² crops of block-averaged axial slices) and on the 64³ benchmark phantoms, each variant minus fp32; the column
shows the largest |ΔPSNR| over the σ values and both sets (the issue's bound: 0.1 dB).

``--volume`` (on by default) adds the end-to-end figure: a 64³ phantom, 8 parallel-beam views, 1%
noise, ΠGDM and DDS with 50 NFE as one 64-slice batch and in the default slabs of 32, fp32 eager
against ``precision="auto"`` (wall time). ``--compile`` adds torch.compile rows (minutes of compile time on these
CPUs), with the compile time charged to a 64³ × 50-NFE job.

Usage:  python -m benchmarks.sampler_speed [--threads 1] [--batch 32] [--rounds 5] [--no-volume]
        [--compile] [--out benchmarks/results/sampler_speed.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.io.volumes import load_volume
from tomodiff.priors import load
from tomodiff.priors.precision import cpu_bf16_supported
from tomodiff.recon import psnr as vpsnr
from tomodiff.recon import reconstruct

from .volumes import benchmark_volumes, shared_data

CT_VOLUMES = ("lidc0314_chest", "mricrogl_head_ct", "philips_head_phantom", "engine_block")
SIGMAS = (0.05, 0.1, 0.2)
PEER = dict(precision="fp32")  # the Prior defaults: fp32 eager, bit for bit


# ----------------------------------------------------------------------------- data
def ct_slices(n_per_volume: int = 8) -> np.ndarray:
    """``(N, 1, 64, 64)`` real CT slices in [0, 1]: block means (f×f, f = the smaller side // 64) of
    axial slices from the middle half of each volume, centre 64² crops."""
    out, corpus = [], shared_data() / "ct_corpus"
    for name in CT_VOLUMES:
        path = corpus / f"{name}.npz"
        if not path.is_file():
            continue
        vol = np.load(path)["volume"]
        zs = np.linspace(vol.shape[0] * 0.25, vol.shape[0] * 0.75, n_per_volume).astype(int)
        for z in zs:
            sl = vol[z].astype(np.float32) / 65535
            f = max(1, min(sl.shape) // 64)
            Y, X = (sl.shape[0] // f) * f, (sl.shape[1] // f) * f
            sl = sl[:Y, :X].reshape(Y // f, f, X // f, f).mean((1, 3))
            y0, x0 = (sl.shape[0] - 64) // 2, (sl.shape[1] - 64) // 2
            if y0 >= 0 and x0 >= 0:
                out.append(sl[y0:y0 + 64, x0:x0 + 64])
    return np.stack(out)[:, None] if out else np.zeros((0, 1, 64, 64), np.float32)


def phantom_slices(n: int = 32) -> np.ndarray:
    """``(N, 1, 64, 64)`` axial slices of the 64³ benchmark phantoms (never trained on)."""
    vols = list(benchmark_volumes((64, 64, 64)).values())
    per = max(1, n // len(vols))
    out = [v[z] for v in vols for z in np.linspace(12, 52, per).astype(int)]
    return np.stack(out)[:, None].astype(np.float32)


def psnr(x, ref) -> float:
    mse = float(np.mean((np.asarray(x, np.float64) - ref) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-20))


# ----------------------------------------------------------------------------- one variant
def make_prior(base, **speed):
    """A prior sharing ``base``'s network, with its own speed settings."""
    return type(base)(base.net, base.size, base.info, max_batch=base.max_batch, **speed)


def forward(prior, x, s):
    with torch.no_grad():
        return prior.denoiser(x, s)


def forward_vjp(prior, x, s, v):
    xg = x.clone().requires_grad_(True)
    d = prior.denoiser(xg, s)
    (g,) = torch.autograd.grad(d, xg, grad_outputs=v)
    return d.detach(), g


def denoise_psnr(prior, sets: dict, grad: bool, seed: int = 0) -> dict:
    """Mean denoising PSNR per (set, σ), in the forward (``grad=False``) or forward+VJP path."""
    out = {}
    for name, clean in sets.items():
        if not len(clean):
            continue
        g = torch.Generator().manual_seed(seed)
        c = torch.from_numpy(clean)
        for s in SIGMAS:
            noisy = c + s * torch.randn(c.shape, generator=g)
            d = forward_vjp(prior, noisy, s, torch.ones_like(noisy))[0] if grad else forward(prior, noisy, s)
            out[(name, s)] = float(np.mean([psnr(d[i].numpy(), clean[i]) for i in range(len(clean))]))
    return out


# ----------------------------------------------------------------------------- timing
def time_rows(rows: dict, rounds: int, clock=time.process_time) -> dict:
    """Interleaved timing: every row once per round (after one warm-up), fastest round kept (s).
    ``clock``: the process's CPU time by default (with one thread, what the call costs, little
    disturbed by other processes on a busy machine); ``time.perf_counter`` for wall time."""
    best = {k: float("inf") for k in rows}
    for fn in rows.values():
        fn()
    for _ in range(rounds):
        for k, fn in rows.items():
            t = clock()
            fn()
            best[k] = min(best[k], clock() - t)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prior", default="slice-64")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for every row (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=32, help="slices per network call of the peer (default: %(default)s)")
    ap.add_argument("--batches", default="8,16,64", help="other batch sizes (more slices per call), comma-separated")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sigma", type=float, default=0.3, help="σ of the timed calls (time does not depend on it)")
    ap.add_argument("--volume", action=argparse.BooleanOptionalAction, default=True,
                    help="also time a 64³ ΠGDM reconstruction with 50 NFE, fp32 eager against the default")
    ap.add_argument("--compile", action="store_true", help="add torch.compile rows (slow to compile)")
    ap.add_argument("--out", default=None, help="write the table (markdown) here too")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    base = load(a.prior)
    default = make_prior(base, precision="auto")  # the measured-best settings
    load1 = os.getloadavg()[0]
    head = (f"# sampler speed: `{a.prior}` ({sum(p.numel() for p in base.net.parameters()):,} parameters), "
            f"64² slices, {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"{a.threads} thread(s), {time.strftime('%Y-%m-%d %H:%M')}\n\n"
            f"CPU bf16 native (AVX-512 BF16/AMX): {cpu_bf16_supported()}; `precision=\"auto\"` "
            f"resolves to **{default.resolved_precision()}** here. Load average at start: {load1:.2f}")
    print(head, flush=True)

    # name: (speed settings, slices per call, whether the forward+VJP row differs from another row:
    # channels_last and inference_mode act only on calls without a gradient)
    variants = {
        "fp32 eager (peer)": (PEER, a.batch, True),
        "fp32 + inference_mode": (dict(PEER, inference_mode=True), a.batch, False),
        "fp32 + channels_last": (dict(PEER, channels_last=True), a.batch, False),
        "fp32 + channels_last + inference_mode": (dict(precision="fp32", channels_last=True, inference_mode=True), a.batch, False),
        "bf16 autocast": (dict(precision="bf16", channels_last=False, inference_mode=False), a.batch, True),
        "bf16 + channels_last": (dict(precision="bf16", channels_last=True, inference_mode=False), a.batch, True),
        "bf16 + channels_last + inference_mode": (dict(precision="bf16", channels_last=True, inference_mode=True), a.batch, True),
        "precision=\"auto\"": (dict(precision="auto"), a.batch, True),
    }
    for b in [int(v) for v in a.batches.split(",") if v]:
        variants[f"fp32 eager, {b} slices per call"] = (PEER, b, True)
        variants[f"precision=\"auto\", {b} slices per call"] = (dict(precision="auto"), b, True)
    priors = {k: make_prior(base, **sp) for k, (sp, _, _) in variants.items()}
    gen = torch.Generator().manual_seed(1)
    xs = {b: torch.rand(b, 1, 64, 64, generator=gen) for _, b, _ in variants.values()}
    vs = {b: torch.randn(b, 1, 64, 64, generator=gen) for b in xs}

    def f_fwd(p, b):
        return lambda: forward(p, xs[b], a.sigma)

    def f_vjp(p, b):
        return lambda: forward_vjp(p, xs[b], a.sigma, vs[b])

    rows = {}
    for k, (_, b, vjp) in variants.items():
        rows[(k, "fwd")] = f_fwd(priors[k], b)
        if vjp:
            rows[(k, "vjp")] = f_vjp(priors[k], b)
    clock = time.process_time if a.threads == 1 else time.perf_counter
    t = time_rows(rows, a.rounds, clock)
    per = {key: t[key] / variants[key[0]][1] * 1e3 for key in t}  # ms per slice

    sets = {"CT": ct_slices(), "phantoms": phantom_slices()}
    ref = {False: denoise_psnr(priors["fp32 eager (peer)"], sets, grad=False),
           True: denoise_psnr(priors["fp32 eager (peer)"], sets, grad=True)}
    ref_mean = {g: {s: np.mean([v for (n, ss), v in ref[g].items() if ss == s]) for s in SIGMAS} for g in ref}

    comp = {}
    if a.compile:
        comp = compile_rows(base, a, xs[a.batch], vs[a.batch])

    pf, pv = per[("fp32 eager (peer)", "fwd")], per[("fp32 eager (peer)", "vjp")]
    lines = ["", f"Times: {'CPU time of this process (1 thread: what a call costs, little disturbed by other work)' if a.threads == 1 else 'wall time'}, "
             f"fastest of {a.rounds} interleaved rounds.",
             f"Peer: fp32 eager, {a.batch} slices per call: forward {pf:.2f} ms/slice, forward+VJP {pv:.2f} ms/slice.",
             "Ratios are against the peer's forward+VJP (the issue's yardstick) and, for forward rows, "
             "against the peer's forward too.", "",
             "| variant | slices/call | forward [ms/slice] | ÷ fp32 fwd | ÷ fp32 fwd+VJP | forward+VJP [ms/slice] | "
             "÷ fp32 fwd+VJP | max \\|ΔPSNR\\| fwd / fwd+VJP [dB] |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for k, (_, b, _) in variants.items():
        f = per[(k, "fwd")]
        v = per.get((k, "vjp"))
        dp = []
        for grad in (False, True):
            if grad and v is None:
                dp.append("-")
                continue
            cur = ref[grad] if k.startswith("fp32 eager") else denoise_psnr(priors[k], sets, grad=grad)
            dp.append(f"{max(abs(cur[key] - ref[grad][key]) for key in cur):.3f}")
        vcol = f"{v:.2f} | {v / pv:.2f}" if v is not None else "(as without) | -"
        lines.append(f"| {k} | {b} | {f:.2f} | {f / pf:.2f} | {f / pv:.2f} | {vcol} | {' / '.join(dp)} |")
    for k, r in comp.items():
        lines.append(f"| {k} | {a.batch} | {r['fwd']:.2f} | {r['fwd'] / pf:.2f} | {r['fwd'] / pv:.2f} | "
                     f"{r['vjp']:.2f} | {r['vjp'] / pv:.2f} | compile {r['compile_s']:.0f} s; per slice-NFE of a "
                     f"64³×50 job incl. compile: {r['amortised']:.2f} ms ({r['amortised'] / pv:.2f}) |")
    lines += ["", "fp32 denoising PSNR of the peer (mean of CT and phantom sets, dB): "
              + ", ".join(f"σ {s}: {ref_mean[False][s]:.2f}" for s in SIGMAS)]
    for name, clean in sets.items():
        lines.append(f"- {name}: {len(clean)} slices")
    print("\n".join(lines), flush=True)

    vol_lines = []
    if a.volume:
        vol_lines = volume_rows(base, default)
        print("\n".join(vol_lines), flush=True)
    lines.append(f"\nLoad average at the end: {os.getloadavg()[0]:.2f}")
    print(lines[-1])
    if a.out:
        Path(a.out).write_text(head + "\n" + "\n".join(lines[:-1]) + "\n" + "\n".join(vol_lines) + lines[-1] + "\n")
    return 0


def compile_rows(base, a, x, v) -> dict:
    """torch.compile of the EDM denoiser (fp32 and bf16), compile time (wall) measured on the first
    calls with inductor's on-disk caches off (a cold compile, as a user's first run)."""
    import torch._inductor.config as inductor_config  # only with --compile: start-up time of inductor

    inductor_config.force_disable_caches = True
    out = {}
    for prec in ("fp32", "bf16"):
        torch._dynamo.reset()
        p = make_prior(base, precision=prec, channels_last=False, inference_mode=False)
        p.net = torch.compile(base.net, dynamic=False)
        t0 = time.perf_counter()
        forward_vjp(p, x, a.sigma, v)
        forward(p, x, a.sigma)
        c = time.perf_counter() - t0
        t = time_rows({"fwd": lambda: forward(p, x, a.sigma), "vjp": lambda: forward_vjp(p, x, a.sigma, v)}, a.rounds,
                      time.process_time if a.threads == 1 else time.perf_counter)
        fwd, vjp = t["fwd"] / len(x) * 1e3, t["vjp"] / len(x) * 1e3
        out[f"torch.compile {prec}"] = {"compile_s": c, "fwd": fwd, "vjp": vjp,
                                        "amortised": vjp + c * 1e3 / (64 * 50)}
    torch._dynamo.reset()
    return out


def volume_rows(base, default) -> list[str]:
    """64³ ΠGDM at 50 NFE, fp32 eager against the default settings, as one batch and in slabs of 32."""
    vol, _ = load_volume("shepp_logan_64_a")
    y, geometry, sigma_y = simulate_scan(vol, views=8, noise=0.01, seed=0)
    A = Projector(geometry)
    A.forward(torch.zeros(1, 1, *vol.shape))  # build the projector before timing
    lines = ["", "64³ at 50 NFE, 8 views, 1% noise, shepp_logan_64_a, end to end through `reconstruct` "
             "(wall and CPU seconds of this process):", "",
             "| method | slab | fp32 eager: wall / CPU [s] | precision=\"auto\": wall / CPU [s] | ratio (wall / CPU) | "
             "PSNR fp32 / auto [dB] |", "|---|---|---:|---:|---:|---:|"]
    peer = make_prior(base, **PEER)
    for method, slab in (("pigdm", None), ("pigdm", 32), ("dds", None)):
        r, cpu = {}, {}
        for name, p in (("peer", peer), ("auto", default)):
            c0 = time.process_time()
            r[name] = reconstruct(A, y, method=method, prior=p, steps=50, sigma_y=sigma_y, slab=slab, progress=False)
            cpu[name] = time.process_time() - c0
        q = {k: float(vpsnr(v.mean[0, 0].numpy(), vol.numpy(), data_range=1.0)) for k, v in r.items()}
        lines.append(f"| {method} | {slab or 'all 64'} | {r['peer'].seconds:.1f} / {cpu['peer']:.1f} | "
                     f"{r['auto'].seconds:.1f} / {cpu['auto']:.1f} | {r['auto'].seconds / r['peer'].seconds:.2f} / "
                     f"{cpu['auto'] / cpu['peer']:.2f} | {q['peer']:.2f} / {q['auto']:.2f} |")
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
