"""tomodiff's HDF5 file: sinogram + geometry, reference volume, reconstruction, provenance.

Layout (readable with plain h5py; every dataset chunked and gzip-compressed)::

    /                         attrs: format="tomodiff", format_version, tomodiff_version
    /sinogram                 (A, U) or (A, V, U) float32 line integrals
                              attrs: one per geometry field (angles in radians, angles_units="rad"),
                                     geometry_json (the whole geometry, lossless)
    /reference                (Y, X) or (Z, Y, X) float32 ground truth / reference volume
    /reconstruction/mean      (Z, Y, X) posterior mean (or the classical reconstruction)
    /reconstruction/std       (Z, Y, X) per-voxel uncertainty: the calibrated std, k·std_raw
                              attrs: calibrated (bool), k, note, and where k was fitted
                                     (calibration_json: the whole record, as provenance["calibration"])
    /reconstruction/std_raw   (Z, Y, X) the posterior samples' own standard deviation
    /reconstruction/samples   (S, Z, Y, X) individual posterior samples
    /provenance               attrs: json (method, parameters, prior, seed, versions), plus the
                              top-level scalar entries as attributes for quick inspection

Writes are atomic (a temporary file renamed over the target), so an interrupted write never
leaves a half-written file where a good one was.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._version import __version__
from .atomic import atomic_h5, check_written

FORMAT = "tomodiff"
FORMAT_VERSION = 1
RECON_KEYS = ("mean", "std", "std_raw", "samples")
# the calibration record's entries that also become attributes of /reconstruction/std (the rest is in its JSON)
STD_ATTRS = ("calibrated", "k", "k_fitted", "method", "prior", "views", "views_fitted", "n_samples",
             "n_samples_fitted", "fitted_on", "note")


class ProjectFileError(ValueError):
    """A file is not a tomodiff project file or lacks what was asked for."""


@dataclass
class ProjectData:
    """In-memory content of a project file; any part may be ``None``."""

    sinogram: np.ndarray | None = None
    geometry: dict | None = None
    reference: np.ndarray | None = None
    reconstruction: dict = field(default_factory=dict)  # subset of RECON_KEYS -> arrays
    provenance: dict = field(default_factory=dict)

    @property
    def calibration(self) -> dict | None:
        """The record of the std's calibration (``provenance["calibration"]``: ``k``, ``calibrated``,
        ``note``, where it was fitted), ``None`` when the file has no std or does not record one."""
        c = self.provenance.get("calibration")
        return c if isinstance(c, dict) and "std" in self.reconstruction else None

    def geometry_object(self):
        """The geometry as a ``tomodiff.ct`` geometry object (needs ``tomodiff.ct``)."""
        if self.geometry is None:
            raise ProjectFileError("this file holds no geometry")
        from ..ct import Geometry  # start-up time: tomodiff.ct loads torch (~1.6 s); io needs numpy only

        return Geometry.from_dict(self.geometry)


def _json(text, path, what: str):
    try:
        return json.loads(text)
    except (TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise ProjectFileError(f"{path}: {what} is not valid JSON ({err})") from None


def geometry_from(d, path):
    """``Geometry.from_dict(d)``, with an error naming ``path`` when the stored geometry is not one."""
    from ..ct import Geometry  # start-up time: tomodiff.ct loads torch (~1.6 s); io needs numpy only

    if not isinstance(d, dict):
        raise ProjectFileError(f"{path}: the stored geometry is not a JSON object")
    try:
        return Geometry.from_dict(d)
    except (TypeError, KeyError, ValueError) as err:
        raise ProjectFileError(f"{path}: the stored geometry is not valid ({err})") from None


def _geometry_dict(geometry) -> dict | None:
    if geometry is None or isinstance(geometry, dict):
        return geometry
    if hasattr(geometry, "to_dict"):
        return geometry.to_dict()
    raise TypeError(f"geometry must be a dict or have .to_dict(), got {type(geometry).__name__}")


def _as_float_array(name, arr, ndims):
    if arr is None:
        return None
    if hasattr(arr, "detach"):
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dims, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(arr)).sum())} NaN/Inf values")
    return arr.astype(np.float32)


def _write_array(group, name, arr):
    chunks = tuple(min(s, 64) for s in arr.shape) if arr.size else None
    return group.create_dataset(name, data=arr, chunks=chunks, compression="gzip", compression_opts=4,
                                shuffle=True)


def write_geometry_attrs(d, geometry: dict) -> None:
    """A sinogram dataset's geometry attributes: the whole ``to_dict()`` as JSON, each field as its
    own attribute (angles in radians, said in ``angles_units``)."""
    d.attrs["geometry_json"] = json.dumps(_jsonable(geometry))
    for k, v in geometry.items():
        if v is not None:
            d.attrs[k] = np.asarray(v) if isinstance(v, (list, tuple)) else v
    if "angles" in geometry:
        d.attrs["angles_units"] = "rad"


def write_std_attrs(d, calibration: dict | None) -> None:
    """Attributes of a ``/reconstruction/std`` dataset from its calibration record (see :data:`STD_ATTRS`)."""
    if not calibration:
        return
    d.attrs["calibration_json"] = json.dumps(_jsonable(calibration))
    for key in STD_ATTRS:
        if calibration.get(key) is not None:
            d.attrs[key] = _jsonable(calibration[key])


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def write_project(path, data: ProjectData) -> Path:
    """Write ``data`` to ``path`` atomically (replacing any existing file) and return the path."""
    sino = _as_float_array("sinogram", data.sinogram, (2, 3))
    ref = _as_float_array("reference", data.reference, (2, 3))
    recon = {}
    for key, arr in data.reconstruction.items():
        if key not in RECON_KEYS:
            raise ValueError(f"unknown reconstruction entry {key!r}; expected one of {RECON_KEYS}")
        recon[key] = _as_float_array(f"reconstruction/{key}", arr, (3, 4) if key == "samples" else (2, 3))
    geometry = _geometry_dict(data.geometry)
    if geometry is not None and sino is not None and "angles" in geometry:
        if len(geometry["angles"]) != sino.shape[0]:
            raise ValueError(f"geometry has {len(geometry['angles'])} angles but the sinogram has "
                             f"{sino.shape[0]} projections (axis 0)")
    provenance = _jsonable(data.provenance or {})

    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, tomodiff_version=__version__)
        if sino is not None:
            d = _write_array(f, "sinogram", sino)
            d.attrs["axes"] = "angle,col" if sino.ndim == 2 else "angle,row,col"
            if geometry is not None:
                write_geometry_attrs(d, geometry)
        elif geometry is not None:
            f.attrs["geometry_json"] = json.dumps(_jsonable(geometry))
        check_written(f)  # a full disk stops the write here: the rest would wait in memory
        if ref is not None:
            _write_array(f, "reference", ref)
            check_written(f)
        if recon:
            g = f.create_group("reconstruction")
            for key, arr in recon.items():
                d = _write_array(g, key, arr)
                if key == "std":
                    write_std_attrs(d, provenance.get("calibration"))
                check_written(f)
        p = f.create_group("provenance")
        p.attrs["json"] = json.dumps(provenance)
        for k, v in provenance.items():
            if isinstance(v, (str, int, float, bool)):
                p.attrs[k] = v
    return path


def read_project(path) -> ProjectData:
    """Read a project file written by :func:`write_project` (all parts that are present)."""
    import h5py  # start-up time: h5py (~50 ms) stays out of `tomodiff --help`, which imports tomodiff.io

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ProjectFileError(f"{path}: not a tomodiff project file (attribute format={f.attrs.get('format')!r})")
        out = ProjectData()
        if "sinogram" in f:
            out.sinogram = f["sinogram"][()]
            gj = f["sinogram"].attrs.get("geometry_json")
            out.geometry = _json(gj, path, "the geometry of '/sinogram'") if gj is not None else None
        elif "geometry_json" in f.attrs:
            out.geometry = _json(f.attrs["geometry_json"], path, "the geometry attribute")
        if "reference" in f:
            out.reference = f["reference"][()]
        if "reconstruction" in f:
            out.reconstruction = {k: f["reconstruction"][k][()] for k in RECON_KEYS if k in f["reconstruction"]}
        if "provenance" in f:
            out.provenance = _json(f["provenance"].attrs.get("json", "{}"), path, "'/provenance'")
        cj = f["reconstruction/std"].attrs.get("calibration_json") if "reconstruction/std" in f else None
        if cj is not None and "calibration" not in out.provenance:  # a file whose provenance lost it
            out.provenance["calibration"] = _json(cj, path, "the calibration of '/reconstruction/std'")
    return out


def update_project(path, **parts) -> Path:
    """Replace some parts of an existing project file atomically (e.g. ``reconstruction=...``)."""
    data = read_project(path)
    for key, value in parts.items():
        if not hasattr(data, key):
            raise ValueError(f"unknown project part {key!r}")
        setattr(data, key, value)
    return write_project(path, data)


def require(data: ProjectData, part: str, path) -> object:
    """Return ``data.<part>`` or raise an error naming the file and the missing dataset."""
    value = getattr(data, part)
    if value is None or (isinstance(value, dict) and not value):
        raise ProjectFileError(f"{path}: dataset '/{part}' is missing")
    return value


def recorded_mu_max(provenance: dict | None) -> float | None:
    """The attenuation that maps to 1 when a file records it: ``provenance["mu_max"]`` (written by
    ``tomodiff simulate``: the simulated object's maximum), else ``None`` (estimate it instead)."""
    mu_max = (provenance or {}).get("mu_max")
    if isinstance(mu_max, (int, float)) and not isinstance(mu_max, bool) and math.isfinite(mu_max) and mu_max > 0:
        return float(mu_max)
    return None
