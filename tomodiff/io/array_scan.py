"""Scans saved as numpy arrays: ``.npz`` archives and bare ``.npy`` sinograms.

An ``.npz`` holds either line integrals or raw counts, and its angles:

- ``sinogram``: line integrals ``(A, U)`` or ``(A, V, U)`` (angle, [detector row,] column), or
- ``proj`` (also ``projections``, ``data``): counts of the same layout, with optional ``flat``/``flats``
  and ``dark``/``darks`` frames: one ``(V, U)`` frame or a stack ``(N, V, U)`` (``(U,)``/``(N, U)``
  for a 2D ``proj``);
- ``angles_deg`` or ``angles_rad`` ``(A,)`` (an ``angles`` key without units is refused); ``--angles``
  instead when the archive has none.

A ``.npy`` is a bare sinogram of line integrals and needs ``--angles``. Diamond's I13 test scan
(``24737_raw.npz``: ``proj`` uint16 ``(91, 135, 160)``, one ``flat`` and ``dark`` ``(135, 160)``,
``angles_deg``) is this layout. Every problem raises :class:`~tomodiff.io.scans.ScanFormatError`
(one line, naming the file) before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .angle_spec import parse_angle_spec, to_radians
from .scans import RawScan, ScanFormatError, thin_indices

ARRAY_SUFFIXES = (".npy", ".npz")
_COUNTS = ("proj", "projections", "data")
_FLATS = ("flat", "flats")
_DARKS = ("dark", "darks")


@dataclass(frozen=True)
class LineIntegrals:
    """A sinogram that is line integrals already (no flats or darks).

    lines: ``(A, V, U)`` float32 (a 2D sinogram has ``V = 1``); angles: ``(A,)`` radians;
    source: the file it came from.
    """

    lines: np.ndarray
    angles: np.ndarray
    source: str = ""

    @property
    def n_angles(self) -> int:
        return self.lines.shape[0]

    def thin(self, step: int | None = None, indices=None) -> "LineIntegrals":
        """Keep every ``step``-th projection, or the given ``indices``."""
        idx = thin_indices(self.n_angles, step=step, indices=indices)
        return replace(self, lines=self.lines[idx], angles=self.angles[idx])

    def rows(self, sel: slice) -> "LineIntegrals":
        return replace(self, lines=self.lines[:, sel])


def _numeric(arr, path, key) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "uif":
        raise ScanFormatError(f"{path}: '{key}' has dtype {arr.dtype}, expected integers or floats")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ScanFormatError(f"{path}: '{key}' contains {int((~np.isfinite(arr)).sum())} NaN/Inf values")
    return arr


def _as_3d(arr, path, key) -> np.ndarray:
    if arr.ndim == 2:
        return arr[:, None, :]
    if arr.ndim != 3:
        raise ScanFormatError(f"{path}: '{key}' has shape {arr.shape}; expected (angles, columns) or "
                              "(angles, rows, columns)")
    return arr


def _frames(z, names, proj3, two_d: bool, path) -> np.ndarray:
    key = next((k for k in names if k in z), None)
    if key is None:
        return np.zeros((0, *proj3.shape[1:]), np.float32)
    f = _numeric(z[key], path, key).astype(np.float32)
    one = f.ndim == (1 if two_d else 2)
    f = f[None] if one else f
    f = f[:, None, :] if two_d else f
    if f.ndim != 3 or f.shape[1:] != proj3.shape[1:]:
        want = "(U,) or (N, U)" if two_d else "(V, U) or (N, V, U)"
        raise ScanFormatError(f"{path}: '{key}' has shape {np.shape(z[key])}; expected {want} matching the "
                              f"projections {proj3.shape[1:] if not two_d else proj3.shape[2:]}")
    return f


def _angles(z, path, n: int, angles) -> np.ndarray:
    keys = [k for k in ("angles_deg", "angles_rad") if k in z]
    if "angles" in z and not keys:
        raise ScanFormatError(f"{path}: 'angles' has no units; name it angles_deg or angles_rad")
    if len(keys) == 2:
        raise ScanFormatError(f"{path}: holds both angles_deg and angles_rad; keep one")
    if keys and angles is not None:
        raise ScanFormatError(f"{path}: holds its own angles ('{keys[0]}'); --angles does not apply")
    if keys:
        k = keys[0]
        theta = _numeric(z[k], path, k)
        if theta.ndim != 1:
            raise ScanFormatError(f"{path}: '{k}' has shape {theta.shape}; expected (angles,)")
        theta = to_radians(theta, k[-3:], f"{path}: '{k}'")
    elif angles is None:
        raise ScanFormatError(f"{path}: no angles (keys angles_deg or angles_rad); give --angles "
                              "START:STOP:COUNT[deg|rad] or an angles file")
    else:
        theta = parse_angle_spec(angles) if isinstance(angles, (str, Path)) else np.asarray(angles, np.float64)
    if theta.shape[0] != n:
        raise ScanFormatError(f"{path}: {n} projections but {theta.shape[0]} angles; they must match")
    return theta


def read_array_scan(path, *, angles=None) -> RawScan | LineIntegrals:
    """The scan in an ``.npz`` or ``.npy`` file (see the module docstring).

    angles: ``START:STOP:COUNT[deg|rad]``, an angles file, or radians ``(A,)``, for files without
    angles of their own. Returns a :class:`~tomodiff.io.scans.RawScan` (counts) or
    :class:`LineIntegrals`, both ``(A, V, U)`` with angles in radians.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ScanFormatError(f"{path}: not a readable numpy file ({str(err).splitlines()[0]})") from None
    if isinstance(z, np.ndarray):  # .npy: a bare sinogram of line integrals
        arr = _as_3d(_numeric(z, path, "array"), path, "array")
        if angles is None:
            raise ScanFormatError(f"{path}: a bare .npy sinogram has no angles; give --angles "
                                  "START:STOP:COUNT[deg|rad] or an angles file")
        return LineIntegrals(arr.astype(np.float32), _angles({}, path, arr.shape[0], angles), f"{path} (npy)")
    with z:
        keys = set(z.files)
        counts = [k for k in _COUNTS if k in keys]
        if "sinogram" in keys and counts:
            raise ScanFormatError(f"{path}: holds both 'sinogram' (line integrals) and '{counts[0]}' (counts); "
                                  "keep one")
        if "sinogram" in keys:
            if keys & {*_FLATS, *_DARKS}:
                raise ScanFormatError(f"{path}: 'sinogram' holds line integrals; flats and darks go with 'proj' "
                                      "(counts)")
            arr = _as_3d(_numeric(z["sinogram"], path, "sinogram"), path, "sinogram").astype(np.float32)
            return LineIntegrals(arr, _angles(z, path, arr.shape[0], angles), f"{path} (npz)")
        if not counts:
            raise ScanFormatError(f"{path}: keys {sorted(keys)}; expected 'sinogram' (line integrals) or 'proj' "
                                  "(counts, with optional 'flat'/'dark')")
        raw = _numeric(z[counts[0]], path, counts[0])
        two_d = raw.ndim == 2
        proj = _as_3d(raw, path, counts[0]).astype(np.float32)
        flats = _frames(z, _FLATS, proj, two_d, path)
        darks = _frames(z, _DARKS, proj, two_d, path)
        theta = _angles(z, path, proj.shape[0], angles)
    return RawScan(proj, flats, darks, theta, source=f"{path} (npz)")
