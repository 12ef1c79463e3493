"""Forward + adjoint wall time and peak memory of the CPU projectors, ASTRA beside them, one table.

Backends, timed on the same volume in the same run:
  torch        tomodiff's cached sparse Joseph matrix (one-off build, then one sparse product);
  matrix_free  tomodiff's matrix-free Joseph projector (weights computed on the fly per angle batch);
  astra        ASTRA's CPU 2D ``linear`` (Joseph) projector, looped over z-slices (parallel beam
               only: ASTRA has no CPU 3D / cone projector).
Each (case, backend) runs in a fresh process, so ``peak MiB`` is that backend's own peak resident
set (``ru_maxrss``, including ~300 MiB of Python + torch). ``build s`` is the torch backend's matrix
build; ``1st s`` is the first forward + adjoint (build included); ``fwd+adj s`` the best of
``--repeats`` later calls; ``vs astra`` = fwd+adj time / ASTRA's in the same run (< 1: faster than
ASTRA). The torch backend is skipped where its matrix (upper bound ``matrix_bytes``) exceeds
``--budget`` (the auto backend's memory budget), and said so.

Cases (``--cases``, comma-separated): ``par:Z:N:A`` (parallel beam, Z slices of N², A angles over
180°), ``cone:N:A`` (N³, A angles over 360°, detector N × 1.5N), ``tooth`` (the APS tooth scan's
geometry: 2 rows × 640 columns, its 181 angles, centre offset -23.5, volume 2 × 640²).

Usage:  OMP_NUM_THREADS=1 python -m benchmarks.projector_benchmark [--cases ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

DEFAULT_CASES = "par:64:64:60,par:128:128:60,par:8:256:180,par:4:512:180,tooth,cone:64:60,cone:128:180"
# the tooth scan's own angles when the shared data folder is given (else the same 181 angles, computed)
SHARED = os.environ.get("TOMODIFF_SHARED_DATA")
TOOTH = os.path.join(SHARED, "aps_tooth", "tooth.h5") if SHARED else None


def make_geometry(case: str):
    import numpy as np

    from tomodiff.ct import cone_beam, parallel_beam
    kind, *nums = case.split(":")
    if kind == "par":
        z, n, a = map(int, nums)
        return parallel_beam((z, n, n), np.linspace(0, np.pi, a, endpoint=False))
    if kind == "cone":
        n, a = map(int, nums)
        return cone_beam((n, n, n), np.linspace(0, 2 * np.pi, a, endpoint=False), (n, int(1.5 * n)),
                         source_distance=3.0 * n, detector_distance=1.5 * n, det_spacing=1.5)
    if kind == "tooth":
        angles = np.radians(np.linspace(0.0, 179.0055, 181))  # as /exchange/theta of tooth.h5
        if TOOTH and os.path.exists(TOOTH):
            import h5py
            with h5py.File(TOOTH, "r") as f:
                angles = np.radians(f["exchange/theta"][()].astype(np.float64))
        return parallel_beam((2, 640, 640), angles, det_shape=(2, 640), center_offset=-23.5)
    raise ValueError(f"unknown case {case!r}: expected par:Z:N:A, cone:N:A or tooth")


def run_one(case: str, backend: str, repeats: int) -> dict:
    """Time one backend on one case in this process; returns a dict of numbers."""
    import resource

    import numpy as np
    import torch

    g = make_geometry(case)
    vol = torch.rand(1, 1, *g.volume_shape, generator=torch.Generator().manual_seed(0))
    out = {"case": case, "backend": backend}
    if backend == "astra":
        import astra
        from astra.experimental import direct_BP2D, direct_FP2D

        from tomodiff.ct import parallel_beam, to_astra
        if g.kind != "parallel":
            return {**out, "skipped": "ASTRA has no CPU cone-beam projector"}
        g2 = parallel_beam(g.volume_shape[1:], g.angles, det_shape=g.det_shape[1:], center_offset=g.center_offset)
        vg, pg = to_astra(g2)
        pid = astra.create_projector("linear", pg, vg)
        v = np.ascontiguousarray(vol[0, 0].numpy())
        sino = np.zeros((v.shape[0], *g2.sino_shape), np.float32)
        back = np.zeros_like(v)

        def call():
            for z in range(v.shape[0]):
                direct_FP2D(pid, v[z], sino[z])
            for z in range(v.shape[0]):
                direct_BP2D(pid, back[z], sino[z])
    else:
        from tomodiff.ct import Projector
        from tomodiff.ct.backends.matrix_cache import CACHE
        from tomodiff.ct.backends.torch_backend import matrix_bytes
        if backend == "torch":
            need = matrix_bytes(g)
            out["matrix_MiB"] = need / 2**20
            if need > CACHE.limit_bytes:
                return {**out, "skipped": f"matrix ≤ {need / 2**30:.1f} GiB exceeds the {CACHE.limit_bytes / 2**30:.0f} GiB budget"}
        A = Projector(g, backend=backend)
        if backend == "torch" and g.kind != "cone":  # cone blocks are built inside the first call
            t0 = time.perf_counter()
            A._kernel._matrices(A._kernel._slice_geometry if g.ndim == 3 else g, torch.float32, "cpu")
            out["build_s"] = time.perf_counter() - t0
            CACHE.clear()  # the first call below builds again: it is timed build included

        def call():
            A.adjoint(A.forward(vol))
    t0 = time.perf_counter()
    call()
    out["first_s"] = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    out["fwd_adj_s"] = best
    out["peak_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=DEFAULT_CASES)
    p.add_argument("--backends", default="astra,torch,matrix_free")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (ASTRA's CPU code is single-threaded)")
    p.add_argument("--markdown", default=None, help="also write the table as Markdown to this file")
    p.add_argument("--one", nargs=2, metavar=("CASE", "BACKEND"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        import torch
        torch.set_num_threads(args.threads)
        print(json.dumps(run_one(*args.one, args.repeats)))
        return
    import torch
    header = f"torch {torch.__version__}, {args.threads} torch thread(s), cpus {os.cpu_count()}, " \
             f"load average at start {os.getloadavg()[0]:.2f}"
    print(header)
    cols = f"{'case':<18}{'backend':<13}{'build s':>9}{'1st s':>9}{'fwd+adj s':>11}{'vs astra':>10}{'peak MiB':>10}"
    print(cols + "\n" + "-" * len(cols))
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for case in args.cases.split(","):
        t_astra = None
        for backend in args.backends.split(","):
            proc = subprocess.run([sys.executable, __file__, "--one", case, backend, "--repeats", str(args.repeats),
                                   "--threads", str(args.threads)], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                r = {"case": case, "backend": backend, "skipped": "failed: " + proc.stderr.strip().splitlines()[-1]}
            else:
                r = json.loads(proc.stdout.strip().splitlines()[-1])
            if backend == "astra" and "fwd_adj_s" in r:
                t_astra = r["fwd_adj_s"]
            r["vs_astra"] = r["fwd_adj_s"] / t_astra if t_astra and "fwd_adj_s" in r else None
            rows.append(r)
            if "skipped" in r:
                print(f"{case:<18}{backend:<13}  skipped: {r['skipped']}", flush=True)
                continue
            fmt = lambda v, w, spec: f"{v:{w}{spec}}" if v is not None else f"{'':>{w}}"  # noqa: E731
            print(f"{case:<18}{backend:<13}{fmt(r.get('build_s'), 9, '.2f')}{fmt(r['first_s'], 9, '.2f')}"
                  f"{fmt(r['fwd_adj_s'], 11, '.3f')}{fmt(r['vs_astra'], 10, '.2f')}{fmt(r['peak_MiB'], 10, '.0f')}",
                  flush=True)
    print("\nWhere each backend wins (fastest repeated fwd+adj; first call with build in brackets):")
    summary = []
    for case in args.cases.split(","):
        timed = [r for r in rows if r["case"] == case and "fwd_adj_s" in r]
        if not timed:
            continue
        best = min(timed, key=lambda r: r["fwd_adj_s"])
        first = min(timed, key=lambda r: r["first_s"])
        line = f"  {case}: {best['backend']} [{first['backend']}]"
        summary.append(line)
        print(line)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"<!-- {header} -->\n\n| case | backend | build s | 1st call s | fwd+adj s | vs ASTRA | peak MiB |\n"
                    "|---|---|---:|---:|---:|---:|---:|\n")
            for r in rows:
                if "skipped" in r:
                    f.write(f"| {r['case']} | {r['backend']} | skipped: {r['skipped']} | | | | |\n")
                    continue
                cell = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
                f.write(f"| {r['case']} | {r['backend']} | {cell(r.get('build_s'), '.2f')} | {r['first_s']:.2f} | "
                        f"{r['fwd_adj_s']:.3f} | {cell(r['vs_astra'], '.2f') + ('×' if r['vs_astra'] else '')} | {r['peak_MiB']:.0f} |\n")
            f.write("\nFastest repeated forward + adjoint per case (fastest first call, build included, in brackets):\n\n")
            f.write("\n".join(s.replace("  ", "- ", 1) for s in summary) + "\n")


if __name__ == "__main__":
    main()
