"""Readers for measured scans (DXchange, NXtomo) and their normalisation to line integrals.

Raw scans come as photon counts with flat (open beam) and dark frames; the projector needs line
integrals ``p = −log((I − D) / (F − D))``. Everything is returned in tomodiff's layout:
projections ``(A, V, U)`` (angle, detector row, detector column), angles in radians.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np


class ScanFormatError(ValueError):
    """A scan file is missing a dataset or holds inconsistent or invalid data."""


@dataclass(frozen=True)
class RawScan:
    """Raw counts of one scan.

    projections: ``(A, V, U)`` float32 counts; flats, darks: ``(N, V, U)`` float32 (N ≥ 0);
    angles: ``(A,)`` radians; source: file (and format) it came from.
    """

    projections: np.ndarray
    flats: np.ndarray
    darks: np.ndarray
    angles: np.ndarray
    source: str = ""

    @property
    def n_angles(self) -> int:
        return self.projections.shape[0]

    def thin(self, step: int | None = None, indices=None) -> "RawScan":
        """Keep every ``step``-th projection, or the given ``indices`` (a sparse-view scan)."""
        idx = thin_indices(self.n_angles, step=step, indices=indices)
        return replace(self, projections=self.projections[idx], angles=self.angles[idx])


def thin_indices(n: int, *, step: int | None = None, indices=None) -> np.ndarray:
    """Indices of a sparse-view subset of ``n`` angles: every ``step``-th, or explicit ``indices``.

    The one thinning rule of tomodiff (:meth:`tomodiff.ct.Geometry.thin`): ``step`` a positive
    integer; ``indices`` non-empty, each in ``[0, n)`` (no negative indices).
    """
    from ..ct.geometry import _thin_indices  # start-up time: tomodiff.ct loads torch (~1.6 s)

    return np.asarray(_thin_indices(n, step, indices), dtype=np.int64)


def _dataset(f, key: str, path: Path, *, ndim=None):
    if key not in f:
        raise ScanFormatError(f"{path}: dataset '{key}' is missing")
    d = f[key]
    if not hasattr(d, "dtype"):
        raise ScanFormatError(f"{path}: '{key}' is a group, expected a dataset")
    if not (np.issubdtype(d.dtype, np.integer) or np.issubdtype(d.dtype, np.floating)):
        raise ScanFormatError(f"{path}: dataset '{key}' has dtype {d.dtype}, expected integers or floats")
    arr = d[()]
    if ndim is not None and arr.ndim != ndim:
        raise ScanFormatError(f"{path}: dataset '{key}' has shape {arr.shape}, expected {ndim} dims")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ScanFormatError(f"{path}: dataset '{key}' contains {int((~np.isfinite(arr)).sum())} NaN/Inf values")
    return arr


def _angles_rad(values, units: str | None, path: Path, key: str) -> np.ndarray:
    units = (units or "degrees").lower()
    if units in ("deg", "degree", "degrees"):
        return np.deg2rad(values.astype(np.float64))
    if units in ("rad", "radian", "radians"):
        return values.astype(np.float64)
    raise ScanFormatError(f"{path}: '{key}' has units {units!r}, expected degrees or radians")


def _attr_str(obj, name):
    v = obj.attrs.get(name)
    return v.decode() if isinstance(v, bytes) else (None if v is None else str(v))


def _assemble(path, proj, flats, darks, angles, fmt) -> RawScan:
    if proj.shape[0] != angles.shape[0]:
        raise ScanFormatError(
            f"{path}: {proj.shape[0]} projections but {angles.shape[0]} angles; they must match")
    for name, frames in (("flat", flats), ("dark", darks)):
        if frames.shape[0] and frames.shape[1:] != proj.shape[1:]:
            raise ScanFormatError(
                f"{path}: {name} frames have shape {frames.shape[1:]}, projections {proj.shape[1:]}")
    f32 = np.float32
    return RawScan(proj.astype(f32), flats.astype(f32), darks.astype(f32), angles, source=f"{path} ({fmt})")


def read_dxchange(path) -> RawScan:
    """Read a DXchange file: ``/exchange/data``, ``data_white``, ``data_dark``, ``theta`` (degrees
    unless its ``units`` attribute says radians)."""
    import h5py  # start-up time: h5py (~50 ms) stays out of `tomodiff --help`, which imports tomodiff.io

    path = Path(path)
    with h5py.File(path, "r") as f:
        proj = _dataset(f, "exchange/data", path, ndim=3)
        flats = _dataset(f, "exchange/data_white", path, ndim=3) if "exchange/data_white" in f else proj[:0]
        darks = _dataset(f, "exchange/data_dark", path, ndim=3) if "exchange/data_dark" in f else proj[:0]
        theta = _dataset(f, "exchange/theta", path, ndim=1)
        angles = _angles_rad(theta, _attr_str(f["exchange/theta"], "units"), path, "exchange/theta")
    return _assemble(path, proj, flats, darks, angles, "DXchange")


def _find_nxtomo_entry(f, path):
    for name, group in f.items():
        if hasattr(group, "keys") and "instrument/detector/data" in group:
            return name
    raise ScanFormatError(f"{path}: no NXtomo entry with 'instrument/detector/data' found")


def read_nxtomo(path, entry: str | None = None) -> RawScan:
    """Read an NXtomo file: ``/<entry>/instrument/detector/{data,image_key}`` (0 projection,
    1 flat, 2 dark, 3 invalid) and ``/<entry>/sample/rotation_angle`` (degrees unless its
    ``units`` attribute says radians). ``entry`` defaults to the first group that has data."""
    import h5py  # start-up time: h5py (~50 ms) stays out of `tomodiff --help`, which imports tomodiff.io

    path = Path(path)
    with h5py.File(path, "r") as f:
        entry = entry or _find_nxtomo_entry(f, path)
        det = f"{entry}/instrument/detector"
        data = _dataset(f, f"{det}/data", path, ndim=3)
        key = _dataset(f, f"{det}/image_key", path, ndim=1)
        rot_key = f"{entry}/sample/rotation_angle"
        rot = _dataset(f, rot_key, path, ndim=1)
        units = _attr_str(f[rot_key], "units")
    if not (key.shape[0] == data.shape[0] == rot.shape[0]):
        raise ScanFormatError(f"{path}: data has {data.shape[0]} frames, image_key {key.shape[0]}, "
                              f"rotation_angle {rot.shape[0]}; they must match")
    unknown = set(np.unique(key).tolist()) - {0, 1, 2, 3}
    if unknown:
        raise ScanFormatError(f"{path}: image_key has unknown values {sorted(unknown)} (expected 0-3)")
    angles = _angles_rad(rot[key == 0], units, path, rot_key)
    return _assemble(path, data[key == 0], data[key == 1], data[key == 2], angles, "NXtomo")


def read_scan(path) -> RawScan:
    """Read a DXchange or NXtomo file, whichever layout it has."""
    import h5py  # start-up time: h5py (~50 ms) stays out of `tomodiff --help`, which imports tomodiff.io

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with h5py.File(path, "r") as f:
        is_dxchange = "exchange/data" in f
    return read_dxchange(path) if is_dxchange else read_nxtomo(path)


def normalize(scan: RawScan, *, air_region=None, min_transmission: float = 1e-4,
              clamp_gain: float | None = None) -> np.ndarray:
    """Line integrals ``−log((I − D̄) / (F̄ − D̄))`` of shape ``(A, V, U)``, float32.

    D̄, F̄ are the mean dark and flat frames (zero dark / no normalisation if absent).
    ``air_region=(rows, cols)`` (slices) rescales each projection so that its median transmission
    there is 1 — for flats brighter than open air. Transmission is clipped below at
    ``min_transmission`` before the log. Non-positive ``F − D`` (a dead pixel, or flats and darks
    swapped) raises unless ``clamp_gain`` is given, which raises the gain to at least that value.
    """
    dark = scan.darks.mean(axis=0) if scan.darks.shape[0] else np.zeros(scan.projections.shape[1:], np.float32)
    if scan.flats.shape[0]:
        gain = scan.flats.mean(axis=0) - dark
        if clamp_gain is not None:
            gain = np.maximum(gain, clamp_gain)
        bad = gain <= 0
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ScanFormatError(
                f"{scan.source}: flat − dark is non-positive at {int(bad.sum())} pixel(s) "
                f"(first at row {r}, col {c}); pass clamp_gain=1e-3 to treat them as dead pixels")
    else:
        gain = np.ones_like(dark)
    t = (scan.projections - dark) / gain
    if air_region is not None:
        rows, cols = air_region
        air = np.median(t[:, rows, cols], axis=(1, 2), keepdims=True)
        if (air <= 0).any():
            raise ScanFormatError(f"{scan.source}: the air region has non-positive transmission")
        t = t / air
    return (-np.log(np.clip(t, min_transmission, None))).astype(np.float32)
