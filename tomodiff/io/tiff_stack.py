"""Scans written as TIFF stacks: a folder (or glob) of projections, flats and darks, angles apart.

Beamlines and lab CT systems often write one TIFF file per projection, with flat (open beam) and
dark frames in their own folders and the angles in a text file. This module reads such a scan into
the same :class:`~tomodiff.io.scans.RawScan` as the HDF5 readers, so that normalisation, −log,
thinning and the geometry work the same way for both.

- Images: every file named by a folder (``*.tif``/``*.tiff`` in it), a glob pattern or one file.
  Files are taken in natural order (``p_2.tif`` before ``p_10.tif``); a multi-page file contributes
  all its pages. Every image of a scan must have one shape ``(V, U)`` (detector rows, columns) and
  one dtype; greyscale only.
- Angles: ``START:STOP:COUNT`` in degrees (``COUNT`` angles from ``START`` to ``STOP`` inclusive, as
  :func:`numpy.linspace`), or a text file of angles in degrees, whitespace- or comma-separated,
  ``#`` starting a comment.
- A scan folder: a folder with subfolders for projections (``proj``, ``projections``, ``tomo``,
  ``data``), flats (``flat``, ``flats``, ``white``, ``flatfield``) and darks (``dark``, ``darks``,
  ``darkfield``) and an angles file (``angles.txt``, ``theta.txt``); see :func:`scan_folder`.

Every inconsistency raises :class:`~tomodiff.io.scans.ScanFormatError` with a one-line message that
names the offending file.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .angle_spec import parse_angle_spec
from .scans import RawScan, ScanFormatError

TIFF_SUFFIXES = (".tif", ".tiff")
PROJECTION_DIRS = ("proj", "projections", "tomo", "data")
FLAT_DIRS = ("flat", "flats", "white", "whites", "flatfield")
DARK_DIRS = ("dark", "darks", "darkfield")
ANGLE_FILES = ("angles.txt", "theta.txt", "angles.csv")


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def tiff_files(spec) -> list[Path]:
    """The TIFF files a folder, glob pattern or file names, in natural order.

    Raises :class:`FileNotFoundError` for a missing folder or file, :class:`ScanFormatError` when a
    folder or glob holds no TIFF file.
    """
    text = str(spec)
    if _is_glob(text) and not Path(text).exists():  # a folder named scan[1] is a folder, not a pattern
        files = [Path(p) for p in glob.glob(text) if Path(p).is_file()]
        if not files:
            raise ScanFormatError(f"{text}: the pattern matches no files")
    else:
        path = Path(text)
        if path.is_dir():
            files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES]
            if not files:
                raise ScanFormatError(f"{path}: the folder holds no .tif/.tiff files")
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(files, key=_natural_key)


def _read_one(path: Path) -> np.ndarray:
    """The images of one TIFF file as ``(n, V, U)``."""
    import tifffile  # start-up time: tifffile (~30 ms) stays out of `tomodiff --help`, which imports tomodiff.io

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, arr = series.axes, series.asarray()
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as err:
        raise ScanFormatError(f"{path}: not a readable TIFF file ({err})") from err
    if "S" in axes:
        raise ScanFormatError(f"{path}: a colour image (axes {axes}, shape {arr.shape}); expected greyscale")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ScanFormatError(f"{path}: dtype {arr.dtype}, expected integers or floats")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise ScanFormatError(f"{path}: shape {arr.shape}, expected a 2D image or a stack of them")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ScanFormatError(f"{path}: {int((~np.isfinite(arr)).sum())} NaN/Inf values")
    return arr


def read_tiff_images(spec) -> tuple[np.ndarray, list[Path]]:
    """All images named by ``spec`` as one ``(N, V, U)`` array (dtype as stored) and the file list.

    Raises :class:`ScanFormatError` naming the first file whose shape or dtype differs from the
    first file's.
    """
    files = tiff_files(spec)
    stacks = []
    for path in files:
        arr = _read_one(path)
        if stacks:
            ref, first = stacks[0], files[0]
            if arr.shape[1:] != ref.shape[1:]:
                raise ScanFormatError(f"{path}: image shape {arr.shape[1:]} differs from {first.name}'s "
                                      f"{ref.shape[1:]}; every image of a stack must have one shape")
            if arr.dtype != ref.dtype:
                raise ScanFormatError(f"{path}: dtype {arr.dtype} differs from {first.name}'s {ref.dtype}; "
                                      f"every image of a stack must have one dtype")
        stacks.append(arr)
    return np.concatenate(stacks, axis=0), files


def parse_angles(spec, *, where: str = "--angles") -> np.ndarray:
    """Angles in radians ``(A,)`` from ``START:STOP:COUNT[deg|rad]`` (degrees unless suffixed, both ends
    included) or a text file of angles in degrees (:func:`tomodiff.io.angle_spec.parse_angle_spec`)."""
    return parse_angle_spec(spec, where=where)


def read_tiff_stack(projections, *, angles, flats=None, darks=None) -> RawScan:
    """A scan from TIFF stacks.

    projections, flats, darks: a folder, glob pattern or file each (flats and darks optional);
    angles: ``START:STOP:COUNT`` in degrees, a text file of degrees, or an array of radians ``(A,)``.
    Returns a :class:`RawScan` with float32 counts ``(A, V, U)``, flats and darks ``(N, V, U)``,
    angles in radians.
    """
    if isinstance(angles, (str, Path)):  # before the images are read: a bad COUNT fails at once
        where = f"{angles}" if Path(str(angles)).is_file() else f"--angles {angles}"
        theta = parse_angles(angles)
    else:
        where, theta = "the angles given", np.asarray(angles, np.float64)
        if theta.ndim != 1:
            raise ValueError(f"angles must be 1D (A,), got shape {theta.shape}")
    proj, proj_files = read_tiff_images(projections)
    if theta.shape[0] != proj.shape[0]:
        src = proj_files[0].parent if len(proj_files) > 1 else proj_files[0]
        raise ScanFormatError(f"{src}: {proj.shape[0]} projection images but {theta.shape[0]} angles "
                              f"({where}); they must match")
    frames = {}
    for name, spec in (("flat", flats), ("dark", darks)):
        if spec is None:
            frames[name] = np.zeros((0, *proj.shape[1:]), np.float32)
            continue
        arr, files = read_tiff_images(spec)
        if arr.shape[1:] != proj.shape[1:]:
            raise ScanFormatError(f"{files[0]}: {name} image shape {arr.shape[1:]} differs from the projections' "
                                  f"{proj.shape[1:]} ({proj_files[0].name})")
        frames[name] = arr
    f32 = np.float32
    return RawScan(proj.astype(f32), frames["flat"].astype(f32), frames["dark"].astype(f32), theta,
                   source=f"{projections} (TIFF stack)")


@dataclass(frozen=True)
class ScanFolder:
    """Where the parts of a TIFF scan folder are: projections folder, flats/darks folders (or
    ``None``) and the angles file."""

    projections: Path
    angles: Path
    flats: Path | None = None
    darks: Path | None = None

    def read(self) -> RawScan:
        return read_tiff_stack(self.projections, angles=self.angles, flats=self.flats, darks=self.darks)


def _child(folder: Path, names, *, is_dir: bool) -> Path | None:
    entries = {p.name.lower(): p for p in folder.iterdir() if (p.is_dir() if is_dir else p.is_file())}
    return next((entries[n] for n in names if n in entries), None)


def scan_folder(path) -> ScanFolder | None:
    """The layout of a TIFF scan folder, or ``None`` if ``path`` is not one (never raises).

    A scan folder holds an angles file (``angles.txt``, ``theta.txt``, ``angles.csv``) and either a
    projections subfolder (``proj``, ``projections``, ``tomo``, ``data``) beside optional ``flat``/``dark``
    subfolders, or the projection TIFFs themselves.
    """
    try:
        folder = Path(path)
        if not folder.is_dir():
            return None
        angles = _child(folder, ANGLE_FILES, is_dir=False)
        if angles is None:
            return None
        proj = _child(folder, PROJECTION_DIRS, is_dir=True)
        if proj is None:
            if not any(p.suffix.lower() in TIFF_SUFFIXES for p in folder.iterdir()):
                return None
            proj = folder
        return ScanFolder(projections=proj, angles=angles, flats=_child(folder, FLAT_DIRS, is_dir=True),
                          darks=_child(folder, DARK_DIRS, is_dir=True))
    except OSError:
        return None


def write_tiff_stack(folder, images, *, prefix: str = "img") -> list[Path]:
    """Write ``images`` ``(N, V, U)`` as ``folder/{prefix}_0000.tif`` … (one 2D image per file, dtype as
    given); returns the paths. For tests and examples: the layout beamlines write."""
    import tifffile  # start-up time: tifffile (~30 ms) stays out of `tomodiff --help`, which imports tomodiff.io

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(np.asarray(images)):
        path = folder / f"{prefix}_{i:04d}.tif"
        tifffile.imwrite(path, img)
        paths.append(path)
    return paths
