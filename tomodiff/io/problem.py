"""A CT problem from a file: line integrals, geometry, and what the file knows about them.

:func:`load_problem` reads a tomodiff project file (from ``tomodiff simulate``: sinogram, geometry,
maybe a reference volume, the noise level and the attenuation maximum it was simulated with), a
measured DXchange / NXtomo scan, a stack of TIFF projections (with flats, darks and angles), or a
numpy ``.npy``/``.npz`` scan (:mod:`tomodiff.io.array_scan`), and returns a :class:`Problem` in
tomodiff's conventions: ``y`` ``(1, 1, A, V, U)`` (``(1, 1, A, U)`` for a 2D fan beam) and a geometry
in world units (:class:`tomodiff.io.beam.Beam`: parallel, fan or cone). Measured data go through
one chain: raw counts are flat/dark-normalised to line integrals (optionally on an air region),
stripes/rings and zingers are removed (:mod:`tomodiff.io.rings`), and the centre of rotation is
estimated (``center_offset="auto"``, :mod:`tomodiff.io.center`) or, when none is given, checked
cheaply (a warning when the axis looks off-centre). What was done is in ``Problem.preprocessing``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..ct import Geometry, thin_sinogram
from .array_scan import LineIntegrals, read_array_scan
from .beam import Beam
from .kind import ARRAY_SUFFIXES, probe, probe_array
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
    for measured scans); kind: ``"project" | "scan" | "tiff" | "array"``; preprocessing: what the
    measured-data chain did (normalisation, rings, centre, beam), for the provenance (``None`` for
    project files)."""

    y: torch.Tensor
    geometry: Geometry
    reference: np.ndarray | None = None
    sigma_y: float | None = None
    mu_max: float | None = None
    kind: str = "project"
    preprocessing: dict | None = None
    #: per-ray variance of ``y`` (``y[0, 0]``'s shape, float32) from the counts of a raw scan with flats
    #: (:func:`tomodiff.io.noise.scan_variance`; the noise model, gain and its rule, is in
    #: ``preprocessing["noise_model"]``); ``None`` where unknown (project files, line integrals)
    variance: np.ndarray | None = None


def file_kind(path) -> str:
    """``"tiff"`` for a folder, a glob or a ``.tif`` file, ``"array"`` for a ``.npy``/``.npz`` file,
    else what :func:`tomodiff.io.kind.probe` says (``"project"`` or ``"scan"``)."""
    text = str(path)
    if Path(path).is_dir() or Path(path).suffix.lower() in TIFF_SUFFIXES:
        return "tiff"
    if Path(path).suffix.lower() in ARRAY_SUFFIXES:
        return probe_array(path)
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
        raise ValueError(f"{path}: a TIFF stack needs --angles START:STOP:COUNT[deg|rad] or an angles file")
    return read_tiff_stack(path, angles=angles, flats=flats, darks=darks)


def _line_integrals(scan, rows, air_region) -> tuple[np.ndarray, dict]:
    """``(p, record)``: the scan's line integrals ``(A, V, U)`` for ``rows`` and how they were made."""
    if isinstance(scan, LineIntegrals):
        if air_region is not None:
            raise ValueError(f"{scan.source}: --air-region applies to raw counts; this file holds line integrals")
        return (scan.lines if rows is None else scan.lines[:, rows]), {"input": "line integrals"}
    if rows is not None:  # normalise only the rows asked for
        scan = replace(scan, projections=scan.projections[:, rows], flats=scan.flats[:, rows],
                       darks=scan.darks[:, rows])
    p = normalize(scan, clamp_gain=1e-3, air_region=air_region)
    record = {"input": "counts", "flats": int(scan.flats.shape[0]), "darks": int(scan.darks.shape[0]),
              "air_region": None if air_region is None else [[s.start, s.stop] for s in air_region]}
    return p, record


def _center(p, angles, beam: Beam, center_offset, source: str) -> tuple[Beam, dict]:
    from .center import check_centered, estimate_center  # start-up time: algotom on demand

    if center_offset == "auto":
        if beam.kind != "parallel":
            raise ValueError(f"{source}: --center-offset auto is for parallel beam (the centre search assumes "
                             "parallel rays); give the offset in pixels")
        est = estimate_center(p, angles, where=source)
        return replace(beam, center_offset=est.offset_px), {"rule": "auto", **est.as_dict()}
    if center_offset is None and beam.kind == "parallel":
        check_centered(p, angles, source)
    return replace(beam, center_offset=float(center_offset or 0.0)), {"rule": "given" if center_offset is not None
                                                                      else "default 0"}


def _raw(scan, thin: int, rows, beam: Beam, center_offset, rings=None, air_region=None):
    """``(y, geometry, preprocessing)`` of a measured scan (:class:`RawScan` counts or
    :class:`LineIntegrals`)."""
    if thin > 1:
        _check_thin(thin, scan.n_angles)
        scan = scan.thin(step=thin)
    p, record = _line_integrals(scan, rows, air_region)
    if rings:
        from .rings import provenance, remove_rings  # start-up time: algotom on demand

        p = remove_rings(p, rings)
        record["rings"] = provenance(rings)
    beam, record["center"] = _center(p, scan.angles, beam, center_offset, scan.source)
    _, V, U = p.shape
    geometry = beam.geometry(scan.angles, (V, U))
    record["beam"] = beam.as_dict()
    y = torch.from_numpy(np.ascontiguousarray(p[:, 0] if geometry.ndim == 2 else p))[None, None]
    return y, geometry, record


def load_problem(path, *, kind: str | None = None, thin: int = 1, rows=None, pixel_size=None, voxel_size=None,
                 center_offset=None, flats=None, darks=None, angles=None, beam: Beam | None = None, rings=None,
                 air_region=None) -> Problem:
    """The :class:`Problem` in ``path`` (see the module docstring).

    kind: from :func:`file_kind` when not given. thin: keep every thin-th angle. Raw scans only:
    rows (a ``slice`` of detector rows, or a callable ``rows(n_rows) -> slice`` to resolve against
    the scan's row count), pixel_size and voxel_size (world units; the volume gets
    ``round(columns·pixel/M/voxel)`` voxels across, :mod:`tomodiff.io.beam`), center_offset (pixels,
    or ``"auto"``: estimated), beam (a :class:`~tomodiff.io.beam.Beam`: parallel by default;
    its pixel and voxel are replaced by pixel_size and voxel_size when those are given), rings (a
    :mod:`tomodiff.io.rings` chain such as ``"sort"``), air_region (``(rows, cols)`` slices where the
    transmission is rescaled to 1). TIFF stacks: flats, darks (folders or globs); TIFF stacks and
    numpy scans without angles: angles (``START:STOP:COUNT[deg|rad]``, or a file of degrees).
    """
    kind = kind or file_kind(path)
    if kind == "project":
        return _project(path, thin)
    if kind == "tiff":
        scan = _tiff_scan(path, flats, darks, angles)
    elif kind == "array":
        scan = read_array_scan(path, angles=angles)
    else:
        scan = read_scan(path)
    n_rows = scan.lines.shape[1] if isinstance(scan, LineIntegrals) else scan.projections.shape[1]
    if callable(rows):
        rows = rows(n_rows)
    beam = beam or Beam()
    if pixel_size is not None:
        beam = replace(beam, pixel=float(pixel_size))
    if voxel_size is not None:
        beam = replace(beam, voxel=float(voxel_size))
    y, geometry, record = _raw(scan, thin, rows, beam, center_offset, rings, air_region)
    variance, model = _count_variance(scan, thin, rows, two_d=y.dim() == 4)
    if model is not None:  # the gain and how it was found: the provenance says where σ_y came from
        record["noise_model"] = model.to_dict()
    return Problem(y, geometry, kind=kind, preprocessing=record, variance=variance)


def _count_variance(scan, thin: int, rows, *, two_d: bool):
    """``(variance, model)``: :func:`tomodiff.io.noise.scan_variance` of ``scan`` and the
    :class:`~tomodiff.io.noise.CountNoise` it used (gain fitted once, from every row of the flats);
    ``(None, None)`` for line integrals and scans without flats."""
    if isinstance(scan, LineIntegrals) or scan.flats.shape[0] == 0:
        return None, None
    from .noise import count_noise, line_integral_variance  # start-up time: scipy on demand

    model = count_noise(scan)
    if thin > 1:
        scan = scan.thin(step=thin)
    if rows is not None:
        scan = replace(scan, projections=scan.projections[:, rows], flats=scan.flats[:, rows],
                       darks=scan.darks[:, rows])
    var = line_integral_variance(scan, model=model)
    return (np.ascontiguousarray(var[:, 0]) if two_d else var), model
