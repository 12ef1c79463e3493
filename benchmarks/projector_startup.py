"""Start-up cost of a projector in a fresh process: today's code vs the on-disk matrix cache, one table.

Issue 22 item 4: every ``tomodiff reconstruct`` call rebuilt the cached Joseph matrix (tens of
seconds and GBs for one 256² fan slice) while FBP itself takes well under a second. This runs, in
one session and each in a fresh process:

  today        ``tomodiff reconstruct FILE --method M`` with the code of the last commit (``git
               archive HEAD``, unpacked in a temporary folder: exactly what users run today);
  cache off    this working tree with ``TOMODIFF_CACHE=off``: the peer, rebuild per call (with this
               tree's blockwise build, so the build's own gain shows apart from the cache's);
  cold         the same command with this working tree, the matrix cache empty (first call: the
               matrix is built, then stored in the cache);
  warm         the same command again (second call: the matrix is read back from the cache);
  matrix_free, astra
               the same solve in Python (``reconstruct(Projector(g, backend=...), y, method=M)``), for
               the question "would auto be better off without the matrix for a short job?" (ASTRA's
               CPU fan projector is ``line_fanflat``, not Joseph: a different discretisation).

Columns: ``wall s`` is the whole process (start to exit: Python, imports, reading, solve, writing);
``solve s`` the reconstruction's own time (``seconds`` of ``--json``, projector set-up included);
``peak MiB`` the process's peak resident set (``wait4``'s ``ru_maxrss``; pages of a memory-mapped
cache file that were read count in it); ``vs off`` = wall s / the cache-off peer's wall s and ``vs
today`` = wall s / today's wall s (same case and method, same run).

Cases: ``fan256`` — a 2D fan-beam slice of 256² (voxel 0.2), 121 views over 60° (0.5° steps), 560
detector columns, source 410.66 and detector 143.08 from the axis (the shape of a measured
limited-angle fan-beam scan); ``tooth`` — the APS tooth scan (2 rows × 640 columns, 181 views,
``$TOMODIFF_SHARED_DATA/aps_tooth/tooth.h5`` or ../shared/data; ``--rows 0:2 --center-offset
-23.5``), SIRT (``--tooth-iters``, default 100), for the issue's peak-memory target of 1 GB. Its matrix
(bounded at 2.4 GB) exceeds the 2 GiB budget, so ``auto`` never builds it: the last commit's ``auto``
picks the matrix-free Joseph projector (the ``today`` row), this tree's picks ASTRA's CPU ``linear``
(Joseph) projector per slice (the ``auto`` row); nothing is cached either way, so a second call costs
what the first did and only these two rows run.
Usage:  OMP_NUM_THREADS=1 python -m benchmarks.projector_startup [--methods fbp,sirt] [--iters 100]
        [--out benchmarks/results/projector_startup.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOMODIFF_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOOTH = SHARED / "aps_tooth" / "tooth.h5"
CLI = "import sys; from tomodiff.cli import main; sys.exit(main())"


def fan_geometry():
    import numpy as np

    from tomodiff.ct import fan_beam
    return fan_beam((256, 256), np.radians(np.arange(121) * 0.5), det_shape=(560,), source_distance=410.66,
                    detector_distance=143.08, voxel_size=0.2, det_spacing=0.27)


def make_fan_file(path: Path) -> None:
    import torch

    from tomodiff.ct import Projector
    from tomodiff.io import ProjectData, write_project
    from tomodiff.phantoms import generate
    g = fan_geometry()
    vol = generate("shepp_logan", (1, 256, 256), 0)[0]
    y = Projector(g, backend="matrix_free")(vol[None, None].double()).float()
    y = y + 0.01 * float(y.max()) * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    write_project(path, ProjectData(sinogram=y[0, 0].numpy(), geometry=g.to_dict(), reference=vol.numpy(),
                                    provenance={"sigma_y": 0.01 * float(y.max()), "mu_max": float(vol.max())}))


def run_child(cmd, cwd, env):
    """Run ``cmd``: wall time, the peak RSS of that one process and its ``--json`` summary. The command runs
    under a tiny wrapper that reports ``RUSAGE_CHILDREN``'s ``ru_maxrss`` (a fresh wrapper has one child)."""
    wrapper = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
               "p = subprocess.run(sys.argv[1:], capture_output=True); "
               "sys.stdout.buffer.write(p.stdout); sys.stderr.buffer.write(p.stderr); "
               "print(json.dumps({'__peak': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               "'__wall': time.perf_counter() - t}), file=sys.stderr); sys.exit(p.returncode)")
    p = subprocess.run([sys.executable, "-c", wrapper, *cmd], cwd=cwd, env=env, capture_output=True)
    err_lines = p.stderr.decode(errors="replace").strip().splitlines()
    meta = json.loads(err_lines[-1])
    res = {"wall": meta["__wall"], "peak_mib": meta["__peak"] / 1024, "rc": p.returncode}
    if p.returncode != 0:
        res["error"] = (err_lines[-2:-1] or ["?"])[0][:200]
        return res
    text = p.stdout.decode()
    try:
        res["summary"] = json.loads(text[text.index("{"):])
    except ValueError:
        res["summary"] = {}
    return res


def python_solve(backend: str, method: str, file: Path, iters: int) -> str:
    return (f"import json, time, torch; from tomodiff.io.problem import load_problem; "
            f"from tomodiff.ct import Projector; from tomodiff.recon import reconstruct; "
            f"p = load_problem({str(file)!r}); t = time.perf_counter(); A = Projector(p.geometry, backend={backend!r}); "
            f"kw = {{'n_iter': {iters}}} if {method!r} != 'fbp' else {{}}; "
            f"r = reconstruct(A, p.y, method={method!r}, scale=p.mu_max, progress=False, **kw); "
            f"print(json.dumps({{'seconds': time.perf_counter() - t, 'backend': A.backend}}))")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="fbp,sirt")
    ap.add_argument("--iters", type=int, default=100, help="SIRT iterations on the fan slice (default 100)")
    ap.add_argument("--tooth-iters", type=int, default=100, help="SIRT iterations on the tooth (default 100)")
    ap.add_argument("--no-tooth", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "projector_startup.md")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    work = Path(tempfile.mkdtemp(prefix="tomodiff-startup-"))
    rows = []
    try:
        old = work / "today"
        old.mkdir()
        archive = subprocess.run(["git", "archive", "HEAD", "tomodiff", ":(exclude)tomodiff/priors/weights"],
                                 cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        fan = work / "fan256.h5"
        make_fan_file(fan)
        cache = work / "cache"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOMODIFF_CACHE": str(cache)}
        env.pop("PYTHONPATH", None)
        py = sys.executable

        def cli(method, out, extra=()):
            iters = ["--iters", str(args.iters)] if method == "sirt" else []
            return [py, "-c", CLI, "reconstruct", str(fan), "--method", method, *iters, "--threads", "1", "--json",
                    "--out", str(work / out), *extra]

        for method in methods:
            shutil.rmtree(cache, ignore_errors=True)
            today = run_child(cli(method, f"today_{method}.h5"), old, env)
            rows.append(("fan256", method, f"today ({commit})", today))
            rows.append(("fan256", method, "cache off: rebuild per call (peer)",
                         run_child(cli(method, f"off_{method}.h5"), ROOT, {**env, "TOMODIFF_CACHE": "off"})))
            shutil.rmtree(cache, ignore_errors=True)  # today's code has the disk cache too: empty it again
            rows.append(("fan256", method, "cold: first call, cache empty", run_child(cli(method, f"cold_{method}.h5"),
                                                                                      ROOT, env)))
            rows.append(("fan256", method, "warm: second call, cache filled",
                         run_child(cli(method, f"warm_{method}.h5"), ROOT, env)))
            for backend in ("matrix_free", "astra"):
                rows.append(("fan256", method, f"{backend} (Python, no matrix)",
                             run_child([py, "-c", python_solve(backend, method, fan, args.iters)], ROOT, env)))
        if not args.no_tooth and TOOTH.exists():
            tooth_cmd = [py, "-c", CLI, "reconstruct", str(TOOTH), "--method", "sirt", "--iters",
                         str(args.tooth_iters), "--rows", "0:2", "--center-offset", "-23.5", "--threads", "1",
                         "--json", "--out", str(work / "tooth.h5")]
            it = f"sirt ({args.tooth_iters} it)"
            rows.append(("tooth 2×640²", it, f"today ({commit}): auto = matrix_free", run_child(tooth_cmd, old, env)))
            rows.append(("tooth 2×640²", it, "auto = astra linear (this tree)", run_child(tooth_cmd, ROOT, env)))
        cache_files = sorted((cache / "matrices").glob("*.pt")) if (cache / "matrices").is_dir() else []
        cache_mib = sum(p.stat().st_size for p in cache_files) / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    lines = ["# Projector start-up: a second CLI call with the on-disk matrix cache", "",
             f"Command: `OMP_NUM_THREADS=1 python -m benchmarks.projector_startup --methods {args.methods} --iters "
             f"{args.iters} --tooth-iters {args.tooth_iters}`; one torch thread; load average {load[0]:.1f} at the "
             f"end (other jobs on this 2-core machine: compare ratios, measured in the same run). Each row is a "
             f"fresh process. `today` runs the code of commit {commit}. Cache file for fan256: {cache_mib:.0f} MiB.", "",
             "| case | method | run | wall s | solve s | peak MiB | vs off | vs today |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    base, peer = {}, {}
    for case, method, run, r in rows:
        if r["rc"] == 0 and run.startswith("today"):
            base[(case, method)] = r["wall"]
        if r["rc"] == 0 and run.startswith("cache off"):
            peer[(case, method)] = r["wall"]
    for case, method, run, r in rows:
        if r["rc"] != 0:
            lines.append(f"| {case} | {method} | {run} | failed: {r.get('error')} | | | | |")
            continue
        s = r.get("summary", {})
        solve = s.get("seconds")
        solve_text = "" if solve is None else f"{solve:.2f}"
        ratios = [f"{r['wall'] / ref[(case, method)]:.3f}×" if ref.get((case, method)) else "" for ref in (peer, base)]
        lines.append(f"| {case} | {method} | {run} | {r['wall']:.2f} | {solve_text} | {r['peak_mib']:.0f} | "
                     f"{' | '.join(ratios)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
