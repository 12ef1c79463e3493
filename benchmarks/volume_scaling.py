"""Wall time and peak memory of a whole-volume reconstruction against its depth Z, one table.

For each Z, the central Z axial slices of a held-out phantom are scanned (parallel beam, ``--views``
angles, 1% noise) and reconstructed by ΠGDM (``--steps`` NFE per slab, one sample, the shipped
``slice-64`` prior) in slabs of ``--slabs`` slices (0: the whole volume in one batch), with TV run
beside it as the classical peer. Every row runs in a fresh Python process, so its peak resident
set (``maxRSS``) is its own; ``peak above start`` is what the reconstruction added to a process
that had already loaded the prior and built the projector.

This answers issue 6's two cost targets: a 64³ ΠGDM reconstruction with 50 NFE under 60 s on the
2-core CPU, and peak memory growing (at most) linearly with Z.

Usage:  python benchmarks/volume_scaling.py [--z 16,32,64] [--slabs 32,0] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def one(args) -> dict:
    """One reconstruction in this process; returns its numbers."""
    import torch

    from tomodiff.ct import Projector
    from tomodiff.ct.simulate import simulate_scan
    from tomodiff.io.volumes import load_volume
    from tomodiff.priors import load
    from tomodiff.recon import psnr, reconstruct

    if args.threads:
        torch.set_num_threads(args.threads)
    vol, _ = load_volume(args.volume)
    z0 = (vol.shape[0] - args.one_z) // 2
    vol = vol[z0:z0 + args.one_z].contiguous()
    y, geometry, sigma_y = simulate_scan(vol, views=args.views, noise=0.01, seed=0)
    A = Projector(geometry)
    A.forward(torch.zeros(1, 1, *vol.shape))  # build the projector's matrix before timing
    kw = {}
    if args.one_method != "tv":
        kw = dict(prior=load("slice-64"), steps=args.steps, slab=args.one_slab or None)
    r = reconstruct(A, y, method=args.one_method, sigma_y=sigma_y, progress=False, **kw)
    return {"seconds": r.seconds, "peak_above_start_mb": r.peak_memory_mb, "nfe": r.nfe,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "psnr": float(psnr(r.mean[0, 0].numpy(), vol.numpy(), data_range=1.0)),
            "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--volume", default="shepp_logan_64_a", help="benchmark-set name (default: %(default)s)")
    ap.add_argument("--z", default="16,32,64", help="depths (central slices), comma-separated")
    ap.add_argument("--slabs", default="32,0", help="ΠGDM slab sizes (0: whole volume), comma-separated")
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--one-z", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-method", help=argparse.SUPPRESS)
    ap.add_argument("--one-slab", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one_z:
        print(json.dumps(one(args)))
        return 0

    runs = [(z, "tv", 0) for z in map(int, args.z.split(","))]
    runs += [(z, "pigdm", s) for s in map(int, args.slabs.split(",")) for z in map(int, args.z.split(","))]
    print(f"# volume scaling: {args.volume}, {args.views} views, ΠGDM {args.steps} steps, 1 sample; "
          f"{platform.machine()}, {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| Z | method | slab | time [s] | s per slice | NFE | peak above start [MB] | maxRSS [MB] | PSNR [dB] |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    tv_time = {}
    for z, method, slab in runs:
        cmd = [sys.executable, __file__, "--volume", args.volume, "--views", str(args.views), "--steps",
               str(args.steps), "--threads", str(args.threads), "--one-z", str(z), "--one-method", method,
               "--one-slab", str(slab)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {z} | {method} | {slab or 'all'} | failed: {out.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if method == "tv":
            tv_time[z] = r["seconds"]
        ratio = f" ({r['seconds'] / tv_time[z]:.0f}× TV)" if method != "tv" and tv_time.get(z) else ""
        print(f"| {z} | {method} | {(slab or 'all') if method != 'tv' else '-'} | {r['seconds']:.1f}{ratio} | "
              f"{r['seconds'] / z:.2f} | {r['nfe']} | {r['peak_above_start_mb']:.0f} | {r['max_rss_mb']:.0f} | "
              f"{r['psnr']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
