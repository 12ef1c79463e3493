"""A persistent, size-bounded on-disk cache of projector system matrices.

Building the Joseph matrix of a 256² fan-beam slice costs seconds to tens of seconds (and a peak of
several times its size); reading it back costs a fraction of a second. Every ``tomodiff`` command is
a new process, so the in-memory cache (:mod:`tomodiff.ct.backends.matrix_cache`) starts empty each
time; this cache keeps the matrices between processes.

Where: ``$TOMODIFF_CACHE`` if set (``off``, ``none``, ``0`` or an empty value switch the cache
off), else the platform's user cache folder (``platformdirs.user_cache_dir("tomodiff")`` when
platformdirs is installed, else ``$XDG_CACHE_HOME/tomodiff`` or ``~/.cache/tomodiff``); matrices
go into its ``matrices/`` folder, one file per matrix (or per block of one).

Key: the sha256 of the geometry's exact field values (floats by ``repr``, so two geometries share a
file only when they are equal), the dtype, the angle block, :data:`FORMAT` (bumped when the file
layout changes) and a digest of the code that computes the weights (``joseph.py``, ``rays.py``,
``backends/torch_backend.py``), so an edited discretisation never reads an old file; files of
other versions are never read and age out under the size bound.

Safety: files are written to a temporary name in the same folder and renamed (atomic on POSIX), so
a reader never sees half a file and two processes writing the same key leave one whole file. A file
that cannot be read or does not match its key is removed and the matrix rebuilt.

Size: at most ``$TOMODIFF_CACHE_MAX`` bytes (a number, or with a ``K``/``M``/``G`` suffix; default
4G); after each write the least recently used files are removed until the folder fits. Only
matrices whose build took at least ``$TOMODIFF_CACHE_MIN_SECONDS`` (default 0.5 s) are stored, so
small geometries (tests, 64² slices) leave nothing behind.

Clear it with ``tomodiff cache clear`` (``tomodiff cache info`` shows where it is and what it holds)
or :func:`clear`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

#: Bumped whenever the file layout changes (the discretisation is covered by :func:`code_digest`).
FORMAT = "joseph-csr-1"
#: The modules whose code decides the matrices' entries.
_CODE = ("joseph.py", "rays.py", "backends/torch_backend.py")
DEFAULT_MAX_BYTES = 4 << 30
DEFAULT_MIN_SECONDS = 0.5
_OFF = ("off", "none", "0", "false", "no", "")
_SUFFIX = ".pt"


def cache_dir() -> Path | None:
    """The folder matrices are stored in, or ``None`` when the cache is switched off."""
    env = os.environ.get("TOMODIFF_CACHE")
    if env is not None:
        if env.strip().lower() in _OFF:
            return None
        return Path(env).expanduser() / "matrices"
    try:
        import platformdirs  # optional: platformdirs

        base = Path(platformdirs.user_cache_dir("tomodiff", appauthor=False))
    except ImportError:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "tomodiff"
    return base / "matrices"


def max_bytes() -> int:
    """The size bound, from ``$TOMODIFF_CACHE_MAX`` (bytes, or with a K/M/G suffix)."""
    text = os.environ.get("TOMODIFF_CACHE_MAX", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(text[-1].lower(), 1)
    number = text[:-1] if scale != 1 else text
    try:
        return max(0, int(float(number) * scale))
    except ValueError:
        raise ValueError(f"TOMODIFF_CACHE_MAX must be a number of bytes (e.g. 4G, 500M), got {text!r}") from None


def min_seconds() -> float:
    text = os.environ.get("TOMODIFF_CACHE_MIN_SECONDS", "").strip()
    try:
        return float(text) if text else DEFAULT_MIN_SECONDS
    except ValueError:
        raise ValueError(f"TOMODIFF_CACHE_MIN_SECONDS must be a number, got {text!r}") from None


def key(geometry, dtype, block=None) -> str:
    """The file name stem for the matrices of ``geometry`` in ``dtype`` (angles ``block``):
    ``<sha256 of the group>`` or ``<sha256>-<start>-<stop>``; the blocks of one matrix share the group."""
    fields = geometry.to_dict()
    text = json.dumps({"format": FORMAT, "code": code_digest(),
                       "geometry": {k: _exact(v) for k, v in sorted(fields.items())}, "dtype": str(dtype)},
                      sort_keys=True, separators=(",", ":"))
    group = hashlib.sha256(text.encode()).hexdigest()
    return group if block is None else f"{group}-{int(block[0])}-{int(block[1])}"


def _group(name: str) -> str:
    return name.split("-", 1)[0]


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of the source of the modules that compute the weights (:data:`_CODE`); ``FORMAT``
    alone would rely on someone remembering to bump it."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for rel in _CODE:
        try:
            h.update((here / rel).read_bytes())
        except OSError:  # no source (a frozen install): the version still separates releases
            from .._version import __version__
            h.update(f"{rel}:{__version__}".encode())
    return h.hexdigest()[:16]


def _exact(v):
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return [_exact(e) for e in v]
    return v


def load(name: str):
    """The tuple of CSR tensors stored under ``name``, or ``None`` (missing, switched off, unreadable)."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / (name + _SUFFIX)
    if not path.is_file():
        return None
    try:
        # mmap: the arrays are paged in from the file (shared with the OS's page cache), not copied
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if data.get("format") != FORMAT or data.get("key") != name:
            raise ValueError("key or format mismatch")
        out = tuple(_csr(m) for m in data["matrices"])
    except FileNotFoundError:  # removed by another process's trim or clear in between: a plain miss
        return None
    except Exception as err:  # noqa: BLE001 - a bad file is a cache miss, never an error
        warnings.warn(f"ignoring unreadable cached matrix {path} ({type(err).__name__}: {err}); rebuilding it",
                      RuntimeWarning, stacklevel=2)
        _remove(path)
        return None
    try:
        os.utime(path)  # least recently *used* is what the size bound evicts
    except OSError:
        pass
    return out


def store(name: str, matrices: tuple) -> Path | None:
    """Write ``matrices`` (CSR tensors) under ``name`` atomically, then trim the folder to
    :func:`max_bytes`. Returns the path, or ``None`` when switched off, too big, or not writable
    (a warning says why: the cache is an optimisation, never a reason to fail)."""
    folder = cache_dir()
    if folder is None:
        return None
    payload = {"format": FORMAT, "key": name, "matrices": [_parts(m) for m in matrices]}
    size = sum(t.numel() * t.element_size() for m in payload["matrices"] for t in m.values()
               if isinstance(t, torch.Tensor))
    limit = max_bytes()
    # No self-eviction in a scan (as in matrix_cache): a cone matrix's blocks are read in order on every
    # call, so evicting one block of the same matrix to store the next would miss (and write) every time;
    # the first blocks that fit stay, the others are rebuilt.
    group = _group(name)
    siblings = sum(s for p, s, _ in entries() if _group(p.stem) == group and p.stem != name)
    if size + siblings > limit:
        return None
    path = folder / (name + _SUFFIX)
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name[:16]}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
        warnings.warn(f"could not write the matrix cache in {folder} ({getattr(err, 'strerror', None) or err}); "
                      "the matrix is rebuilt by the next process (set TOMODIFF_CACHE to a writable folder, or off)",
                      RuntimeWarning, stacklevel=2)
        return None
    finally:
        if tmp is not None:
            _remove(Path(tmp))
    trim(limit, keep=group)
    return path


def entries() -> list[tuple[Path, int, float]]:
    """``(path, bytes, last use)`` of every stored matrix file, least recently used first."""
    folder = cache_dir()
    if folder is None or not folder.is_dir():
        return []
    out = []
    for p in folder.glob("*" + _SUFFIX):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p, st.st_size, st.st_mtime))
    return sorted(out, key=lambda e: e[2])


def total_bytes() -> int:
    return sum(size for _, size, _ in entries())


def trim(limit: int | None = None, keep: str | None = None) -> int:
    """Remove least recently used files until the folder holds at most ``limit`` bytes (default
    :func:`max_bytes`); the files of group ``keep`` (see :func:`key`) go last. Also removes temporary
    files older than an hour (left by a killed writer). Returns the bytes freed."""
    limit = max_bytes() if limit is None else limit
    files = entries()
    folder = cache_dir()
    freed = 0
    if folder is not None and folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            try:
                if time.time() - tmp.stat().st_mtime > 3600:
                    freed += tmp.stat().st_size
                    _remove(tmp)
            except OSError:
                pass
    total = sum(size for _, size, _ in files)
    order = ([e for e in files if _group(e[0].stem) != keep] + [e for e in files if _group(e[0].stem) == keep])
    for path, size, _ in order:
        if total <= limit:
            break
        _remove(path)
        total -= size
        freed += size
    return freed


def clear() -> tuple[int, int]:
    """Remove every cached matrix (and leftover temporary files); returns ``(files, bytes)`` removed."""
    folder = cache_dir()
    n = size = 0
    if folder is None or not folder.is_dir():
        return 0, 0
    for p in list(folder.glob("*" + _SUFFIX)) + list(folder.glob(".*.tmp")):
        try:
            s = p.stat().st_size
        except OSError:
            continue
        if _remove(p):
            n, size = n + 1, size + s
    return n, size


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return False


def _parts(m: torch.Tensor) -> dict:
    m = m.to("cpu")
    return {"crow": m.crow_indices(), "col": m.col_indices(), "values": m.values(), "shape": list(m.shape)}


def _csr(d: dict) -> torch.Tensor:
    crow, col, values, shape = d["crow"], d["col"], d["values"], tuple(d["shape"])
    if crow.numel() != shape[0] + 1 or col.numel() != values.numel() or int(crow[-1]) != values.numel():
        raise ValueError("inconsistent CSR arrays")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(crow, col, values, size=shape, check_invariants=False)
