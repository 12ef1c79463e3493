"""What kind of file a path is: a tomodiff project file, a measured scan, or neither (and why).

The one place that decides it, used by the CLI, the napari reader and the napari widget. Numpy
scans (``.npy``/``.npz``, :mod:`tomodiff.io.array_scan`) are checked by :func:`probe_array`, which
only the CLI uses (the napari reader takes HDF5 files).
"""

from __future__ import annotations

from pathlib import Path

import h5py


class FileKindError(ValueError):
    """A file tomodiff cannot read: missing, not HDF5, truncated/damaged, or of another layout."""


def check_hdf5(path) -> Path:
    """``path`` if it is a readable, complete HDF5 file, else FileNotFoundError /
    :class:`FileKindError` with a one-line message (missing, a directory, not HDF5, truncated)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FileKindError(f"{path}: is a directory, expected an HDF5 file")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as err:
        raise FileKindError(f"{path}: cannot be read ({err.strerror or _first_line(err)})") from err
    if not is_hdf5:
        raise FileKindError(f"{path}: not an HDF5 file (no HDF5 signature)")
    try:
        with h5py.File(path, "r"):
            pass
    except (OSError, RuntimeError) as err:
        raise FileKindError(f"{path}: damaged or truncated HDF5 file ({_first_line(err)})") from err
    return path


def probe(path) -> str:
    """``"project"`` or ``"scan"`` (DXchange/NXtomo), else :class:`FileKindError` (or
    ``FileNotFoundError``) with a one-line message naming the file and what is wrong with it."""
    path = check_hdf5(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == "tomodiff":
                return "project"
            if "exchange/data" in f or any(hasattr(g, "keys") and "instrument/detector/data" in g
                                           for g in f.values()):
                return "scan"
    except (OSError, KeyError, RuntimeError) as err:
        raise FileKindError(f"{path}: damaged HDF5 file ({_first_line(err)})") from err
    raise FileKindError(f"{path}: an HDF5 file, but neither a tomodiff project file (no format='tomodiff' "
                        "attribute) nor a DXchange (/exchange/data) or NXtomo (instrument/detector/data) scan")


ARRAY_SUFFIXES = (".npy", ".npz")
_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}


def probe_array(path) -> str:
    """``"array"`` for a ``.npy`` or ``.npz`` file that starts as one (numpy's or zip's signature),
    else FileNotFoundError / :class:`FileKindError` with a one-line message."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix not in _MAGIC:
        raise FileKindError(f"{path}: expected a .npy or .npz file")
    with open(path, "rb") as f:
        head = f.read(6)
    if not head.startswith(_MAGIC[suffix]):
        raise FileKindError(f"{path}: not a {suffix} file (no {'numpy' if suffix == '.npy' else 'zip'} signature)")
    return "array"


def file_kind(path) -> str | None:
    """``"project"``, ``"scan"`` or ``None`` (not a file tomodiff reads); never raises."""
    try:
        return probe(path)
    except (FileKindError, FileNotFoundError):
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
