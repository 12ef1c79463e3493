"""Bad input to every command: one error line, exit status 2, no traceback, nothing written, and no
input file changed (sha256 of every file before and after each case).

Each case runs ``tomodiff.cli.main`` in-process; a few also run the console script in a fresh
process to see exactly what a user sees. Every case must fail before any real work: none of them
reconstructs, trains or renders anything.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tomodiff.cli import main

# (id, argv with {d} = the fixture directory, expected text in the error line)
CASES = [
    # ---------------------------------------------------------------- simulate
    ("sim-unknown-phantom", "simulate --phantom nope --out {d}/new.h5", "unknown volume 'nope'"),
    ("sim-bad-phantom-seed", "simulate --phantom foam:x:16 --out {d}/new.h5", "FAMILY:SEED"),
    ("sim-missing-volume", "simulate --volume {d}/missing.npy --out {d}/new.h5", "no such file"),
    ("sim-2d-volume", "simulate --volume {d}/flat.npy --out {d}/new.h5", "expected a 3D"),
    ("sim-out-is-input", "simulate --volume {d}/sim.h5 --out {d}/sim.h5", "is also an input"),
    ("sim-out-is-dir", "simulate --phantom foam:1:16 --out {d}", "is a directory"),
    ("sim-out-parent-is-file", "simulate --phantom foam:1:16 --out {d}/sim.h5/new.h5", "not a directory"),
    ("sim-zero-views", "simulate --phantom foam:1:16 --views 0 --out {d}/new.h5", "argument --views"),
    ("sim-negative-noise", "simulate --phantom foam:1:16 --noise -1 --out {d}/new.h5", "argument --noise"),
    ("sim-zero-voxel", "simulate --phantom foam:1:16 --voxel-size 0 --out {d}/new.h5", "argument --voxel-size"),
    ("sim-no-source", "simulate --out {d}/new.h5", "one of the arguments --phantom --volume is required"),
    ("sim-bad-device", "simulate --phantom foam:1:16 --device nonsense --out {d}/new.h5", "not a torch device"),
    # ---------------------------------------------------------------- reconstruct: files
    ("rec-missing-file", "reconstruct {d}/missing.h5 --method fbp --out {d}/new.h5", "no such file"),
    ("rec-not-hdf5", "reconstruct {d}/text.h5 --method fbp --out {d}/new.h5", "not an HDF5 file"),
    ("rec-truncated", "reconstruct {d}/trunc.h5 --method fbp --out {d}/new.h5", "truncated"),
    ("rec-other-hdf5", "reconstruct {d}/other.h5 --method fbp --out {d}/new.h5", "neither a tomodiff project"),
    ("rec-out-is-input", "reconstruct {d}/sim.h5 --method fbp --out {d}/sim.h5", "is also an input"),
    ("rec-out-links-to-input", "reconstruct {d}/sim.h5 --method fbp --out {d}/link.h5", "is also an input"),
    ("rec-out-is-scan", "reconstruct {d}/scan.h5 --method fbp --out {d}/scan.h5", "is also an input"),
    ("rec-out-is-dir", "reconstruct {d}/sim.h5 --method fbp --out {d}", "is a directory"),
    ("rec-checkpoint-is-input", "reconstruct {d}/sim.h5 --method pigdm --prior slice-64 --checkpoint {d}/sim.h5 "
                                "--out {d}/new.h5", "is also an input"),
    # ---------------------------------------------------------------- reconstruct: options
    ("rec-unknown-method", "reconstruct {d}/sim.h5 --method nope --out {d}/new.h5", "invalid choice"),
    ("rec-lam-with-sirt", "reconstruct {d}/sim.h5 --method sirt --lam 0.1 --out {d}/new.h5",
     "--lam does not apply to --method sirt"),
    ("rec-iters-with-fbp", "reconstruct {d}/sim.h5 --method fbp --iters 3 --out {d}/new.h5",
     "--iters does not apply to --method fbp"),
    ("rec-steps-with-tv", "reconstruct {d}/sim.h5 --method tv --steps 5 --out {d}/new.h5", "--steps does not apply"),
    ("rec-sigma-with-sirt", "reconstruct {d}/sim.h5 --method sirt --sigma-y 0.1 --out {d}/new.h5",
     "--sigma-y does not apply to --method sirt"),
    ("rec-sigma-with-streamed-tv", "reconstruct {d}/sim.h5 --method tv --stream --sigma-y 0.1 --out {d}/new.h5",
     "--sigma-y does not apply to --method tv on the streaming path"),
    ("rec-negative-sigma", "reconstruct {d}/sim.h5 --method sirt --sigma-y -1 --out {d}/new.h5", "argument --sigma-y"),
    ("rec-seed-with-fbp", "reconstruct {d}/sim.h5 --method fbp --seed 3 --out {d}/new.h5", "--seed does not apply"),
    ("rec-checkpoint-with-fbp", "reconstruct {d}/sim.h5 --method fbp --checkpoint {d}/c.pt --out {d}/new.h5",
     "--checkpoint does not apply"),
    ("rec-pigdm-zero-steps", "reconstruct {d}/sim.h5 --method pigdm --steps 0 --out {d}/new.h5", "argument --steps"),
    ("rec-unknown-prior", "reconstruct {d}/sim.h5 --method pigdm --prior nope --out {d}/new.h5",
     "no shipped prior named 'nope'"),
    ("rec-thin-zero", "reconstruct {d}/sim.h5 --method fbp --thin 0 --out {d}/new.h5", "argument --thin"),
    ("rec-thin-negative", "reconstruct {d}/sim.h5 --method fbp --thin -2 --out {d}/new.h5", "argument --thin"),
    ("rec-thin-too-large", "reconstruct {d}/sim.h5 --method fbp --thin 6 --out {d}/new.h5", "keeps 1 of the 6"),
    ("rec-rows-on-project", "reconstruct {d}/sim.h5 --method fbp --rows 0:1 --out {d}/new.h5",
     "--rows does not apply"),
    ("rec-offset-on-project", "reconstruct {d}/sim.h5 --method fbp --center-offset 2 --out {d}/new.h5",
     "--center-offset does not apply"),
    ("rec-tiff-option-on-h5", "reconstruct {d}/sim.h5 --method fbp --flats {d}/flats --out {d}/new.h5",
     "--flats does not apply"),
    ("rec-rows-dash", "reconstruct {d}/scan.h5 --method fbp --rows 1-2 --out {d}/new.h5", "START:STOP"),
    ("rec-rows-outside", "reconstruct {d}/scan.h5 --method fbp --rows 5:9 --out {d}/new.h5",
     "selects no rows: the scan has 2 detector rows"),
    ("rec-voxel-without-pixel", "reconstruct {d}/scan.h5 --method fbp --voxel-size 2 --out {d}/new.h5",
     "--voxel-size needs --pixel-size"),
    ("rec-zero-pixel", "reconstruct {d}/scan.h5 --method fbp --pixel-size 0 --out {d}/new.h5", "argument --pixel-size"),
    ("rec-negative-scale", "reconstruct {d}/sim.h5 --method fbp --scale -1 --out {d}/new.h5", "argument --scale"),
    ("rec-zero-samples", "reconstruct {d}/sim.h5 --method pigdm --prior slice-64 --samples 0 --out {d}/new.h5",
     "argument --samples"),
    # ---------------------------------------------------------------- benchmark
    ("bench-unknown-method", "benchmark --methods nope --set foam:1:16 --out {d}/bench", "--methods: unknown"),
    ("bench-zero-views", "benchmark --methods fbp --views 0,4 --set foam:1:16 --out {d}/bench", "integers >= 1"),
    ("bench-text-views", "benchmark --methods fbp --views a --set foam:1:16 --out {d}/bench",
     "comma-separated integers"),
    ("bench-unknown-volume", "benchmark --methods fbp --set nope --out {d}/bench", "unknown volume 'nope'"),
    ("bench-steps-no-diffusion", "benchmark --methods fbp --steps 5 --set foam:1:16 --out {d}/bench",
     "--steps does not apply"),
    ("bench-tvlam-no-tv", "benchmark --methods fbp --tv-lam 4:0.1 --set foam:1:16 --out {d}/bench",
     "--tv-lam does not apply"),
    ("bench-bad-tvlam", "benchmark --methods tv --tv-lam 4 --set foam:1:16 --out {d}/bench", "VIEWS:LAM"),
    ("bench-out-is-file", "benchmark --methods fbp --set foam:1:16 --out {d}/sim.h5", "not a directory"),
    ("bench-nothing", "benchmark --methods fbp --set none --out {d}/bench", "nothing to benchmark"),
    # ---------------------------------------------------------------- info
    ("info-missing", "info {d}/missing.h5", "no such file"),
    ("info-not-hdf5", "info {d}/text.h5", "not an HDF5 file"),
    ("info-truncated", "info {d}/trunc.h5", "truncated"),
    ("info-directory", "info {d}", "is a directory"),
    # ---------------------------------------------------------------- view
    ("view-missing", "view {d}/missing.h5", "no such file"),
    ("view-not-hdf5", "view {d}/sim.h5 {d}/text.h5", "not an HDF5 file"),
    ("view-other-hdf5", "view {d}/other.h5", "neither a tomodiff project"),
    # ---------------------------------------------------------------- train-prior
    ("train-bad-channels", "train-prior {d}/run --channels a,b", "--channels"),
    ("train-zero-batch", "train-prior {d}/run --batch 0", "--batch must be >= 1"),
    ("train-negative-lr", "train-prior {d}/run --lr -1", "--lr must be"),
    ("train-zero-steps", "train-prior {d}/run --steps 0", "--steps must be >= 1"),
    ("train-missing-data", "train-prior {d}/run --data {d}/missing.npy", "no such file"),
    ("train-export-no-run", "train-prior {d}/run --export {d}/w.pt", "needs a training run"),
    ("train-outdir-is-file", "train-prior {d}/sim.h5", "not a directory"),
    ("train-bad-noise", "train-prior {d}/run --noise nope", "invalid choice"),
    # ---------------------------------------------------------------- demo
    ("demo-unknown-phantom", "demo --phantom nope --methods fbp --out-dir {d}/demo", "unknown volume 'nope'"),
    ("demo-unknown-method", "demo --methods nope --out-dir {d}/demo", "--methods: unknown"),
    ("demo-samples-no-diffusion", "demo --methods fbp --samples 3 --out-dir {d}/demo", "--samples does not apply"),
    ("demo-zero-views", "demo --methods fbp --views 0 --out-dir {d}/demo", "argument --views"),
    ("demo-outdir-is-file", "demo --methods fbp --phantom foam:1:16 --out-dir {d}/sim.h5", "not a directory"),
    ("demo-unknown-prior", "demo --methods pigdm --prior nope --phantom foam:1:16 --out-dir {d}/demo",
     "no shipped prior"),
]


def _tree(d: Path) -> dict[str, str]:
    """Every path under ``d`` (files with their sha256, directories and links as such)."""
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_symlink():
            out[rel] = "link->" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(d / "sim.h5")]) == 0
    raw = d / "sim.h5"
    (d / "trunc.h5").write_bytes(raw.read_bytes()[:3000])
    (d / "text.h5").write_text("not HDF5 at all\n")
    (d / "link.h5").symlink_to(raw)
    with h5py.File(d / "other.h5", "w") as f:
        f["something"] = np.zeros(3)
    rng = np.random.default_rng(0)
    with h5py.File(d / "scan.h5", "w") as f:  # a tiny DXchange scan: 8 angles, 2 rows, 16 columns
        f["exchange/data"] = rng.uniform(500, 900, (8, 2, 16)).astype(np.uint16)
        f["exchange/data_white"] = np.full((2, 2, 16), 1000, np.uint16)
        f["exchange/data_dark"] = np.full((2, 2, 16), 10, np.uint16)
        f["exchange/theta"] = np.linspace(0, 180, 8, endpoint=False)
    np.save(d / "flat.npy", np.ones((4, 4), np.float32))
    (d / "flats").mkdir()
    return d


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(inputs, capsys, case):
    _, argv, expected = case
    argv = argv.format(d=inputs).split()
    before = _tree(inputs)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert "Traceback" not in err + out
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tomodiff {argv[0]}: error: "), lines[0]
    assert "unexpected" not in lines[0], lines[0]
    assert expected in lines[0], lines[0]
    assert _tree(inputs) == before  # inputs unchanged, no output (nor temporary file, nor directory) left


def test_enough_distinct_cases_over_every_command():
    commands = {c[1].split()[0] for c in CASES}
    assert commands >= {"simulate", "reconstruct", "benchmark", "info", "view", "train-prior", "demo"}
    assert len({c[1] for c in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("argv", ["info {d}/trunc.h5", "reconstruct {d}/sim.h5 --method sirt --lam 1 --out {d}/o.h5",
                                  "reconstruct {d}/scan.h5 --method fbp --rows 1-2 --out {d}/o.h5"])
def test_console_script_shows_no_traceback(inputs, argv):
    before = _tree(inputs)
    run = subprocess.run([sys.executable, "-m", "tomodiff", *argv.format(d=inputs).split()], capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert _tree(inputs) == before


def test_benchmark_without_the_real_scan_stops_before_any_work(inputs, capsys, monkeypatch):
    monkeypatch.setenv("TOMODIFF_SHARED_DATA", str(inputs / "flats"))  # an empty folder
    before = _tree(inputs)
    rc = main(f"benchmark --methods fbp --set none --real diamond_i13 --out {inputs}/bench".split())
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Diamond I13 scan 24737 is needed" in err
    assert _tree(inputs) == before
