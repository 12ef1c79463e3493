"""Adversarial input on the newer paths (streaming, torchrun, TIFF stacks, train-prior): every command
checks inputs, options and outputs before any work; bad input is one line naming the file or option,
exit 2; an earlier output is never changed; nothing half-written is left (temporary files,
checkpoints, lock files, run directories). Also a full disk (simulated in-process, and a real
file-size limit in a subprocess), a second writer on the same output, and a rank's error under torchrun.

Inputs are tiny (8³ volumes, 4 views, 2-row raw scans) and the methods classical, so that the whole
file runs in about a minute on a busy 2-core machine; most cases call ``tomodiff.cli.main`` in-process.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import tomodiff
from tomodiff.cli import main
from tomodiff.io import ProjectData, write_project
from tomodiff.io.lock import output_lock
from tomodiff.io.tiff_stack import write_tiff_stack

REC = "reconstruct {{d}}/{f} --method fbp --out {{d}}/old.h5"
STREAM = "reconstruct {{d}}/{f} --method fbp --stream --out {{d}}/old.h5"
PIGDM = "reconstruct {d}/sim.h5 --method pigdm --prior slice-64 --checkpoint {d}/ck --out {d}/new.h5"
TORCHRUN = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}  # what torchrun sets: the streaming path

# (id, argv with {d} = the fixture directory, expected text in the one error line, environment, output to lock)
CASES = [
    # ---------------------------------------------------------------- impossible flats and darks, in memory
    ("mem-darks-brighter", REC.format(f="swapped.h5"), "swapped.h5 (DXchange): flat − dark is non-positive at 16 of 16",
     None, None),
    ("mem-zero-flats", REC.format(f="zeroflat.h5"), "zeroflat.h5 (DXchange): the flat (open-beam) frames are all zero",
     None, None),
    ("mem-flats-too-wide", REC.format(f="wideflat.h5"), "wideflat.h5: flat frames have shape (2, 9)", None, None),
    ("mem-dead-row", REC.format(f="deadrow.h5"), "deadrow.h5 (DXchange): flat − dark is non-positive at 8 of 16",
     None, None),
    # ---------------------------------------------------------------- damaged project files, in memory
    ("mem-geometry-not-json", REC.format(f="badjson.h5"), "badjson.h5: the geometry of '/sinogram' is not valid JSON",
     None, None),
    ("mem-provenance-not-json", REC.format(f="badprov.h5"), "badprov.h5: '/provenance' is not valid JSON", None, None),
    ("mem-geometry-of-nothing", REC.format(f="badgeom.h5"), "badgeom.h5: the stored geometry is not valid", None, None),
    ("mem-geometry-a-list", REC.format(f="listgeom.h5"), "listgeom.h5: the stored geometry is not a JSON object",
     None, None),
    ("mem-complex-sinogram", REC.format(f="complex.h5"), "complex.h5: '/sinogram' has dtype complex64", None, None),
    ("mem-1d-sinogram", REC.format(f="oned.h5"), "oned.h5: '/sinogram' has shape (4,), its geometry", None, None),
    ("mem-sinogram-shape", REC.format(f="narrow.h5"), "narrow.h5: '/sinogram' has shape (4, 8, 11)", None, None),
    ("mem-nan-sinogram", REC.format(f="nan.h5"), "nan.h5: '/sinogram' contains 1 NaN/Inf", None, None),
    # ---------------------------------------------------------------- the same on the streaming path
    ("stream-darks-brighter", STREAM.format(f="swapped.h5"), "swapped.h5 (dxchange): flat − dark is non-positive at 16",
     None, None),
    ("stream-zero-flats", STREAM.format(f="zeroflat.h5"), "zeroflat.h5 (dxchange): the flat (open-beam) frames are all",
     None, None),
    ("stream-flats-too-wide", STREAM.format(f="wideflat.h5"), "wideflat.h5: 'exchange/data_white' has shape (2, 2, 9)",
     None, None),
    ("stream-darks-too-wide", STREAM.format(f="widedark.h5"), "widedark.h5: 'exchange/data_dark' has shape (2, 2, 9)",
     None, None),
    ("stream-geometry-not-json", STREAM.format(f="badjson.h5"), "badjson.h5: the geometry of '/sinogram' is not valid",
     None, None),
    ("stream-provenance-not-json", STREAM.format(f="badprov.h5"), "badprov.h5: '/provenance' is not valid", None, None),
    ("stream-geometry-of-nothing", STREAM.format(f="badgeom.h5"), "badgeom.h5: the stored geometry is not valid",
     None, None),
    ("stream-complex-sinogram", STREAM.format(f="complex.h5"), "complex.h5: '/sinogram' has dtype complex64", None, None),
    ("stream-1d-sinogram", STREAM.format(f="oned.h5"), "oned.h5: '/sinogram' has shape (4,)", None, None),
    # found while reading the first slab: the checkpoint made for the run goes again
    ("stream-nan-sinogram", STREAM.format(f="nan.h5"), "nan.h5: '/sinogram' rows 0:8 contain NaN/Inf", None, None),
    ("stream-not-hdf5", STREAM.format(f="text.h5"), "text.h5: not an HDF5 file", None, None),
    ("stream-missing-file", STREAM.format(f="missing.h5"), "missing.h5: no such file", None, None),
    # ---------------------------------------------------------------- streaming: options and outputs
    ("stream-offset-on-project", STREAM.format(f="sim.h5") + " --center-offset 2", "--center-offset does not apply to",
     None, None),
    ("stream-rows-on-project", STREAM.format(f="sim.h5") + " --rows 0:4", "--rows does not apply to", None, None),
    ("stream-flats-option", STREAM.format(f="scan.h5") + " --flats {d}/tiff/flat", "--flats: not available on the",
     None, None),
    ("stream-guard", STREAM.format(f="sim.h5") + " --guard", "--guard: not available", None, None),
    ("stream-tiff-stack", STREAM.format(f="tiff"), "tiff: TIFF stacks are not available on the streaming", None, None),
    ("stream-negative-overlap", STREAM.format(f="sim.h5") + " --overlap -1", "argument --overlap", None, None),
    ("stream-bad-device", STREAM.format(f="sim.h5") + " --device nonsense", "not a torch device", None, None),
    ("stream-out-is-dir", STREAM.format(f="sim.h5").replace("old.h5", "adir"), "--out {d}/adir is a directory",
     None, None),
    ("stream-out-is-input", STREAM.format(f="sim.h5").replace("old.h5", "sim.h5"), "is also an input", None, None),
    ("stream-checkpoint-is-input", STREAM.format(f="sim.h5") + " --checkpoint {d}/sim.h5",
     "--checkpoint {d}/sim.h5 is also an input", None, None),
    ("stream-checkpoint-a-file", STREAM.format(f="sim.h5") + " --checkpoint {d}/text.h5",
     "--checkpoint {d}/text.h5 exists and is not a directory", None, None),
    ("stream-default-checkpoint-a-file", STREAM.format(f="sim.h5").replace("old.h5", "blocked.h5"),
     "checkpoint {d}/.blocked.h5.slabs exists and is not a directory", None, None),
    ("stream-lam-with-sirt", STREAM.format(f="sim.h5").replace("fbp", "sirt") + " --lam 0.1", "--lam does not apply",
     None, None),
    ("stream-keep-samples-fbp", STREAM.format(f="sim.h5") + " --keep-samples", "--keep-samples does not apply",
     None, None),
    # ---------------------------------------------------------------- under torchrun (its environment, one rank)
    ("torchrun-darks-brighter", REC.format(f="swapped.h5"), "non-positive at 16 of 16", TORCHRUN, None),
    ("torchrun-out-is-dir", REC.format(f="sim.h5").replace("old.h5", "adir"), "is a directory", TORCHRUN, None),
    ("torchrun-offset-on-project", REC.format(f="sim.h5") + " --center-offset 1", "--center-offset does not apply",
     TORCHRUN, None),
    ("torchrun-tiff-stack", REC.format(f="tiff"), "TIFF stacks are not available", TORCHRUN, None),
    ("torchrun-checkpoint-a-file", REC.format(f="sim.h5") + " --checkpoint {d}/text.h5", "is not a directory",
     TORCHRUN, None),
    ("torchrun-locked", REC.format(f="sim.h5"), "another tomodiff run is writing {d}/old.h5 (pid {pid}", TORCHRUN,
     "{d}/old.h5"),
    # ---------------------------------------------------------------- TIFF stacks
    ("tiff-darks-brighter", REC.format(f="tiff_swapped"), "tiff_swapped/proj (TIFF stack): flat − dark is non-positive",
     None, None),
    ("tiff-zero-flats", REC.format(f="tiff_zeroflat"), "tiff_zeroflat/proj (TIFF stack): the flat (open-beam) frames",
     None, None),
    ("tiff-flats-too-wide", REC.format(f="tiff_wide"), "flat image shape (2, 9) differs", None, None),
    ("tiff-angles-not-utf8", REC.format(f="tiff/proj") + " --angles {d}/latin1.txt", "latin1.txt: not a UTF-8 text",
     None, None),
    ("tiff-angles-not-numbers", REC.format(f="tiff/proj") + " --angles {d}/words.txt", "words.txt:2: not a number",
     None, None),
    ("tiff-angles-empty", REC.format(f="tiff/proj") + " --angles {d}/empty.txt", "empty.txt: holds no angles",
     None, None),
    ("tiff-angles-file-missing", REC.format(f="tiff/proj") + " --angles {d}/none.txt", "none.txt: no such angles file",
     None, None),
    ("tiff-count-huge", REC.format(f="tiff/proj") + " --angles 0:180:10000000000", "COUNT must be from 1 to 1,000,000",
     None, None),
    ("tiff-count-zero", REC.format(f="tiff/proj") + " --angles 0:180:0", "COUNT must be from 1", None, None),
    ("tiff-start-nan", REC.format(f="tiff/proj") + " --angles nan:180:4", "START and STOP must be finite", None, None),
    ("tiff-count-mismatch", REC.format(f="tiff/proj") + " --angles 0:135:5", "4 projection images but 5 angles",
     None, None),
    ("tiff-no-angles", REC.format(f="tiff/proj"), "needs --angles", None, None),
    ("tiff-glob-no-match", REC.format(f="tiff/proj/*.tiff") + " --angles 0:135:4", "the pattern matches no files",
     None, None),
    ("tiff-not-a-tiff", REC.format(f="faketiff") + " --angles 0:135:4", "not a readable TIFF file", None, None),
    ("tiff-option-on-scan", REC.format(f="scan.h5") + " --angles 0:180:4", "--angles does not apply", None, None),
    # ---------------------------------------------------------------- one writer per output
    ("lock-in-memory", REC.format(f="sim.h5"), "another tomodiff run is writing {d}/old.h5 (pid {pid} on", None,
     "{d}/old.h5"),
    ("lock-streaming", STREAM.format(f="sim.h5"), "another tomodiff run is writing {d}/old.h5 (pid {pid}", None,
     "{d}/old.h5"),
    ("lock-streaming-checkpoint", STREAM.format(f="sim.h5") + " --checkpoint {d}/ck", "is writing {d}/ck (pid {pid}",
     None, "{d}/ck"),
    ("lock-default-checkpoint", STREAM.format(f="sim.h5"), "is writing {d}/.old.h5.slabs (pid {pid}", None,
     "{d}/.old.h5.slabs"),
    ("lock-diffusion-checkpoint", PIGDM, "is writing {d}/ck (pid", None, "{d}/ck"),
    ("lock-simulate", "simulate --phantom foam:1:8 --views 4 --out {d}/old.h5", "is writing {d}/old.h5 (pid {pid}",
     None, "{d}/old.h5"),
    ("lock-train-prior", "train-prior {d}/run --steps 1", "another tomodiff run is writing {d}/run (pid {pid}", None,
     "{d}/run"),
    ("lock-new-output-folder", REC.format(f="sim.h5").replace("old.h5", "new/sub/r.h5"), "is writing {d}/new/sub/r.h5",
     None, "{d}/new/sub/r.h5"),
    # ---------------------------------------------------------------- train-prior
    ("train-size-huge", "train-prior {d}/run --size 1048576", "--size 1048576 (--dims 2, --batch 32, first width 16)",
     None, None),
    ("train-size-huge-3d", "train-prior {d}/run --dims 3 --size 8192", "--size 8192 (--dims 3", None, None),
    ("train-npy-damaged", "train-prior {d}/run --data {d}/corrupt.npy", "corrupt.npy: not a readable .npy array",
     None, None),
    ("train-npy-truncated", "train-prior {d}/run --data {d}/trunc.npy", "trunc.npy: not a readable .npy array",
     None, None),
    ("train-npz-damaged", "train-prior {d}/run --data {d}/corrupt.npz", "corrupt.npz: not a readable .npz archive",
     None, None),
    ("train-npz-member-damaged", "train-prior {d}/run --data {d}/badmember.npz", "badmember.npz [volume]: not a",
     None, None),
    ("train-damaged-in-folder", "train-prior {d}/run --data {d}/vols", "vols/b_corrupt.npy: not a readable .npy",
     None, None),
    ("train-val-damaged", "train-prior {d}/run --data {d}/good.npy --val-data {d}/corrupt.npz", "corrupt.npz: not a",
     None, None),
    ("train-h5-not-hdf5", "train-prior {d}/run --data {d}/text.h5", "text.h5: not an HDF5 file", None, None),
    ("train-values-outside", "train-prior {d}/run --data {d}/hu.npy --steps 1", "hu.npy: values ", None, None),
    ("train-export-locked", "train-prior {d}/trained --export {d}/old.h5", "is writing {d}/old.h5 (pid {pid}", None,
     "{d}/old.h5"),
    # ---------------------------------------------------------------- simulate
    ("sim-npy-damaged", "simulate --volume {d}/corrupt.npy --out {d}/old.h5", "corrupt.npy: not a readable .npy",
     None, None),
    ("sim-npy-truncated", "simulate --volume {d}/trunc.npy --out {d}/old.h5", "trunc.npy: not a readable .npy",
     None, None),
    ("sim-npy-pickle", "simulate --volume {d}/objects.npy --out {d}/old.h5", "objects.npy: not a readable .npy",
     None, None),
]


def _tree(d: Path) -> dict[str, str]:
    """Every path under ``d`` (files with their sha256, directories as such)."""
    return {str(p.relative_to(d)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*"))}


def _dxchange(path, flats, darks, *, theta=None, units=None, proj=None):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["exchange/data"] = rng.uniform(500, 900, (4, 2, 8)).astype(np.uint16) if proj is None else proj
        if flats is not None:
            f["exchange/data_white"] = flats
        if darks is not None:
            f["exchange/data_dark"] = darks
        f["exchange/theta"] = np.linspace(0, 180, 4, endpoint=False) if theta is None else theta
        if units:
            f["exchange/theta"].attrs["units"] = units


def _edit_sinogram(src, dst, new=None, **attrs):
    """A copy of project file ``src`` with its sinogram replaced by ``new`` and attributes overridden."""
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        old, kept = f["sinogram"][()], dict(f["sinogram"].attrs)
        if new is not None:
            del f["sinogram"]
            f["sinogram"] = new(old)
        for k, v in {**kept, **attrs}.items():
            f["sinogram"].attrs[k] = v


def _tiff_scan(folder, flats, darks, *, width=8):
    rng = np.random.default_rng(1)
    write_tiff_stack(folder / "proj", rng.uniform(500, 900, (4, 2, 8)).astype(np.uint16))
    write_tiff_stack(folder / "flat", np.full((2, 2, width), flats, np.uint16))
    write_tiff_stack(folder / "dark", np.full((2, 2, width), darks, np.uint16))
    (folder / "angles.txt").write_text("0\n45\n90\n135\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("adversarial")
    assert main(["simulate", "--phantom", "foam:1:8", "--views", "4", "--out", str(d / "sim.h5")]) == 0
    sim = d / "sim.h5"
    write_project(d / "old.h5", ProjectData(reconstruction={"mean": np.full((8, 8, 8), 7.0, np.float32)},
                                            provenance={"an": "earlier result"}))
    (d / "text.h5").write_text("not HDF5\n")
    (d / "adir").mkdir()
    (d / ".blocked.h5.slabs").write_text("a file where the default checkpoint would go\n")
    full, low = np.full((2, 2, 8), 1000, np.uint16), np.full((2, 2, 8), 10, np.uint16)
    _dxchange(d / "scan.h5", full, low)
    _dxchange(d / "swapped.h5", low, full)
    _dxchange(d / "zeroflat.h5", np.zeros_like(full), None)
    _dxchange(d / "wideflat.h5", np.full((2, 2, 9), 1000, np.uint16), None)
    _dxchange(d / "widedark.h5", full, np.full((2, 2, 9), 10, np.uint16))
    dead = full.copy()
    dead[:, 1] = 10  # a whole detector row as dark as the darks: half the pixels
    _dxchange(d / "deadrow.h5", dead, low)
    _dxchange(d / "raddeg.h5", full, low, theta=np.linspace(0, 180, 4), units="rad")
    _dxchange(d / "degrad.h5", full, low, theta=np.linspace(0, np.pi, 4))  # no units: degrees
    _edit_sinogram(sim, d / "badjson.h5", geometry_json="{not json")
    _edit_sinogram(sim, d / "badgeom.h5", geometry_json='{"kind": "nope"}')
    _edit_sinogram(sim, d / "listgeom.h5", geometry_json="[1, 2]")
    _edit_sinogram(sim, d / "complex.h5", lambda s: s.astype(np.complex64))
    _edit_sinogram(sim, d / "oned.h5", lambda s: s.ravel()[:4])
    _edit_sinogram(sim, d / "narrow.h5", lambda s: s[..., :11])
    _edit_sinogram(sim, d / "nan.h5", lambda s: np.where(np.arange(s.size).reshape(s.shape) == 5, np.nan, s))
    shutil.copy(sim, d / "badprov.h5")
    with h5py.File(d / "badprov.h5", "a") as f:
        f["provenance"].attrs["json"] = "{broken"
    _tiff_scan(d / "tiff", 1000, 10)
    _tiff_scan(d / "tiff_swapped", 10, 1000)
    _tiff_scan(d / "tiff_zeroflat", 0, 0)
    _tiff_scan(d / "tiff_wide", 1000, 10, width=9)
    (d / "faketiff").mkdir()
    (d / "faketiff" / "p_0.tif").write_bytes(b"II*\x00 not really a TIFF")
    (d / "latin1.txt").write_bytes("0\n45\n90\n135 # 135\xb0\n".encode("latin-1"))
    (d / "words.txt").write_text("0 45\nninety 135\n")
    (d / "empty.txt").write_text("# nothing here\n")
    good = np.random.default_rng(2).random((8, 8, 8)).astype(np.float32)
    np.save(d / "good.npy", good)
    np.save(d / "hu.npy", good * 2000)
    (d / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    (d / "trunc.npy").write_bytes((d / "good.npy").read_bytes()[:200])
    (d / "corrupt.npz").write_bytes(b"PK\x03\x04 garbage")
    with zipfile.ZipFile(d / "badmember.npz", "w") as z:  # a sound archive holding a damaged array
        z.writestr("volume.npy", b"\x93NUMPX garbage")
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "vols").mkdir()
    np.save(d / "vols" / "a_good.npy", good)
    (d / "vols" / "b_corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    (d / "trained").mkdir()  # --export needs a checkpoint.pt; the lock is found first
    (d / "trained" / "checkpoint.pt").write_bytes(b"not read")
    return d


def _run(argv, capsys) -> tuple[int, list[str], str]:
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, [line for line in err.splitlines() if line.strip()], out + err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(inputs, capsys, monkeypatch, case):
    _, argv, expected, env, hold = case
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    argv = argv.format(d=inputs).split()
    expected = expected.format(d=inputs, pid=os.getpid())
    before = _tree(inputs)
    with output_lock(hold.format(d=inputs)) if hold else contextlib.nullcontext():  # a second writer (this process)
        rc, lines, everything = _run(argv, capsys)
    assert rc == 2, everything[-2000:]
    assert "Traceback" not in everything
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"tomodiff {argv[0]}: error: "), lines[0]
    assert "unexpected" not in lines[0], lines[0]
    assert expected in lines[0], lines[0]
    assert _tree(inputs) == before  # the earlier old.h5 unchanged; no output, temporary, checkpoint, lock, run dir


def test_enough_cases_over_every_path():
    ids = [c[0] for c in CASES]
    assert len(set(ids)) == len(ids) >= 60
    for prefix in ("mem-", "stream-", "torchrun-", "tiff-", "lock-", "train-", "sim-"):
        assert sum(i.startswith(prefix) for i in ids) >= 3, prefix


# ---------------------------------------------------------------- accepted, with a warning where a unit looks wrong
WARNED = [
    ("radians-as-degrees-range", "reconstruct {d}/tiff/proj --angles 0:3.14159:4", "--angles 0:3.14159:4: the angles"),
    ("radians-as-degrees-file", "reconstruct {d}/tiff/proj --angles {d}/radians.txt", "radians.txt: the angles run"),
    ("degrees-labelled-radians", "reconstruct {d}/raddeg.h5", "raddeg.h5: 'exchange/theta' (units rad): the angles"),
    ("radians-without-units", "reconstruct {d}/degrad.h5", "degrad.h5: 'exchange/theta' (units degrees): the angles"),
    ("radians-without-units-streamed", "reconstruct {d}/degrad.h5 --stream", "degrad.h5: 'exchange/theta' (units"),
]


@pytest.mark.parametrize("case", WARNED, ids=[c[0] for c in WARNED])
def test_angles_in_the_other_unit_are_warned_about(inputs, tmp_path, capsys, case):
    _, argv, expected = case
    (inputs / "radians.txt").write_text("0\n0.785398\n1.570796\n2.356194\n")
    rc, lines, everything = _run([*argv.format(d=inputs).split(), "--method", "fbp", "--out",
                                  str(tmp_path / "r.h5")], capsys)
    assert rc == 0, everything[-2000:]
    warned = [line for line in lines if line.startswith("tomodiff reconstruct: warning: ")]
    assert len(warned) == 1 and expected.format(d=inputs) in warned[0], lines
    assert "look like" in warned[0]


ACCEPTED = [
    ("scan-folder-with-brackets", "reconstruct {d}/scan[1]"),
    ("projections-folder-with-glob-characters", "reconstruct {d}/odd?*[x]/proj --angles 0:135:4"),
    ("project-file-with-brackets", "reconstruct {d}/sim[1].h5"),
    ("one-dead-pixel-of-32", "reconstruct {d}/onedead.h5"),
    ("plain-degrees", "reconstruct {d}/tiff/proj --angles 0:135:4 --flats {d}/tiff/flat --darks {d}/tiff/dark"),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_odd_but_valid_input_is_accepted(inputs, tmp_path, capsys, case):
    _, argv = case
    if not (inputs / "scan[1]").exists():
        shutil.copytree(inputs / "tiff", inputs / "scan[1]")
        shutil.copytree(inputs / "tiff", inputs / "odd?*[x]")
        shutil.copy(inputs / "sim.h5", inputs / "sim[1].h5")
        flats = np.full((2, 2, 16), 1000, np.uint16)
        flats[:, 1, 5] = 10
        _dxchange(inputs / "onedead.h5", flats, np.full((2, 2, 16), 10, np.uint16),
                  proj=np.random.default_rng(3).uniform(500, 900, (4, 2, 16)).astype(np.uint16))
    rc, lines, everything = _run([*argv.format(d=inputs).split(), "--method", "fbp", "--out",
                                  str(tmp_path / "r.h5")], capsys)
    assert rc == 0, everything[-2000:]
    assert not [line for line in lines if "warning" in line], lines
    assert (tmp_path / "r.h5").is_file()


# ---------------------------------------------------------------- a full disk
@pytest.fixture
def full_disk(monkeypatch):
    """The disk fills up after ``budget`` bytes of positioned writes (how HDF5 files are written)."""
    state = {"budget": 4096}
    real = os.pwrite

    def pwrite(fd, data, offset):
        if len(data) > state["budget"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        state["budget"] -= len(data)
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    return state


@pytest.mark.parametrize("argv", ["reconstruct {d}/sim.h5 --method fbp --out {d}/old.h5",
                                  "reconstruct {d}/scan.h5 --method sirt --iters 2 --out {d}/old.h5",
                                  "reconstruct {d}/tiff --method fbp --out {d}/old.h5",
                                  "simulate --phantom foam:1:8 --views 4 --out {d}/old.h5"],
                         ids=["project", "scan", "tiff", "simulate"])
def test_a_full_disk_is_one_line_and_the_earlier_output_stays(inputs, capsys, full_disk, argv):
    before = _tree(inputs)
    rc, lines, everything = _run(argv.format(d=inputs).split(), capsys)
    assert rc == 2 and "Traceback" not in everything, everything[-2000:]
    errors = [line for line in lines if " error: " in line]
    expected = f"tomodiff {argv.split()[0]}: error: No space left on device writing {inputs}/old.h5"
    assert errors == [expected + "; any earlier old.h5 is unchanged"], lines
    assert _tree(inputs) == before


def test_a_full_disk_during_the_streamed_merge_keeps_the_slabs_and_the_rerun_finishes(inputs, tmp_path, capsys,
                                                                                        monkeypatch):
    out = tmp_path / "out.h5"
    out.write_bytes(b"an earlier result")
    real = os.pwrite

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    argv = ["reconstruct", str(inputs / "sim.h5"), "--method", "fbp", "--stream", "--slab", "4", "--out", str(out)]
    with monkeypatch.context() as m:
        m.setattr(os, "pwrite", full)
        rc, lines, everything = _run(argv, capsys)
    assert rc == 2 and len(lines) == 1, everything[-2000:]
    assert lines[0].startswith(f"tomodiff reconstruct: error: No space left on device writing {out}; any earlier "
                               f"out.h5 is unchanged and the finished slabs stay in {tmp_path}/.out.h5.slabs")
    assert out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in (tmp_path / ".out.h5.slabs").iterdir()) == ["key.json", "slab_00000.pt",
                                                                               "slab_00001.pt"]
    assert os.pwrite is real
    rc, lines, everything = _run(argv, capsys)
    assert rc == 0, everything[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no slabs, no lock, no temporary


# Python ignores SIGXFSZ, so a write past the limit fails with EFBIG instead of killing the child
FSIZE_CHILD = r"""
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from tomodiff.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE")
@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "streamed-slab"])
def test_a_real_file_size_limit_is_one_line_not_a_crash(inputs, tmp_path, stream):
    """libhdf5 used to crash the process after a failed write (h5py tracebacks, then exit 139), and
    torch.save reported a full disk as "enforce fail ... unexpected pos"."""
    shutil.copy(inputs / "old.h5", tmp_path / "old.h5")
    before = _tree(tmp_path)
    argv = ["reconstruct", str(inputs / "sim.h5"), "--method", "fbp", "--out", str(tmp_path / "old.h5"),
            *(["--stream"] if stream else [])]
    # 2 KiB: the probe of the output folder and the checkpoint's key fit, a slab file or the output does not
    run = subprocess.run([sys.executable, "-c", FSIZE_CHILD, "2048", *argv], capture_output=True, text=True, check=False,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, (run.returncode, run.stderr[-3000:])
    target = tmp_path / ".old.h5.slabs" / "slab_00000.pt" if stream else tmp_path / "old.h5"
    assert lines[0].startswith(f"tomodiff reconstruct: error: File too large (the file system's or this process's "
                               f"limit, ulimit -f) writing {target}; any earlier"), lines[0]
    assert _tree(tmp_path) == before  # the earlier output, and no temporary, slab directory or lock


# ---------------------------------------------------------------- a second writer in another process
HOLDER = r"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("lock", sys.argv[1])
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
with lock.output_lock(sys.argv[2]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_the_same_output_is_refused_and_a_dead_ones_lock_taken_over(inputs, tmp_path, capsys):
    import tomodiff.io.lock as lock_module

    out = tmp_path / "r.h5"
    shutil.copy(inputs / "old.h5", out)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, lock_module.__file__, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _tree(tmp_path)
        for extra in ([], ["--stream"]):
            rc, lines, _ = _run(["reconstruct", str(inputs / "sim.h5"), "--method", "fbp", "--out", str(out),
                                 *extra], capsys)
            refused = f"tomodiff reconstruct: error: another tomodiff run is writing {out} (pid {holder.pid} on "
            assert rc == 2 and len(lines) == 1 and lines[0].startswith(refused + os.uname().nodename), lines
            assert lines[0].endswith("); wait for it to finish, or stop it, or choose another output")
            assert _tree(tmp_path) == before
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up: its lock file stays, naming a dead process
        holder.wait(timeout=30)
    assert (tmp_path / ".r.h5.lock").read_text().startswith(f"pid {holder.pid} ")
    rc, lines, everything = _run(["reconstruct", str(inputs / "sim.h5"), "--method", "fbp", "--out", str(out)],
                                 capsys)
    assert rc == 0, everything[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]  # taken over and released


# ---------------------------------------------------------------- train-prior leaves no run directory
def test_train_prior_data_errors_leave_no_run_directory(inputs, tmp_path, capsys):
    run_dir = tmp_path / "new" / "run"
    rc, lines, everything = _run(["train-prior", str(run_dir), "--data", str(inputs / "hu.npy"), "--steps", "1"],
                                 capsys)
    assert rc == 2 and "hu.npy: values" in lines[-1], everything[-2000:]
    assert list(tmp_path.iterdir()) == []  # neither the run directory nor the folder made for it


# ---------------------------------------------------------------- torchrun: our line in its failure summary
@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo")
def test_under_torchrun_every_rank_says_one_line_and_torchrun_names_it(inputs, tmp_path):
    shutil.copy(inputs / "swapped.h5", tmp_path / "scan.h5")
    before = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "tomodiff",
           "reconstruct", "scan.h5", "--method", "fbp", "--out", "r.h5"]
    run = subprocess.run(cmd, cwd=tmp_path, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=180, check=False)
    line = ("tomodiff reconstruct: error: scan.h5 (dxchange): flat − dark is non-positive at 16 of 16 pixels (first "
            "at row 0, col 0)")
    assert run.returncode == 1, run.stderr[-3000:]  # torchrun's own code for a failed worker
    ranks, summary = run.stderr.split("ChildFailedError", 1)  # the ranks' lines (interleaved), torchrun's summary
    assert ranks.count(line) == 2, ranks
    assert f'File "{Path(tomodiff.__file__).parent}' not in run.stderr  # the one traceback is torchrun's own
    root = summary[summary.index("Root Cause"):]
    assert "exitcode  : 2" in root and f"traceback : {line}" in root, root
    assert _tree(tmp_path) == before



# rank 1 dies in its first slab; rank 0 is still busy in its own when torchrun stops it (SIGTERM)
LOSES_A_RANK = r"""
import os, signal, sys, time
import tomodiff.recon.streamed as streamed

def busy(*args, **kwargs):
    if os.environ["RANK"] == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)

streamed.solve_classical = busy
from tomodiff.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo")
def test_under_torchrun_a_lost_rank_stops_the_others_with_our_line(inputs, tmp_path):
    shutil.copy(inputs / "sim.h5", tmp_path / "sim.h5")
    (tmp_path / "loses_a_rank.py").write_text(LOSES_A_RANK)
    before = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "loses_a_rank.py",
           "reconstruct", "sim.h5", "--method", "fbp", "--slab", "4", "--out", "r.h5"]
    run = subprocess.run(cmd, cwd=tmp_path, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=180, check=False)
    assert run.returncode == 1, run.stderr[-3000:]
    line = "tomodiff reconstruct: stopped by SIGTERM; torchrun stops every rank when one of them fails"
    ranks, summary = run.stderr.split("ChildFailedError", 1)
    assert ranks.count(line) == 1, ranks  # rank 0's, once
    assert f"traceback : {line}" in summary and "exitcode  : 143" in summary, summary
    assert "Signal 9 (SIGKILL)" in summary[summary.index("Root Cause"):], summary
    assert _tree(tmp_path) == before  # no output; the checkpoint without a finished slab is gone


def test_sigterm_under_torchrun_is_one_line_and_goes_to_its_error_file(inputs, tmp_path, capsys, monkeypatch):
    import json

    from tomodiff.recon import streamed

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("the test runner handles SIGTERM itself")
    for k, v in {**TORCHRUN, "TORCHELASTIC_ERROR_FILE": str(tmp_path / "error.json")}.items():
        monkeypatch.setenv(k, v)

    def stopped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # what torchrun sends when another rank fails

    monkeypatch.setattr(streamed, "reconstruct_file", stopped)
    rc, lines, everything = _run(["reconstruct", str(inputs / "sim.h5"), "--method", "fbp", "--out",
                                  str(tmp_path / "r.h5")], capsys)
    assert rc == 143 and len(lines) == 1 and lines[0].startswith("tomodiff reconstruct: stopped by SIGTERM; "
                                                                  "torchrun stops every rank"), everything
    assert json.loads((tmp_path / "error.json").read_text())["message"]["message"] == lines[0]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["error.json"]
