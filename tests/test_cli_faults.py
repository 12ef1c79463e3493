"""Fault injection through the command line: disk full while writing the output of a checkpointed
run, SIGTERM in the middle of a write, and resumes that do not match the checkpoint."""

from __future__ import annotations

import errno
import importlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tomodiff.cli import main
from tomodiff.io import project_file, read_project

# the module (``tomodiff.recon.reconstruct`` also names the function)
recon_module = importlib.import_module("tomodiff.recon.reconstruct")


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(d / "scan.h5")]) == 0
    return d / "scan.h5"


def _pigdm(scan, out, ckpt, *extra):
    return ["reconstruct", str(scan), "--method", "pigdm", "--prior", "slice-64", "--steps", "2", "--samples", "2",
            "--slab", "8", "--checkpoint", str(ckpt), "--out", str(out), "--json", *extra]


def _err_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "Warning" not in line and "warn(" not in line]
    assert "Traceback" not in err
    return lines[-1] if lines else ""


def test_disk_full_on_output_keeps_the_checkpoint_and_the_rerun_resumes(scan, tmp_path, capsys, monkeypatch):
    out, ckpt = tmp_path / "recon.h5", tmp_path / "run.ckpt"

    def full(group, name, arr):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(project_file, "_write_array", full)
        assert main(_pigdm(scan, out, ckpt)) == 2
    assert "No space left on device" in _err_line(capsys)
    assert not out.exists() and ckpt.exists()  # the finished slabs survive the failed write
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    def no_recompute(*args, **kwargs):
        raise AssertionError("a resumed run must not sample finished slabs again")

    monkeypatch.setattr(recon_module, "solve_diffusion", no_recompute)
    assert main(_pigdm(scan, out, ckpt)) == 0
    capsys.readouterr()
    data = read_project(out)
    assert data.reconstruction["std"].shape == (16, 16, 16) and data.provenance["std_samples"] == 2
    assert not ckpt.exists()  # removed only now that the output is written


def test_wrong_resume_is_refused_with_what_differs(scan, tmp_path, capsys, monkeypatch):
    out, ckpt = tmp_path / "recon.h5", tmp_path / "run.ckpt"
    original, calls = recon_module.solve_diffusion, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(recon_module, "solve_diffusion", interrupted)
        assert main(_pigdm(scan, out, ckpt)) == 130
    capsys.readouterr()
    assert ckpt.exists() and not out.exists()
    assert main(_pigdm(scan, out, ckpt, "--seed", "1")) == 2
    assert "differs in: seed" in _err_line(capsys)

    from tomodiff.commands import reconstruct as command
    from tomodiff.priors import load

    def other_weights(name, dev):
        prior = load(name, device=dev)
        prior.info = {**prior.info, "sha256": "0" * 64}
        return prior

    with monkeypatch.context() as m:
        m.setattr(command, "load_prior", other_weights)
        assert main(_pigdm(scan, out, ckpt)) == 2
    assert "differs in: prior" in _err_line(capsys)
    assert ckpt.exists() and not out.exists()


CHILD = r"""
import sys, time
from tomodiff.io import project_file
original = project_file._write_array
def slow(group, name, arr):
    out = original(group, name, arr)
    print("writing", flush=True)
    time.sleep(60)
    return out
project_file._write_array = slow
from tomodiff.cli import main
sys.exit(main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", sys.argv[1]]))
"""


def test_sigterm_during_the_output_write(tmp_path):
    out = tmp_path / "sim.h5"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert child.stdout.readline().strip() == "writing"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".sim.h5.")]
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    assert "Traceback" not in child.stderr.read()
    deadline = time.time() + 5
    while list(tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file


def test_full_disk_is_found_before_any_computation(scan, tmp_path, capsys, monkeypatch):
    import tempfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def never(*args, **kwargs):
        raise AssertionError("nothing may be computed when the output cannot be written")

    from tomodiff.commands import reconstruct as command

    monkeypatch.setattr(tempfile, "mkstemp", full)
    monkeypatch.setattr(command, "load_problem", never)  # reading the scan is the first real work
    out = tmp_path / "recon.h5"
    assert main(["reconstruct", str(scan), "--method", "sirt", "--out", str(out)]) == 2
    line = _err_line(capsys)
    assert "--out" in line and "No space left on device" in line
    assert not out.exists()
