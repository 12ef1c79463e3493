"""A CT problem from a file: line integrals, geometry, and what the file knows about them.

:func:`load_problem` reads a tomodiff project file (from ``tomodiff simulate``: sinogram, geometry,
maybe a reference volume, the noise level and the attenuation maximum it was simulated with), a
measured DXchange / NXtomo scan, or a stack of TIFF projections (with flats, darks and angles), and
returns a :class:`Problem` in tomodiff's conventions: ``y`` ``(1, 1, A, V, U)`` and a parallel-beam
geometry in world units. Raw counts are flat/dark-normalised to line integrals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..ct import Geometry, parallel_beam, thin_sinogram
from .kind import probe
from .project_file import ProjectFileError, geometry_from, read_project, recorded_mu_max, require
from .scans import normalize, read_scan
from .tiff_stack import TIFF_SUFFIXES, read_tiff_stack, scan_folder

#: options that only raw scans take (a project file holds its own geometry), and only TIFF stacks
RAW_SCAN_OPTIONS = ("center_offset", "rows", "pixel_size", "voxel_size")
TIFF_OPTIONS = ("flats", "darks", "angles")


@dataclass(frozen=True)
class Problem:
    """y: ``(1, 1, A, V, U)`` float32 line integrals; geometry; reference: ``(Z, Y, X)`` or ``None``;
    sigma_y, mu_max: the noise std and the attenuation maximum a simulated file records (``None``
    for measured scans); kind: ``"project" | "scan" | "tiff"``."""

    y: torch.Tensor
    geometry: Geometry
    reference: np.ndarray | None = None
    sigma_y: float | None = None
    mu_max: float | None = None
    kind: str = "project"


def file_kind(path) -> str:
    """``"tiff"`` for a folder, a glob or a ``.tif`` file, else what :func:`tomodiff.io.kind.probe`
    says (``"project"`` or ``"scan"``)."""
    text = str(path)
    if Path(path).is_dir() or Path(path).suffix.lower() in TIFF_SUFFIXES:
        return "tiff"
    if not Path(path).exists() and any(c in text for c in "*?["):  # an existing name is taken as it is
        return "tiff"
    return probe(path)


def _check_thin(thin: int, n_angles: int) -> None:
    if thin >= n_angles:
        raise ValueError(f"--thin {thin} keeps 1 of the {n_angles} angles; use a smaller step")


def _project(path, thin: int) -> Problem:
    data = read_project(path)
    sino = require(data, "sinogram", path)
    geometry = geometry_from(require(data, "geometry", path), path)
    if sino.dtype.kind not in "uif":
        raise ProjectFileError(f"{path}: '/sinogram' has dtype {sino.dtype}; expected real numbers")
    if tuple(sino.shape) != tuple(geometry.sino_shape):
        raise ProjectFileError(f"{path}: '/sinogram' has shape {tuple(sino.shape)}, its geometry "
                               f"{tuple(geometry.sino_shape)} (angles, [rows,] columns)")
    if not np.isfinite(sino).all():
        raise ProjectFileError(f"{path}: '/sinogram' contains {int((~np.isfinite(sino)).sum())} NaN/Inf values")
    y = torch.from_numpy(np.asarray(sino, np.float32))[None, None]
    if thin > 1:
        _check_thin(thin, geometry.n_angles)
        y, geometry = thin_sinogram(y, geometry, step=thin)
    return Problem(y, geometry, data.reference, data.provenance.get("sigma_y"), recorded_mu_max(data.provenance))


def _tiff_scan(path, flats, darks, angles):
    layout = scan_folder(path) if Path(path).is_dir() else None
    if layout is not None and not (flats or darks or angles):
        return layout.read()  # a scan folder: proj/, flat/, dark/, angles.txt
    if not angles:
        raise ValueError(f"{path}: a TIFF stack needs --angles START:STOP:COUNT (degrees) or an angles file")
    return read_tiff_stack(path, angles=angles, flats=flats, darks=darks)


def _raw(scan, thin: int, rows, pixel_size, voxel_size, center_offset) -> tuple[torch.Tensor, Geometry]:
    if thin > 1:
        _check_thin(thin, scan.n_angles)
        scan = scan.thin(step=thin)
    if rows is not None:  # normalise only the rows asked for
        scan = replace(scan, projections=scan.projections[:, rows], flats=scan.flats[:, rows],
                       darks=scan.darks[:, rows])
    p = normalize(scan, clamp_gain=1e-3)
    _, V, U = p.shape
    pixel = pixel_size or 1.0
    voxel = voxel_size or pixel
    n_xy, n_z = max(1, round(U * pixel / voxel)), max(1, round(V * pixel / voxel))
    geometry = parallel_beam((n_z, n_xy, n_xy), scan.angles, det_shape=(V, U), voxel_size=voxel,
                             det_spacing=pixel, center_offset=center_offset or 0.0)
    return torch.from_numpy(p)[None, None], geometry


def load_problem(path, *, kind: str | None = None, thin: int = 1, rows=None, pixel_size=None, voxel_size=None,
                 center_offset=None, flats=None, darks=None, angles=None) -> Problem:
    """The :class:`Problem` in ``path`` (see the module docstring).

    kind: from :func:`file_kind` when not given. thin: keep every thin-th angle. Raw scans only:
    rows (a ``slice`` of detector rows, or a callable ``rows(n_rows) -> slice`` to resolve against
    the scan's row count), pixel_size and voxel_size (world units; the volume gets
    ``round(columns·pixel/voxel)`` voxels across), center_offset (pixels). TIFF stacks: flats,
    darks (folders or globs) and angles (``START:STOP:COUNT`` in degrees, or a file).
    """
    kind = kind or file_kind(path)
    if kind == "project":
        return _project(path, thin)
    scan = _tiff_scan(path, flats, darks, angles) if kind == "tiff" else read_scan(path)
    if callable(rows):
        rows = rows(scan.projections.shape[1])
    y, geometry = _raw(scan, thin, rows, pixel_size, voxel_size, center_offset)
    return Problem(y, geometry, kind=kind)
