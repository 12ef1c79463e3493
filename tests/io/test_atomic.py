"""Fault injection on atomic writes: killed mid-write (SIGTERM, SIGKILL), disk full, permissions.

In every case the target either keeps its old content or gets the complete new one, and no
temporary file outlives the process that made it (SIGKILL: until the next write to that target).
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tomodiff.io import ProjectData, read_project, write_project
from tomodiff.io import project_file
from tomodiff.io.atomic import _owner, atomic_path, current_umask, remove_stale_temporaries

# a child that starts writing a project file over TARGET, then hangs inside the write
CHILD = r"""
import sys, time
import numpy as np
from tomodiff.io import ProjectData, write_project, project_file
from tomodiff.io.atomic import install_sigterm_handler

install_sigterm_handler()
original = project_file._write_array
def slow(group, name, arr):
    out = original(group, name, arr)
    print("writing", flush=True)
    time.sleep(60)
    return out
project_file._write_array = slow
write_project(sys.argv[1], ProjectData(sinogram=np.ones((50, 200, 200)), provenance={"new": True}))
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temporaries(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]


@pytest.fixture
def old_file(tmp_path):
    path = write_project(tmp_path / "out.h5", ProjectData(sinogram=np.zeros((3, 5)), provenance={"old": True}))
    return path, _sha(path)


def _start_child(target: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert child.stdout.readline().strip() == "writing", child.stderr.read()
    assert _temporaries(target), "the child should be writing a temporary file now"
    return child


def test_sigterm_mid_write_removes_the_temporary_and_keeps_the_old_file(old_file):
    path, before = old_file
    child = _start_child(path)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 128 + signal.SIGTERM
    assert "Traceback" not in child.stderr.read()
    assert _temporaries(path) == []
    assert _sha(path) == before and read_project(path).provenance == {"old": True}


def test_sigkill_leaves_a_stale_temporary_that_the_next_write_removes(old_file):
    path, before = old_file
    child = _start_child(path)
    child.kill()
    child.wait(timeout=30)
    stale = _temporaries(path)
    assert len(stale) == 1 and stale[0].stat().st_size > 0   # cannot be cleaned by a killed process
    assert _sha(path) == before                               # but the target is untouched
    write_project(path, ProjectData(sinogram=np.ones((3, 5)), provenance={"next": True}))
    assert _temporaries(path) == [] and read_project(path).provenance == {"next": True}


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    target = tmp_path / "x.h5"
    host = _owner().rsplit("-", 1)[0]
    live = tmp_path / f".x.h5.{_owner()}.abc.h5.tmp"
    live.write_bytes(b"in progress")
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    dead = tmp_path / f".x.h5.{host}-{dead_pid}.def.h5.tmp"
    dead.write_bytes(b"left behind")
    elsewhere = tmp_path / f".x.h5.otherhost-{dead_pid}.ghi.h5.tmp"  # another machine's write, shared disk
    elsewhere.write_bytes(b"maybe in progress")
    assert remove_stale_temporaries(target, ".h5.tmp") == [dead]
    assert live.exists() and not dead.exists() and elsewhere.exists()


def test_disk_full_mid_write_keeps_the_old_file_and_leaves_nothing(old_file, monkeypatch):
    path, before = old_file
    original, calls = project_file._write_array, {"n": 0}

    def full(group, name, arr):
        calls["n"] += 1
        if calls["n"] == 2:  # the second dataset no longer fits
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(group, name, arr)

    monkeypatch.setattr(project_file, "_write_array", full)
    with pytest.raises(OSError, match="No space left"):
        write_project(path, ProjectData(sinogram=np.ones((3, 5)), reference=np.ones((4, 4)), provenance={}))
    assert calls["n"] == 2
    assert _sha(path) == before and _temporaries(path) == []


def test_disk_full_at_fsync_keeps_the_old_file(old_file, monkeypatch):
    path, before = old_file

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        write_project(path, ProjectData(sinogram=np.ones((3, 5))))
    assert _sha(path) == before and _temporaries(path) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_get_the_usual_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        path = write_project(tmp_path / "p.h5", ProjectData(sinogram=np.ones((2, 3))))
        with atomic_path(tmp_path / "plain.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode
    assert (tmp_path / "plain.bin").stat().st_mode & 0o777 == mode


def test_an_exception_inside_the_block_changes_nothing(old_file):
    path, before = old_file
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert _sha(path) == before and _temporaries(path) == []
