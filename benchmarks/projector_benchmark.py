"""Forward + adjoint wall time of parallel-beam 3D projectors (and cone beam), one table.

Compares, in one run and on the same volumes:
  torch   tomodiff's torch backend (cached sparse Joseph matrix, all slices in one product);
  astra   ASTRA's CPU 2D ``linear`` projector looped over z-slices (``direct_FP2D/BP2D``);
  deepinv ``deepinv.physics.Tomography`` with the slices as its batch (optional package; unnormalised,
          its default autograd adjoint; run with the first ``--threads`` count).
Times are the best of ``--repeats`` calls of forward then adjoint on one ``(1, 1, N, N, N)``
float32 volume, after one warm-up call; the torch backend's one-off matrix build is reported
separately (``build``; for deepinv, its constructor). Memory is the process's peak resident set
so far (``maxRSS``, from ``resource``; monotone over the run, so a row's growth over the previous
rows is what it added).

Usage:  python benchmarks/projector_benchmark.py --sizes 64,128 --angles 16,60
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import time

import numpy as np
import torch

from tomodiff.ct import Projector, cone_beam, parallel_beam
from tomodiff.ct.backends.matrix_cache import CACHE


def _best_time(fn, repeats):
    fn()  # warm-up (and matrix build for the torch backend)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def torch_runner(geometry, vol):
    A = Projector(geometry, backend="torch")
    CACHE.clear()
    t0 = time.perf_counter()
    A.forward(vol)  # builds and caches the matrix
    build = time.perf_counter() - t0
    return (lambda: A.adjoint(A.forward(vol))), build


def astra_runner(geometry, vol):
    import astra
    from astra.experimental import direct_BP2D, direct_FP2D

    from tomodiff.ct import to_astra
    n_z, n_y, n_x = geometry.volume_shape
    g2 = parallel_beam((n_y, n_x), geometry.angles, det_shape=geometry.det_shape[1:])
    vol_geom, proj_geom = to_astra(g2)
    pid = astra.create_projector("linear", proj_geom, vol_geom)
    v = np.ascontiguousarray(vol[0, 0].numpy())
    sino = np.zeros((n_z, *g2.sino_shape), np.float32)
    back = np.zeros_like(v)

    def run():
        for z in range(n_z):
            direct_FP2D(pid, v[z], sino[z])
        for z in range(n_z):
            direct_BP2D(pid, back[z], sino[z])
    return run, None


def deepinv_runner(geometry, vol):
    # deepinv.physics.Tomography (deepinv 0.5): 2D parallel beam on square (B, C, W, W) images, angles in
    # degrees, sinogram (B, C, U, A) with U = ceil(sqrt(2)·W) for circle=False (the same U as
    # parallel_beam's default detector). normalize=False: the raw line integrals, as torch and ASTRA
    # compute (deepinv's default would rescale A by a power-iteration norm, with a warning).
    # adjoint_via_backprop is deepinv's default (True): the exact adjoint of A by autograd, built on
    # the first call (the warm-up). "build" here is the constructor (the sampling grids).
    from deepinv.physics import Tomography
    n = geometry.volume_shape[-1]
    if geometry.volume_shape[-2] != n or geometry.det_shape[-1] != math.ceil(math.sqrt(2) * n - 1e-9):
        raise ValueError("deepinv_runner: needs square slices and the default detector width")
    t0 = time.perf_counter()
    physics = Tomography(angles=torch.tensor(np.degrees(geometry.angles), dtype=torch.float32),
                         img_width=n, circle=False, normalize=False, adjoint_via_backprop=True, device="cpu")
    build = time.perf_counter() - t0
    slices = vol[0, 0][:, None]  # (Z, 1, Y, X): the slices as deepinv's batch

    def run():
        with torch.no_grad():
            physics.A_adjoint(physics.A(slices))
    return run, build


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="64,128,256", help="cube edge lengths N (voxels)")
    p.add_argument("--angles", default="16,60,180", help="numbers of angles over [0, pi)")
    p.add_argument("--cone-sizes", default="64", help="cone-beam N (torch only; '' to skip)")
    p.add_argument("--cone-angles", default="16,60",
                   help="cone-beam angle counts (the 3D matrix is large: beyond the cache budget it is "
                        "rebuilt on every call)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backends", default="torch,astra,deepinv")
    p.add_argument("--threads", default="1,2",
                   help="torch thread counts to time (ASTRA's CPU projectors are single-threaded)")
    args = p.parse_args(argv)
    default_threads = torch.get_num_threads()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    n_angles = [int(a) for a in args.angles.split(",") if a]
    wanted = args.backends.split(",")
    runners = {"torch": torch_runner, "astra": astra_runner, "deepinv": deepinv_runner}
    missing = {}
    for name in ("astra", "deepinv"):
        try:
            __import__(name)
        except ImportError as err:
            missing[name] = str(err)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    for name, why in missing.items():
        if name in wanted:
            print(f"skipping {name}: {why}")
    header = (f"{'geometry':<10}{'N':>5}{'A':>5}  {'backend':<8}{'fwd+adj s':>10}{'build s':>9}"
              f"{'vs torch':>10}{'maxRSS MiB':>11}")
    print(header)
    print("-" * len(header))
    for n in sizes:
        for a in n_angles:
            g = parallel_beam((n, n, n), np.linspace(0, np.pi, a, endpoint=False))
            vol = torch.rand(1, 1, n, n, n, generator=torch.Generator().manual_seed(0))
            t_torch = None
            jobs = [(f"torch-{k}t", "torch", int(k)) for k in args.threads.split(",")] if "torch" in wanted else []
            # deepinv is torch too: it runs with the first --threads count (ASTRA's CPU code is single-threaded)
            jobs += [(name, name, int(args.threads.split(",")[0]) if name == "deepinv" else None)
                     for name in wanted if name != "torch"]
            for label, name, threads in jobs:
                if name in missing or name not in runners:
                    continue
                torch.set_num_threads(threads or default_threads)
                run, build = runners[name](g, vol)
                t = _best_time(run, args.repeats)
                t_torch = t if t_torch is None and name == "torch" else t_torch
                ratio = f"{t / t_torch:9.1f}x" if t_torch else f"{'':>10}"
                build_s = f"{build:9.2f}" if build is not None else f"{'':>9}"
                print(f"{'parallel':<10}{n:>5}{a:>5}  {label:<8}{t:>10.3f}{build_s}{ratio}"
                      f"{_rss_mib():>11.0f}", flush=True)
                del run
    for n in [int(s) for s in args.cone_sizes.split(",") if s]:
        for a in [int(s) for s in args.cone_angles.split(",") if s]:
            g = cone_beam((n, n, n), np.linspace(0, 2 * np.pi, a, endpoint=False), (n, int(1.5 * n)),
                          source_distance=3.0 * n, detector_distance=1.5 * n, det_spacing=1.5)
            vol = torch.rand(1, 1, n, n, n, generator=torch.Generator().manual_seed(0))
            torch.set_num_threads(int(args.threads.split(",")[0]))
            run, build = torch_runner(g, vol)
            t = _best_time(run, args.repeats)
            cached = "cached" if CACHE.nbytes else "rebuilt per call"
            print(f"{'cone':<10}{n:>5}{a:>5}  {'torch-' + args.threads.split(',')[0] + 't':<8}{t:>10.3f}{build:>9.2f}{'':>10}"
                  f"{_rss_mib():>11.0f}  (matrix {cached})", flush=True)
    print("vs torch: wall time relative to the first torch row of the same volume (>1: torch is faster).")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
