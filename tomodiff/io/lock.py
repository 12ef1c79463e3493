"""One writer per output: an exclusive lock beside each output a command writes.

Two runs writing the same OUT (or the same checkpoint) would race: slab files of one run read by
the other, a checkpoint removed under a run that still needs it, misleading errors. So a command
takes, before any work, an exclusive ``flock`` on ``.NAME.lock`` next to each of its outputs
(files or directories) and holds it until it exits. The lock file says who holds it (``pid N on
HOST``) for the error a second run gets. The kernel releases the lock when its process dies, however
it dies (SIGKILL included), so a lock left by a dead process is taken over by the next run; only
its file stays behind until then. On a shared file system the lock works across nodes where the
file system supports ``flock`` (NFS v4, Lustre with ``flock`` mounted; elsewhere it is per node).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path


class OutputLockedError(RuntimeError):
    """Another process is writing the same output."""


def lock_file(path) -> Path:
    """Where the lock of output ``path`` lives: ``.NAME.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _missing_parents(directory: Path) -> list[Path]:
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not said who it is yet"


def _acquire(path: Path) -> int:
    """An open descriptor of ``path``'s lock file, exclusively locked; or OutputLockedError."""
    lock = lock_file(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _holder(fd)
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputLockedError(f"another tomodiff run is writing {path} ({holder}); wait for it to finish, or "
                                    "stop it, or choose another output") from None
        # its holder may have removed the file between our open and our lock: then lock the new one
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    return fd


@contextlib.contextmanager
def output_lock(*paths):
    """Hold the locks of every output in ``paths`` (``None`` entries are skipped) for the block.

    Raises :class:`OutputLockedError` naming the output and the pid holding it. Folders created
    to hold a lock file are removed again at the end if they are empty. Released on any exit,
    including ``SystemExit`` from SIGTERM; the lock files are removed.
    """
    held, created = [], []
    try:
        unique = {Path(p).absolute(): Path(p) for p in reversed([p for p in paths if p is not None])}
        for path in reversed(unique.values()):  # the order given; the path as given, for messages
            missing = _missing_parents(path.absolute().parent)
            path.absolute().parent.mkdir(parents=True, exist_ok=True)
            created += missing
            held.append((lock_file(path), _acquire(path)))
        yield
    finally:
        for lock, fd in reversed(held):
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # still holding it, so no other run can be between its open and its lock
            os.close(fd)
        for directory in created:  # innermost first
            with contextlib.suppress(OSError):
                directory.rmdir()
