"""Read a sinogram a few detector rows at a time, never the whole file.

:func:`open_sinogram` gives a :class:`SinogramSource` over a tomodiff project file or a DXchange /
NXtomo scan; ``read(start, stop)`` returns line integrals ``(A, stop − start, U)`` for detector
rows ``start:stop`` (raw scans are flat/dark-normalised row block by row block). The streaming
path (:func:`tomodiff.recon.reconstruct_file`) reads its slabs through it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..ct import parallel_beam
from .project_file import FORMAT, ProjectFileError, _json, geometry_from, recorded_mu_max
from .scans import RawScan, ScanFormatError, _angles_rad, _attr_str, check_gain, normalize


class SinogramSource:
    """Line integrals of one file, read by detector rows. Use :func:`open_sinogram` (a context manager).

    geometry: the (thinned, row-cropped) geometry; shape: ``(A, V, U)``; sigma_y, mu_max: the noise
    level and attenuation maximum a simulated file records, or ``None``; has_reference /
    reference(start, stop): ``(stop − start, Y, X)`` slices of a reference volume when the file
    holds one; identity: what identifies the data (path, size, modification time, selection) for
    checkpoint keys.
    """

    def __init__(self, path, f, *, thin: int = 1, rows=None, center_offset: float = 0.0):
        self.path, self._f = Path(path), f
        if int(thin) != thin or thin < 1:
            raise ValueError(f"thin must be a positive integer, got {thin!r}")
        self.thin = int(thin)
        self.sigma_y = self.mu_max = None
        self._ref = None
        if f.attrs.get("format") == FORMAT:
            self._init_project()
        elif "exchange/data" in f:
            self._init_dxchange()
        else:
            self._init_nxtomo()
        self._row0 = 0
        n_rows = self.shape[1]
        if rows is not None:
            a, b = rows
            if not 0 <= a < b <= n_rows:
                raise ValueError(f"rows {a}:{b} out of range for a detector of {n_rows} rows")
            self._row0, n_rows = a, b - a
        self.shape = (self.shape[0], n_rows, self.shape[2])
        if self.kind != "project":
            self._check_frames()
        if self.kind == "project":
            g = self.geometry.thin(step=self.thin) if self.thin > 1 else self.geometry
            if rows is not None:
                if not g.rows_are_slices:
                    raise ValueError("--rows needs a parallel-beam geometry with one detector row per slice")
                g = g.rows(rows[0], rows[1])
            self.geometry = g
        else:
            U = self.shape[2]
            self.geometry = parallel_beam((n_rows, U, U), self._angles, det_shape=(n_rows, U),
                                          center_offset=center_offset)
        st = self.path.stat()
        self.identity = {"path": str(self.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                         "thin": self.thin, "rows": list(rows) if rows is not None else None,
                         "center_offset": center_offset}

    # ---------------------------------------------------------------- layouts
    def _init_project(self):
        f = self._f
        if "sinogram" not in f:
            raise ProjectFileError(f"{self.path}: dataset '/sinogram' is missing")
        d = f["sinogram"]
        if d.ndim != 3:
            raise ProjectFileError(f"{self.path}: '/sinogram' has shape {d.shape}; streaming needs (A, V, U)")
        if d.dtype.kind not in "uif":
            raise ProjectFileError(f"{self.path}: '/sinogram' has dtype {d.dtype}; expected real numbers")
        gj = d.attrs.get("geometry_json")
        if gj is None:
            raise ProjectFileError(f"{self.path}: '/sinogram' has no geometry_json attribute")
        self.kind, self._sino = "project", d
        self.geometry = geometry_from(_json(gj, self.path, "the geometry of '/sinogram'"), self.path)
        self._angle_index = np.arange(0, d.shape[0], self.thin)
        self.shape = (len(self._angle_index), d.shape[1], d.shape[2])
        if "reference" in f and f["reference"].ndim == 3:
            self._ref = f["reference"]
        if "provenance" in f:
            provenance = _json(f["provenance"].attrs.get("json", "{}"), self.path, "'/provenance'")
            self.sigma_y, self.mu_max = provenance.get("sigma_y"), recorded_mu_max(provenance)

    def _frames(self, key):
        f = self._f
        if key not in f:
            raise ScanFormatError(f"{self.path}: dataset '{key}' is missing")
        d = f[key]
        if not hasattr(d, "dtype") or not (np.issubdtype(d.dtype, np.integer) or np.issubdtype(d.dtype, np.floating)):
            raise ScanFormatError(f"{self.path}: '{key}' is not a dataset of numbers")
        return d

    def _init_dxchange(self):
        f = self._f
        self.kind = "dxchange"
        self._data = self._frames("exchange/data")
        if self._data.ndim != 3:
            raise ScanFormatError(f"{self.path}: dataset 'exchange/data' has shape {self._data.shape}, expected 3 dims")
        n = self._data.shape[0]
        self._flat = (self._frames("exchange/data_white"), slice(None)) if "exchange/data_white" in f else None
        self._dark = (self._frames("exchange/data_dark"), slice(None)) if "exchange/data_dark" in f else None
        for name, frames in (("data_white", self._flat), ("data_dark", self._dark)):
            if frames is not None and (frames[0].ndim != 3 or frames[0].shape[1:] != self._data.shape[1:]):
                raise ScanFormatError(f"{self.path}: 'exchange/{name}' has shape {frames[0].shape}: frames of "
                                      f"{tuple(frames[0].shape[1:])} pixels, the projections {self._data.shape[1:]}")
        theta = self._frames("exchange/theta")[()]
        if theta.shape[0] != n:
            raise ScanFormatError(f"{self.path}: {n} projections but {theta.shape[0]} angles; they must match")
        self._proj_index = np.arange(0, n, self.thin)
        self._angles = _angles_rad(theta, _attr_str(f["exchange/theta"], "units"), self.path,
                                   "exchange/theta")[self._proj_index]
        self.shape = (len(self._proj_index), *self._data.shape[1:])

    def _init_nxtomo(self):
        f = self._f
        entry = next((name for name, g in f.items() if hasattr(g, "keys") and "instrument/detector/data" in g), None)
        if entry is None:
            raise ScanFormatError(f"{self.path}: neither a tomodiff project file nor a DXchange/NXtomo scan")
        self.kind = "nxtomo"
        det = f"{entry}/instrument/detector"
        self._data = self._frames(f"{det}/data")
        key = self._frames(f"{det}/image_key")[()]
        rot_key = f"{entry}/sample/rotation_angle"
        rot = self._frames(rot_key)[()]
        if not key.shape[0] == self._data.shape[0] == rot.shape[0]:
            raise ScanFormatError(f"{self.path}: data has {self._data.shape[0]} frames, image_key {key.shape[0]}, "
                                  f"rotation_angle {rot.shape[0]}; they must match")
        proj = np.flatnonzero(key == 0)
        self._proj_index = proj[::self.thin]
        flats, darks = np.flatnonzero(key == 1), np.flatnonzero(key == 2)
        self._flat = (self._data, flats) if flats.size else None
        self._dark = (self._data, darks) if darks.size else None
        self._angles = _angles_rad(rot[self._proj_index], _attr_str(f[rot_key], "units"), self.path, rot_key)
        self.shape = (len(self._proj_index), *self._data.shape[1:])

    def _check_frames(self, block: int = 64) -> None:
        """Flats and darks of a raw scan that cannot be right are refused before any work, not in
        the middle of a run (:func:`~tomodiff.io.scans.check_gain`), read ``block`` rows at a time."""
        if self._flat is None:
            return
        flat, dark = np.zeros(self.shape[1:], np.float64), np.zeros(self.shape[1:], np.float64)
        for a in range(0, self.shape[1], block):
            rows = slice(self._row0 + a, self._row0 + min(a + block, self.shape[1]))
            flat[rows.start - self._row0:rows.stop - self._row0] = self._take(*self._flat, rows).mean(axis=0)
            if self._dark is not None:
                dark[rows.start - self._row0:rows.stop - self._row0] = self._take(*self._dark, rows).mean(axis=0)
        check_gain(flat, dark, f"{self.path} ({self.kind})", clamp_gain=1e-3)

    # ---------------------------------------------------------------- reading
    def _check_rows(self, start, stop):
        if not 0 <= start < stop <= self.shape[1]:
            raise ValueError(f"rows {start}:{stop} out of range for {self.shape[1]} detector rows")

    @staticmethod
    def _take(d, index, rows):
        if isinstance(index, slice):
            return d[index, rows, :]
        if index.size and np.all(np.diff(index) == index[1] - index[0]) and index.size > 1 and index[1] > index[0]:
            return d[int(index[0]):int(index[-1]) + 1:int(index[1] - index[0]), rows, :]
        return d[index.tolist(), rows, :] if index.size else np.zeros((0, rows.stop - rows.start, d.shape[2]))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Line integrals of detector rows ``start:stop`` (of the selection): ``(A, stop − start, U)`` float32."""
        self._check_rows(start, stop)
        rows = slice(self._row0 + start, self._row0 + stop)
        if self.kind == "project":
            out = np.asarray(self._take(self._sino, self._angle_index, rows), np.float32)
            if not np.isfinite(out).all():
                raise ProjectFileError(f"{self.path}: '/sinogram' rows {start}:{stop} contain NaN/Inf values")
            return out
        proj = self._take(self._data, self._proj_index, rows).astype(np.float32)
        empty = np.zeros((0, *proj.shape[1:]), np.float32)
        flats = self._take(*self._flat, rows).astype(np.float32) if self._flat else empty
        darks = self._take(*self._dark, rows).astype(np.float32) if self._dark else empty
        for name, a in (("projections", proj), ("flats", flats), ("darks", darks)):
            if not np.isfinite(a).all():
                raise ScanFormatError(f"{self.path}: {name} of rows {start}:{stop} contain NaN/Inf values")
        scan = RawScan(proj, flats, darks, self._angles, source=f"{self.path} ({self.kind}, rows {start}:{stop})")
        return normalize(scan, clamp_gain=1e-3, max_dead=None)  # the whole detector was checked when opened

    @property
    def has_reference(self) -> bool:
        return self._ref is not None and tuple(self._ref.shape) == tuple(self.geometry.volume_shape)

    def reference(self, start: int, stop: int) -> np.ndarray:
        """Reference slices ``start:stop``, ``(stop − start, Y, X)`` float32."""
        return np.asarray(self._ref[self._row0 + start:self._row0 + stop], np.float32)

    def abs_max(self, block: int = 32) -> float:
        """``max |y|`` over the whole selection, read ``block`` rows at a time."""
        m = 0.0
        for a in range(0, self.shape[1], block):
            m = max(m, float(np.abs(self.read(a, min(a + block, self.shape[1]))).max()))
        return m

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def open_sinogram(path, *, thin: int = 1, rows=None, center_offset: float = 0.0) -> SinogramSource:
    """Open a project file or a DXchange/NXtomo scan for reading by detector rows.

    thin: keep every ``thin``-th angle; rows: ``(start, stop)`` detector rows to keep (default all);
    center_offset: rotation axis minus detector centre in pixels (raw scans only).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
    try:
        return SinogramSource(path, f, thin=thin, rows=rows, center_offset=center_offset)
    except BaseException:
        f.close()
        raise
