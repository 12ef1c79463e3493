"""Atomic file writes: a crash never leaves a half-written file in place of a good one.

The data go to a hidden temporary file next to the target, ``.NAME.HOST-PID.RANDOM.tmp``, which is
renamed over the target only when it is complete and on disk. On any exception — including
``SystemExit`` raised by :func:`install_sigterm_handler` on SIGTERM — the temporary file is removed
and the target is left exactly as it was. A process killed outright (SIGKILL, power loss) cannot
clean up; its temporary file names a process that no longer exists on this host, and the next
write to the same target removes it (:func:`remove_stale_temporaries`; files of other hosts on a
shared file system are left alone).

Finished files get the usual permissions of a new file, ``0o666 & ~umask`` (a bare ``mkstemp``
would leave them readable by their owner only).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(mask)
    return mask


def _owner() -> str:
    """``HOST-PID`` of this process, as it appears in its temporary file names."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path, suffix: str = ".tmp") -> list[Path]:
    """Remove temporary files left next to ``path`` by writers that died (their PID is gone).

    Only names of the form ``.NAME.HOST-PID.RANDOM<suffix>`` with this host are considered;
    files of live processes (a concurrent write) are left alone. Returns the removed paths.
    """
    path = Path(path)
    removed = []
    prefix = f".{path.name}."
    host = _owner().rsplit("-", 1)[0]
    if not path.parent.is_dir():
        return removed
    for cand in path.parent.iterdir():
        name = cand.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        owner_host, _, pid_text = name[len(prefix):].split(".", 1)[0].rpartition("-")
        if owner_host != host or not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(FileNotFoundError):
            cand.unlink()
            removed.append(cand)
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The temporary file lives in the same directory (``os.replace`` is atomic only within one
    filesystem). On any exception the temporary file is removed and ``path`` — if it existed —
    is left exactly as it was. The new file gets mode ``0o666 & ~umask``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
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
    import h5py  # start-up time: h5py (~50 ms) stays out of `tomodiff --help`, which imports tomodiff.io

    with atomic_path(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as f:
            yield f


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def install_sigterm_handler() -> bool:
    """Turn SIGTERM into ``SystemExit(143)`` so that ``finally`` blocks (and the clean-up of
    :func:`atomic_path`) run. Only from the main thread; returns whether it was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False  # someone else (a test runner, an embedding app) handles it
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    return True
