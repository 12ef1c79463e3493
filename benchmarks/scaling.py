"""Slab-parallel scaling: 1 against 2 ranks on a 64-slice diffusion job, and peak memory against volume size.

Every measurement is a fresh ``tomodiff reconstruct`` process (or a ``torchrun`` job of them) on a
file made by ``tomodiff simulate`` (a Shepp–Logan phantom, parallel beam, 1% noise):

- **speed**: ΠGDM with the ``slice-64`` prior on a 64³ volume, slabs of 19 with overlap 4 (four
  equal slabs, two per pass), on 1 rank and on 2 ranks (gloo), both on the streaming path; wall
  time of the whole command and the reconstruction's own time, and the machine's load average
  (other work on the same cores slows the 2-rank run most).
- **memory**: peak resident set (``ru_maxrss``, whole process: Python, torch and the projector
  included) of the in-memory path (``tomodiff reconstruct``) against the streaming path on 1 rank and
  per rank on 2 ranks, for FBP and SIRT (10 iterations: memory does not depend on them) at several
  sizes, and for ΠGDM at few steps.

Usage:  python benchmarks/scaling.py --work /tmp/scaling [--parts speed,memory,diffusion]
        [--sizes 128,256,512] [--diffusion-sizes 64,128,256] [--speed-steps 10]
Writes benchmarks/results/scaling.md (``--md``) and keeps every row in ``WORK/results.json``, so
an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# runs the CLI in this process and reports its own peak RSS (the in-memory path has no rank report)
WRAP = """
import json, resource, sys, time
from tomodiff.cli import main
t0 = time.perf_counter()
rc = main(sys.argv[2:])
json.dump({"rc": rc, "seconds": time.perf_counter() - t0,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, open(sys.argv[1], "w"))
"""


def env():
    e = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    e["OMP_NUM_THREADS"] = "1"
    return e


def simulate(work: Path, size: int, views: int) -> Path:
    path = work / f"shepp_{size}_{views}.h5"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "tomodiff", "simulate", "--phantom", f"shepp_logan:0:{size}",
                        "--views", str(views), "--out", str(path), "--threads", "1"], check=True, env=env(),
                       stdout=subprocess.DEVNULL)
    return path


def in_memory(work: Path, args: list[str]) -> dict:
    rep = work / "wrap.json"
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    run = subprocess.run([sys.executable, "-c", WRAP, str(rep), "reconstruct", *args, "--json", "--threads", "1"],
                         env=env(), capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    r = json.loads(rep.read_text())
    return {"wall_s": time.perf_counter() - t0, "seconds": r["seconds"], "peak_rss_mb": [r["peak_rss_mb"]],
            "load": [load0, os.getloadavg()[0]]}


def streamed(nproc: int, args: list[str]) -> dict:
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                          "-m", "tomodiff", "reconstruct", *args, "--json", "--threads", "1"], env=env(),
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    s = json.loads(run.stdout[run.stdout.index("{"):])
    return {"wall_s": time.perf_counter() - t0, "seconds": s["seconds"], "cpu_s": [r.get("cpu_s") for r in s["ranks"]],
            "peak_rss_mb": [r["peak_rss_mb"] for r in s["ranks"]], "load": [load0, os.getloadavg()[0]],
            "psnr": s.get("psnr"), "slabs": s["slabs"]}


def measure(results: dict, key: str, fn, *a):
    if key not in results:
        print(f"running {key} ...", flush=True)
        results[key] = fn(*a)
        print(f"  {results[key]}", flush=True)
    return results[key]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="folder for inputs, outputs and results.json")
    ap.add_argument("--parts", default="speed,memory,depth,diffusion")
    ap.add_argument("--sizes", default="128,256,512", help="FBP/SIRT volume edges")
    ap.add_argument("--diffusion-sizes", default="64,128,256", help="ΠGDM volume edges (2 steps)")
    ap.add_argument("--in-memory-max", type=int, default=512, help="largest edge also run on the in-memory path")
    ap.add_argument("--depths", default="128,512,2048", help="depths Z of 128² slices for the depth part (FBP)")
    ap.add_argument("--speed-steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="1-rank/2-rank pairs of the speed part")
    ap.add_argument("--sirt-iters", type=int, default=3, help="SIRT iterations (memory does not depend on them)")
    ap.add_argument("--md", type=Path, default=Path(__file__).parent / "results" / "scaling.md")
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    store = a.work / "results.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    parts = a.parts.split(",")

    def save():
        store.write_text(json.dumps(results, indent=1))

    try:
        if "speed" in parts:
            src = simulate(a.work, 64, 16)
            job = [str(src), "--method", "pigdm", "--prior", "slice-64", "--steps", str(a.speed_steps),
                   "--samples", "1", "--slab", "19", "--overlap", "4", "--seed", "0"]
            for rep in range(a.repeats):  # alternating, so that changes in the machine's load hit both
                for n in (1, 2):
                    measure(results, f"speed/{n}/{rep}", streamed, n, job + ["--out", str(a.work / f"speed{n}.h5")])
                    save()
        if "memory" in parts:
            for size in map(int, a.sizes.split(",")):
                src = simulate(a.work, size, 64)
                for method in ("fbp", "sirt"):
                    job = [str(src), "--method", method, *(["--iters", str(a.sirt_iters)] if method == "sirt" else [])]
                    out = ["--out", str(a.work / f"{method}{size}.h5")]
                    if size <= a.in_memory_max:
                        measure(results, f"memory/{method}/{size}/in-memory", in_memory, a.work, job + out)
                        save()
                    for n in (1, 2):
                        measure(results, f"memory/{method}/{size}/stream{n}", streamed, n, job + out)
                        save()
        if "depth" in parts:  # fixed 128² slices, growing Z: the streaming path's memory must stay flat
            base = simulate(a.work, 128, 64)
            for z in map(int, a.depths.split(",")):
                src = a.work / f"depth_{z}.h5"
                if not src.exists():
                    import h5py
                    import numpy as np
                    with h5py.File(base) as f:
                        ref = f["reference"][()]
                    vol = a.work / f"depth_{z}.npy"
                    np.save(vol, np.concatenate([ref] * (z // ref.shape[0]))[:z])
                    subprocess.run([sys.executable, "-m", "tomodiff", "simulate", "--volume", str(vol), "--views", "64",
                                    "--out", str(src), "--threads", "1"], check=True, env=env(),
                                   stdout=subprocess.DEVNULL)
                    vol.unlink()
                job = [str(src), "--method", "fbp", "--out", str(a.work / f"depth{z}.h5")]
                if z <= a.in_memory_max * 4:
                    measure(results, f"depth/fbp/{z}/in-memory", in_memory, a.work, job)
                    save()
                measure(results, f"depth/fbp/{z}/stream1", streamed, 1, job)
                save()
        if "diffusion" in parts:
            for size in map(int, a.diffusion_sizes.split(",")):
                src = simulate(a.work, size, 16)
                job = [str(src), "--method", "pigdm", "--prior", "slice-64", "--steps", "2", "--samples", "1",
                       "--out", str(a.work / f"pigdm{size}.h5")]
                if size <= 128:
                    measure(results, f"memory/pigdm/{size}/in-memory", in_memory, a.work, job)
                    save()
                measure(results, f"memory/pigdm/{size}/stream1", streamed, 1, job)
                save()
    finally:
        save()
    write_md(a, results)
    return 0


def write_md(a, results: dict) -> None:
    lines = ["# Slab-parallel scaling (issue 14)", "",
             f"Made by `python benchmarks/scaling.py` on {platform.node()} ({os.cpu_count()} cores, "
             f"{platform.processor() or platform.machine()}), torch threads 1 per process, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Every row is a fresh process; `load` is the "
             "1-minute load average before → after the row (2 cores: above 2 means other work shared them).", ""]
    pairs = [(results[f"speed/1/{i}"], results[f"speed/2/{i}"]) for i in range(a.repeats)
             if f"speed/1/{i}" in results and f"speed/2/{i}" in results]
    if pairs:
        lines += ["## 1 against 2 ranks: ΠGDM, slice-64, 64³, 16 views, "
                  f"{a.speed_steps} steps, slabs of 19 (overlap 4: four slabs, two per pass)", "",
                  "Reconstruction: from the process group's start to the written file (rank 0's clock); command: "
                  "the whole `torchrun` command, start-up of Python and torch in every process included.", "",
                  "| pair | 1 rank: reconstruction / command s | 2 ranks: reconstruction / command s | load | "
                  "speed-up (reconstruction) | speed-up (command) |", "|---|---|---|---|---|---|"]
        ups, cmd = [], []
        for i, (one, two) in enumerate(pairs):
            ups.append(one["seconds"] / two["seconds"])
            cmd.append(one["wall_s"] / two["wall_s"])
            lines.append(f"| {i + 1} | {one['seconds']:.1f} / {one['wall_s']:.1f} | {two['seconds']:.1f} / "
                         f"{two['wall_s']:.1f} | {one['load'][0]:.1f}–{two['load'][1]:.1f} | {ups[-1]:.2f}× | "
                         f"{cmd[-1]:.2f}× |")
        med = sorted(ups)[len(ups) // 2]
        lines += ["", f"Median speed-up of the reconstruction: **{med:.2f}×** (target ≥ 1.7×); of the whole "
                      f"command "
                      f"{sorted(cmd)[len(cmd) // 2]:.2f}×."]
        cpu = [(one["cpu_s"][0], max(two["cpu_s"])) for one, two in pairs
               if None not in one.get("cpu_s", [None]) + two.get("cpu_s", [None])]
        if cpu:
            lines += [f"CPU seconds of the reconstruction (1 rank → busiest of 2 ranks): "
                      + ", ".join(f"{c1:.1f} → {c2:.1f} ({c1 / c2:.2f}×)" for c1, c2 in cpu)
                      + ": the speed-up the split allows when each rank has a core to itself."]
        lines.append("")
    rows = sorted({k.split("/")[1] + "/" + k.split("/")[2] for k in results if k.startswith("memory/")},
                  key=lambda s: (s.split("/")[0], int(s.split("/")[1])))
    if rows:
        lines += ["## Peak RSS against volume size (MiB, whole process)", "",
                  "| method | volume | in-memory path | streaming, 1 rank | streaming, 2 ranks (per rank) | "
                  "2 ranks / in-memory | seconds (in-memory / 1 rank / 2 ranks) | load |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in rows:
            method, size = row.split("/")
            mem = results.get(f"memory/{row}/in-memory")
            s1, s2 = results.get(f"memory/{row}/stream1"), results.get(f"memory/{row}/stream2")

            def cell(r, f=lambda r: ", ".join(f"{v:.0f}" for v in r["peak_rss_mb"])):
                return f(r) if r else "—"
            ratio = (f"{max(s2['peak_rss_mb']) / mem['peak_rss_mb'][0]:.2f}" if s2 and mem else "—")
            secs = " / ".join(cell(r, lambda r: f"{r['seconds']:.1f}") for r in (mem, s1, s2))
            load = max((r["load"][1] for r in (mem, s1, s2) if r), default=0)
            lines.append(f"| {method} | {size}³ | {cell(mem)} | {cell(s1)} | {cell(s2)} | {ratio} | {secs} | "
                         f"≤ {load:.1f} |")
        lines.append("")
    depth = sorted({int(k.split("/")[2]) for k in results if k.startswith("depth/")})
    if depth:
        lines += ["## Peak RSS against depth at fixed 128² slices (FBP, 64 views, slabs of 32; MiB)", "",
                  "| volume | in-memory path | streaming, 1 rank | seconds (in-memory / streaming) |",
                  "|---|---|---|---|"]
        for z in depth:
            mem, s1 = results.get(f"depth/fbp/{z}/in-memory"), results.get(f"depth/fbp/{z}/stream1")
            lines.append(f"| {z}×128² | {mem['peak_rss_mb'][0]:.0f} |" if mem else f"| {z}×128² | — |")
            lines[-1] += (f" {s1['peak_rss_mb'][0]:.0f} |" if s1 else " — |")
            lines[-1] += f" {mem['seconds']:.1f} / " if mem else " — / "
            lines[-1] += f"{s1['seconds']:.1f} |" if s1 else "— |"
        lines.append("")
    a.md.parent.mkdir(parents=True, exist_ok=True)
    a.md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
