"""Readers for measured scans (DXchange, NXtomo) and their normalisation to line integrals.

Raw scans come as photon counts with flat (open beam) and dark frames; the projector needs line
integrals ``p = −log((I − D) / (F − D))``. Everything is returned in tomodiff's layout:
projections ``(A, V, U)`` (angle, detector row, detector column), angles in radians.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

#: at most this share of a detector's pixels may have flat − dark <= 0 and be treated as dead
#: (``clamp_gain``); more means flats and darks that cannot be right (swapped, empty, of another scan)
MAX_DEAD_FRACTION = 0.05


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


def check_angle_units(values, units: str, where: str) -> None:
    """Warn when angles look like the other unit (``units``: ``"deg"`` or ``"rad"``, what they are
    read as): degrees that all lie within ±2π and span at least π/2 (a scan over 1.6–6.3°: radians
    over half a turn or more), or radians spanning about 180 or 360 (29 or 57 turns). Both are
    possible scans, but a wrong unit is far more likely."""
    v = np.asarray(values, np.float64)
    if v.size < 2 or not np.isfinite(v).all():
        return
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo
    if units == "deg" and max(abs(lo), abs(hi)) <= 2 * np.pi * 1.01 and span >= 0.5 * np.pi:
        warnings.warn(f"{where}: the angles run from {lo:g} to {hi:g}, read as degrees (a {span:.3g}° scan); they "
                      f"look like radians: give degrees (e.g. 0:180:181)", stacklevel=2)
    elif units == "rad" and any(abs(span - full) <= 0.1 * full for full in (180.0, 360.0)):
        warnings.warn(f"{where}: the angles run from {lo:g} to {hi:g}, read as radians ({span / (2 * np.pi):.0f} "
                      f"turns); they look like degrees: their units attribute should say degrees", stacklevel=2)


def _angles_rad(values, units: str | None, path: Path, key: str) -> np.ndarray:
    units = (units or "degrees").lower()
    if units in ("deg", "degree", "degrees"):
        check_angle_units(values, "deg", f"{path}: '{key}' (units {units})")
        return np.deg2rad(values.astype(np.float64))
    if units in ("rad", "radian", "radians"):
        check_angle_units(values, "rad", f"{path}: '{key}' (units {units})")
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


def check_gain(flat, dark, source: str, clamp_gain: float | None = None,
               max_dead: float = MAX_DEAD_FRACTION) -> None:
    """Refuse flat and dark frames (means, ``(V, U)``) that cannot be right: all-zero flats, or
    flat − dark non-positive at any pixel (without ``clamp_gain``) or at more than ``max_dead`` of
    the pixels (with it: darks brighter than flats, flats and darks swapped)."""
    if not np.any(flat):
        raise ScanFormatError(f"{source}: the flat (open-beam) frames are all zero")
    bad = flat - dark <= 0
    n = int(bad.sum())
    if n == 0 or (clamp_gain is not None and n <= max_dead * bad.size):
        return
    r, c = np.argwhere(bad)[0]
    if clamp_gain is None:
        raise ScanFormatError(
            f"{source}: flat − dark is non-positive at {n} pixel(s) "
            f"(first at row {r}, col {c}); pass clamp_gain=1e-3 to treat them as dead pixels")
    raise ScanFormatError(
        f"{source}: flat − dark is non-positive at {n} of {bad.size} pixels (first at row {r}, col {c}): the flats "
        f"are not brighter than the darks (swapped? flats of another scan?); at most {max_dead:.0%} of the pixels "
        f"can be dead")


def normalize(scan: RawScan, *, air_region=None, min_transmission: float = 1e-4,
              clamp_gain: float | None = None, max_dead: float | None = MAX_DEAD_FRACTION) -> np.ndarray:
    """Line integrals ``−log((I − D̄) / (F̄ − D̄))`` of shape ``(A, V, U)``, float32.

    D̄, F̄ are the mean dark and flat frames (zero dark / no normalisation if absent).
    ``air_region=(rows, cols)`` (slices) rescales each projection so that its median transmission
    there is 1 — for flats brighter than open air. Transmission is clipped below at
    ``min_transmission`` before the log. Non-positive ``F − D`` (a dead pixel, or flats and darks
    swapped) raises unless ``clamp_gain`` is given, which raises the gain to at least that value at
    up to ``max_dead`` of the pixels (dead pixels; more raises: :func:`check_gain`). ``max_dead=None``:
    the frames were checked already (for the whole detector, when a streamed file was opened).
    """
    dark = scan.darks.mean(axis=0) if scan.darks.shape[0] else np.zeros(scan.projections.shape[1:], np.float32)
    if scan.flats.shape[0]:
        flat = scan.flats.mean(axis=0)
        if max_dead is not None or clamp_gain is None:
            check_gain(flat, dark, scan.source, clamp_gain, max_dead if max_dead is not None else MAX_DEAD_FRACTION)
        gain = flat - dark if clamp_gain is None else np.maximum(flat - dark, clamp_gain)
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
