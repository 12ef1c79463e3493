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

A full disk (or a quota, or the file-size limit) is an :class:`OutputWriteError` that names the
target, and the temporary file is gone. HDF5 files are written through :class:`WriteGuard`, because
libhdf5 (2.0 here) crashes the process after a failed write (tracebacks from h5py's destructors,
then a segfault).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import tempfile
import threading
from pathlib import Path


class OutputWriteError(OSError, RuntimeError):
    """An output could not be written (full disk, quota, file-size limit, read-only file system);
    any earlier file at that path is unchanged. ``errno`` is the cause's, where known."""


#: errors that only a write can cause: they mean the output, not an input, is the problem
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def errno_of(err: BaseException) -> int | None:
    """The errno of an OSError, also when h5py only mentions it in its message (``errno = 28``)."""
    if getattr(err, "errno", None):
        return err.errno
    found = re.search(r"errno = (\d+)", str(err))
    return int(found.group(1)) if found else None


def write_error(err: BaseException, path, kept: str = "") -> OutputWriteError:
    """The one-line error for a failed write of ``path``: ``No space left on device writing OUT;
    any earlier OUT is unchanged`` (``kept``: where else the caller's results stay)."""
    path = Path(path)
    code = errno_of(err)
    reason = getattr(err, "reason", None)  # rewording an OutputWriteError (adding ``kept``)
    if reason is None:
        reason = os.strerror(code) if code else (str(err).strip().splitlines() or ["I/O error"])[0]
        if code == errno.EFBIG:
            reason += " (the file system's or this process's limit, ulimit -f)"
    out = OutputWriteError(f"{reason} writing {path}; any earlier {path.name} is unchanged"
                           + (f" and {kept}" if kept else ""))
    out.errno, out.reason = code, reason
    return out


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


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically with plain writes (a full disk is an
    :class:`OutputWriteError`; ``torch.save`` straight to a file reports it as an ``enforce fail``)."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fh.write(data)
    except OSError as err:
        if isinstance(err, OutputWriteError) or errno_of(err) not in WRITE_ERRNOS:
            raise
        raise write_error(err, path) from err
    return Path(path)


class WriteGuard:
    """The file that libhdf5 writes through (h5py's ``fileobj`` driver), which never sees a failed write.

    libhdf5 crashes the process after a failed write, so the first failure (full disk, file-size
    limit) is kept in ``error`` and not passed on: from then on writes go to pages in memory (reads
    see them), so libhdf5 finishes and closes cleanly, and :func:`atomic_h5` raises instead. Writers
    of large files call :func:`check_written` between blocks, so that memory holds at most one block.
    """

    PAGE = 1 << 16

    def __init__(self, path, target):
        self.target = target  # what the error names: the output, not its temporary file
        self._fd = os.open(path, os.O_RDWR)
        self._pos = self._size = 0
        self._pages: dict[int, bytearray] = {}
        self.error: OSError | None = None

    # the methods the fileobj driver calls: seek, tell, readinto, write, truncate, flush
    def seek(self, pos, whence=0):
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else self._size + pos)
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        data = os.pread(self._fd, n, self._pos) if n else b""
        view[:len(data)] = data
        view[len(data):n] = bytes(n - len(data))  # past what reached the disk
        if self._pages and n:
            start, end = self._pos, self._pos + n
            for k in range(start // self.PAGE, (end - 1) // self.PAGE + 1):
                if k in self._pages:
                    a, b = max(start, k * self.PAGE), min(end, (k + 1) * self.PAGE)
                    view[a - start:b - start] = self._pages[k][a - k * self.PAGE:b - k * self.PAGE]
        self._pos += n
        return n

    def read(self, n=-1) -> bytes:
        buf = bytearray(max(0, self._size - self._pos) if n is None or n < 0 else n)
        return bytes(buf[:self.readinto(buf)])

    def write(self, buf) -> int:
        data = memoryview(buf).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(data):
                    done += os.pwrite(self._fd, data[done:], self._pos + done)
            except OSError as err:
                self.error = err
        if self.error is not None:
            self._keep(data)
        self._pos += len(data)
        self._size = max(self._size, self._pos)
        return len(data)

    def _keep(self, data) -> None:
        """After a failure: ``data`` at the current position goes to pages in memory."""
        pos, end = self._pos, self._pos + len(data)
        while pos < end:
            k = pos // self.PAGE
            if k not in self._pages:
                page = bytearray(self.PAGE)
                old = os.pread(self._fd, self.PAGE, k * self.PAGE)
                page[:len(old)] = old
                self._pages[k] = page
            stop = min(end, (k + 1) * self.PAGE)
            self._pages[k][pos - k * self.PAGE:stop - k * self.PAGE] = data[pos - self._pos:stop - self._pos]
            pos = stop

    def truncate(self, size=None):
        size = self._pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except OSError as err:  # growing past the file-size limit fails, too
                self.error = err
        self._size = size
        return size

    def flush(self):
        pass

    def close(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def check_written(f) -> None:
    """Raise the write error an :func:`atomic_h5` file has met so far (call it between blocks of a long write)."""
    guard = getattr(f, "_tomodiff_guard", None)
    if guard is not None and guard.error is not None:
        raise write_error(guard.error, guard.target) from guard.error


@contextlib.contextmanager
def atomic_h5(path):
    """``with atomic_h5("out.h5") as f:`` — an ``h5py.File`` opened for writing on a temporary
    file that replaces ``path`` only when the block finishes without error. A full disk (or
    another error only a write can cause) is an :class:`OutputWriteError` naming ``path``."""
    import h5py  # start-up time: h5py (~50 ms) stays out of `tomodiff --help`, which imports tomodiff.io

    try:
        with atomic_path(path, suffix=".h5.tmp") as tmp:
            guard = WriteGuard(tmp, path)
            try:
                with h5py.File(guard, "w") as f:
                    f._tomodiff_guard = guard
                    yield f
                check_written(f)
            except Exception:
                # a failed write comes first: an error of the block may only be its consequence
                if guard.error is not None:
                    raise write_error(guard.error, path) from guard.error
                raise
            finally:
                guard.close()
    except OSError as err:
        if isinstance(err, OutputWriteError) or errno_of(err) not in WRITE_ERRNOS:
            raise
        raise write_error(err, path) from err


class Terminated(SystemExit):
    """SIGTERM, as :func:`install_sigterm_handler` raises it (``code`` 143)."""


def _raise_on_sigterm(signum, frame):
    raise Terminated(128 + signum)


def install_sigterm_handler() -> bool:
    """Turn SIGTERM into ``SystemExit(143)`` so that ``finally`` blocks (and the clean-up of
    :func:`atomic_path`) run. Only from the main thread; returns whether it was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False  # someone else (a test runner, an embedding app) handles it
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    return True
