"""Cost of an emission–absorption render and its backward, against the X-ray projector, one table.

For each volume size N (``--sizes``, default 32, 64, 128) and ``--views`` orthographic cameras at
elevation 0 (azimuths over 180°, images of the projector's detector shape ``(N, ceil(√2·N))``):

  render fwd        ``EmissionAbsorption`` on a ``(1, 2, N, N, N)`` volume (emission, absorption);
  render fwd+bwd    the same with ``x.requires_grad`` and ``images.sum().backward()`` (checkpointed
                    chunks, the default), and once with ``checkpoint=False`` (stores every sample);
  projector fwd / adj / fwd+adj   ``Projector(parallel_beam(...))`` on a ``(1, 1, N, N, N)`` volume,
                    same angles and detector, backends ``matrix_free`` (the same Joseph samples,
                    computed on the fly: the renderer's own sampling code) and ``torch`` (cached
                    sparse matrix; its one-off build is reported apart and not in the times).

Times are the median of ``--repeats`` calls after one warm-up, in seconds; ratios are render /
projector (matrix-free) in the same process, measured interleaved so that the machine's load
(shared CPUs) affects both alike. Memory: each case runs in a fresh process; ``extra MiB`` is the
peak resident set during the call minus the resident set just before it (``/proc/self/statm``
polled every 0.5 ms by a thread, the largest value kept; glibc's mmap threshold fixed at 64 KiB so
that freed tensors leave the resident set), i.e. what the call itself allocates (temporaries, saved
tensors, gradients), not Python + torch + the inputs. ``checkpoint=False`` runs only up to
``--nockpt-max`` (it stores every sample: gigabytes at 128³).

Usage:  OMP_NUM_THREADS=1 python -m benchmarks.render_cost [--sizes 32,64,128] [--views 8]
        [--repeats 3] [--out benchmarks/results/render_cost.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    """Context manager: ``.extra`` = peak RSS during the block − RSS at its start (bytes)."""

    def __enter__(self):
        self.start = self.peak = rss_bytes()
        self._stop = False
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def _poll(self):
        while not self._stop:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.0005)

    def __exit__(self, *exc):
        self.peak = max(self.peak, rss_bytes())
        self._stop = True
        self._t.join()
        self.extra = self.peak - self.start
        return False


def _median_time(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def setup(n: int, views: int):
    import numpy as np
    import torch

    from tomodiff.ct import Projector, parallel_beam
    from tomodiff.render import EmissionAbsorption, orbit

    angles = np.linspace(0, np.pi, views, endpoint=False)
    geom = parallel_beam((n, n, n), angles)
    det = tuple(geom.det_shape)
    cams = orbit(angles, 0.0, image_shape=det)
    g = torch.Generator().manual_seed(0)
    vol = torch.rand((1, 2, n, n, n), generator=g) * 0.05  # optical depth across the volume ~ 1.6 at n = 64
    return geom, cams, vol, EmissionAbsorption, Projector


def measure(kind: str, n: int, views: int, repeats: int) -> dict:
    """One case in this process: warm-up, memory of one call, then the median time."""
    import torch

    torch.set_num_threads(int(os.environ.get("RENDER_COST_THREADS", "1")))
    geom, cams, vol, EA, Projector = setup(n, views)
    res = {"kind": kind, "n": n, "views": views}
    if kind.startswith("render"):
        checkpoint = kind != "render_nockpt"
        R = EA((n, n, n), cams, background=1.0, checkpoint=checkpoint)
        res["image_shape"] = list(R.range_shape)
        res["samples_per_call"] = int(sum(gr.ids.numel() for gr in R._groups) * n)

        def fwd():
            with torch.no_grad():
                R(vol)

        def fwd_bwd():
            x = vol.clone().requires_grad_(True)
            R(x).sum().backward()
            return x.grad

        calls = {"fwd": fwd, "fwd_bwd": fwd_bwd} if checkpoint else {"fwd_bwd": fwd_bwd}
    else:
        backend = kind.split(":")[1]
        t = time.perf_counter()
        with PeakRSS() as m:
            A = Projector(geom, backend=backend)
            y = A(vol[:, :1])
        res["build_s"] = time.perf_counter() - t
        res["build_extra_mib"] = m.extra / 2**20
        x1 = vol[:, :1].contiguous()

        def fwd():
            with torch.no_grad():
                A(x1)

        def adj():
            with torch.no_grad():
                A.T(y)

        def fwd_adj():
            x = x1.clone().requires_grad_(True)
            A(x).sum().backward()
            return x.grad

        calls = {"fwd": fwd, "adj": adj, "fwd_bwd": fwd_adj}
    for name, fn in calls.items():
        fn()  # warm-up (caches, lazy builds)
        with PeakRSS() as m:
            fn()
        res[f"{name}_extra_mib"] = m.extra / 2**20
        res[f"{name}_s"] = _median_time(fn, repeats)
    return res


def run_case(kind: str, n: int, views: int, repeats: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.render_cost", "--one", f"{kind}@{n}", "--views", str(views),
           "--repeats", str(repeats)]
    # a fixed mmap threshold: every allocation >= 64 KiB is its own mapping, returned to the system when
    # freed, so the resident set follows the live tensors (glibc's adaptive threshold would keep a
    # freed warm-up call's memory resident and hide the measured call's peak)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bound_mib(n: int, views: int, samples_per_chunk: int = 1 << 20) -> float:
    """The documented bound on a checkpointed render + backward's extra memory (MiB), B = 1: the
    plane layouts and gradient of the volume (≤ 3 layouts + input grad + layout grads, 2 channels),
    the images, and one chunk's temporaries (≈ 40 bytes × 2 channels × samples per chunk, forward
    and its recomputation in backward), whatever the number of samples."""
    vol = 2 * n ** 3 * 4
    u = math.ceil(math.hypot(n, n) - 1e-9)
    images = views * n * u * 4
    chunk = 40 * 2 * samples_per_chunk
    return (8 * vol + 4 * images + 2 * chunk) / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="32,64,128")
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", default="render,render_nockpt,projector:matrix_free,projector:torch")
    ap.add_argument("--nockpt-max", type=int, default=64, help="largest N for the checkpoint=False row")
    ap.add_argument("--out", default="benchmarks/results/render_cost.md")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        kind, n = a.one.split("@")
        print(json.dumps(measure(kind, int(n), a.views, a.repeats)))
        return 0
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        for kind in a.kinds.split(","):
            if kind == "render_nockpt" and n > a.nockpt_max:
                continue
            t = time.time()
            r = run_case(kind, n, a.views, a.repeats)
            print(f"{kind} @ {n}: {r} ({time.time() - t:.0f} s)", flush=True)
            rows.append(r)
    write(rows, a)
    return 0


def _fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def write(rows, a) -> None:
    import torch

    by = {(r["kind"], r["n"]): r for r in rows}
    sizes = sorted({r["n"] for r in rows})
    L = ["# Render cost: emission–absorption render and backward vs the X-ray projector", "",
         f"Written by `OMP_NUM_THREADS=1 python -m benchmarks.render_cost --sizes {a.sizes} --views {a.views} "
         f"--repeats {a.repeats}` (`benchmarks/render_cost.py`, whose docstring says what is measured). "
         f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, torch "
         f"{torch.__version__}, 1 thread), batch 1, {a.views} orthographic views at elevation 0 over 180°, "
         "images of the projector's detector shape. The machine was shared with other long-running "
         "1-thread processes, so absolute times are inflated alike for all rows; the ratios are the "
         "measurement (each case in its own process, median of the repeats).", "",
         "## Time per call (s)", "",
         "| N³ | samples / render | render fwd | render fwd+bwd | projector fwd (mf) | adjoint (mf) | fwd+adj (mf) "
         "| render fwd / proj fwd | render fwd+bwd / proj fwd+adj | fwd+adj (sparse) | sparse build s |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        r, mf, sp = by.get(("render", n)), by.get(("projector:matrix_free", n)), by.get(("projector:torch", n))
        if not r or not mf:
            continue
        L.append(f"| {n} | {r['samples_per_call'] / 1e6:.1f} M | {_fmt(r['fwd_s'])} | {_fmt(r['fwd_bwd_s'])} | "
                 f"{_fmt(mf['fwd_s'])} | {_fmt(mf['adj_s'])} | {_fmt(mf['fwd_bwd_s'])} | "
                 f"{r['fwd_s'] / mf['fwd_s']:.2f} | {r['fwd_bwd_s'] / mf['fwd_bwd_s']:.2f} | "
                 f"{_fmt(sp['fwd_bwd_s'] if sp else None)} | {_fmt(sp['build_s'] if sp else None, 1)} |")
    L += ["", "(mf = `backend=\"matrix_free\"`, the same Joseph samples as the renderer; sparse = "
          "`backend=\"torch\"`, the cached matrix, built once; the projector maps one channel, the renderer "
          "two: emission and absorption.)", "",
          "## Extra memory of one call (MiB; peak RSS during the call − RSS before it)", "",
          "| N³ | render fwd | render fwd+bwd (checkpointed) | stated bound | render fwd+bwd, checkpoint=False "
          "| projector fwd (mf) | fwd+adj (mf) | fwd+adj (sparse) | sparse matrix build |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        r, nc = by.get(("render", n)), by.get(("render_nockpt", n))
        mf, sp = by.get(("projector:matrix_free", n)), by.get(("projector:torch", n))
        if not r:
            continue
        L.append(f"| {n} | {r['fwd_extra_mib']:.0f} | **{r['fwd_bwd_extra_mib']:.0f}** | {bound_mib(n, a.views):.0f} | "
                 f"{_fmt(nc['fwd_bwd_extra_mib'] if nc else None, 0)} | {_fmt(mf['fwd_extra_mib'] if mf else None, 0)} | "
                 f"{_fmt(mf['fwd_bwd_extra_mib'] if mf else None, 0)} | {_fmt(sp['fwd_bwd_extra_mib'] if sp else None, 0)} | "
                 f"{_fmt(sp['build_extra_mib'] if sp else None, 0)} |")
    L += ["", "Stated bound (`bound_mib`, also in `docs/api/render.md`): extra memory of a checkpointed render "
          "+ backward, batch 1, ≤ 8 × the volume's bytes (2 channels: the plane layouts, their gradients and "
          "the input's gradient) + 4 × the images' bytes + 2 × one chunk's temporaries "
          "(40 bytes × 2 channels × `SAMPLES_PER_CHUNK` = 2²⁰ ray-plane samples on CPU: 80 MiB each). "
          "It does not grow with the number of samples; without checkpointing the saved samples do.", "",
          "Raw numbers:", "", "```json", json.dumps(rows, indent=1), "```", ""]
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(L))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    raise SystemExit(main())
