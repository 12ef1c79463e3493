"""Atomic file writes: a crash never leaves a half-written file in place of a good one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The temporary file lives in the same directory (``os.replace`` is atomic only within one
    filesystem). On any exception the temporary file is removed and ``path`` — if it existed —
    is left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # data on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_h5(path):
    """``with atomic_h5("out.h5") as f:`` — an ``h5py.File`` opened for writing on a temporary
    file that replaces ``path`` only when the block finishes without error."""
    import h5py

    with atomic_path(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as f:
            yield f
