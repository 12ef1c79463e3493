"""Slab-by-slab HDF5 I/O: read a sinogram a few detector rows at a time, write a volume a slab at a time.

Three pieces, none of which ever holds a whole volume or a whole sinogram:

- :func:`open_sinogram` — a :class:`SinogramSource` over a tomodiff project file or a DXchange /
  NXtomo scan; ``read(start, stop)`` returns line integrals ``(A, stop − start, U)`` for detector
  rows ``start:stop`` (raw scans are flat/dark-normalised row block by row block).
- :class:`SlabStore` — finished slabs of one run as one file per slab in a directory (each written
  atomically and tagged with the run's key): the hand-over between ranks, and the checkpoint.
- :func:`write_volume` — the merge: joins the stored slabs in order (cross-fading shared slices
  exactly as :func:`tomodiff.recon.slabs.blend` does), and writes mean, std and samples into
  chunked datasets of a project file, next to a copy of the sinogram, atomically.

Memory of the merge: two slabs' samples plus one slab's worth of sinogram rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_h5, atomic_path
from .project_file import FORMAT, FORMAT_VERSION, ProjectFileError, _jsonable, write_geometry_attrs
from .scans import RawScan, ScanFormatError, _angles_rad, _attr_str, normalize

#: HDF5 chunk of streamed volumes, at most (Z, Y, X) = (8, 256, 256): a slab writes whole chunks
VOLUME_CHUNK = (8, 256, 256)


class OutputWriteError(RuntimeError):
    """The output file could not be written (full disk, no permission); earlier results are intact."""


def _check_space(out: Path, store, need: int) -> None:
    """Refuse to start a merge that cannot fit: libhdf5 (2.0 here) may crash the process after a
    failed write, so a full disk or a file-size limit is checked before, against the uncompressed size."""
    import resource
    import shutil

    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    room = min(free, fsize if fsize != resource.RLIM_INFINITY else free)
    if room < need:
        what = "free on its disk" if room == free else "allowed per file (ulimit -f)"
        raise OutputWriteError(f"could not write {out} (not enough space: it needs up to {need / 2**20:.1f} MiB, "
                               f"{room / 2**20:.1f} MiB {what}); any earlier {out.name} is unchanged and the finished "
                               f"slabs stay in {store.dir}, so rerunning only redoes the merge")


def _reason(err: OSError) -> str:
    return os.strerror(err.errno) if getattr(err, "errno", None) else (str(err).splitlines() or ["I/O error"])[0]


def _chunks(shape):
    lead = (1,) * (len(shape) - 3)
    return (*lead, *(min(s, c) for s, c in zip(shape[-3:], VOLUME_CHUNK)))


class SinogramSource:
    """Line integrals of one file, read by detector rows. Use :func:`open_sinogram` (a context manager).

    geometry: the (thinned, row-cropped) geometry; shape: ``(A, V, U)``; sigma_y: the noise level
    the file records, or ``None``; has_reference / reference(start, stop): ``(stop − start, Y, X)``
    slices of a reference volume when the file holds one; identity: what identifies the data
    (path, size, modification time, selection) for checkpoint keys.
    """

    def __init__(self, path, f, *, thin: int = 1, rows=None, center_offset: float = 0.0):
        self.path, self._f = Path(path), f
        if int(thin) != thin or thin < 1:
            raise ValueError(f"thin must be a positive integer, got {thin!r}")
        self.thin = int(thin)
        self.sigma_y = None
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
        if self.kind == "project":
            g = self.geometry.thin(step=self.thin) if self.thin > 1 else self.geometry
            if rows is not None:
                from ..recon.slabs import can_split, slab_geometry

                if not can_split(g):
                    raise ValueError("--rows needs a parallel-beam geometry with one detector row per slice")
                g = slab_geometry(g, rows[0], rows[1])
            self.geometry = g
        else:
            from ..ct import parallel_beam

            U = self.shape[2]
            self.geometry = parallel_beam((n_rows, U, U), self._angles, det_shape=(n_rows, U),
                                          center_offset=center_offset)
        st = self.path.stat()
        self.identity = {"path": str(self.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                         "thin": self.thin, "rows": list(rows) if rows is not None else None,
                         "center_offset": center_offset}

    # ---------------------------------------------------------------- layouts
    def _init_project(self):
        from ..ct import Geometry

        f = self._f
        if "sinogram" not in f:
            raise ProjectFileError(f"{self.path}: dataset '/sinogram' is missing")
        d = f["sinogram"]
        if d.ndim != 3:
            raise ProjectFileError(f"{self.path}: '/sinogram' has shape {d.shape}; streaming needs (A, V, U)")
        gj = d.attrs.get("geometry_json")
        if gj is None:
            raise ProjectFileError(f"{self.path}: '/sinogram' has no geometry_json attribute")
        self.kind, self._sino = "project", d
        self.geometry = Geometry.from_dict(json.loads(gj))
        self._angle_index = np.arange(0, d.shape[0], self.thin)
        self.shape = (len(self._angle_index), d.shape[1], d.shape[2])
        if "reference" in f and f["reference"].ndim == 3:
            self._ref = f["reference"]
        if "provenance" in f:
            self.sigma_y = json.loads(f["provenance"].attrs.get("json", "{}")).get("sigma_y")

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
        return normalize(scan, clamp_gain=1e-3)

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
    import h5py

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


class SlabStore:
    """Finished slabs of one run: ``<directory>/slab_00007.pt`` per slab, plus ``key.json``.

    Every file carries the run's ``key`` (a hash of everything the slabs depend on); a store of
    another run is refused with a clear error. Writes are atomic, so a crash mid-write loses at
    most the slab being written. Any rank can read any slab (a shared filesystem across nodes).
    """

    def __init__(self, directory, key: str):
        self.dir, self.key = Path(directory), key
        if self.dir.exists() and not self.dir.is_dir():
            raise ValueError(f"checkpoint {self.dir} is a file; streaming checkpoints are directories")
        self.dir.mkdir(parents=True, exist_ok=True)
        keyfile = self.dir / "key.json"
        if keyfile.exists():
            saved = json.loads(keyfile.read_text()).get("key")
            if saved != key:
                raise ValueError(f"checkpoint {self.dir} belongs to a run with other arguments or data; "
                                 f"delete it or pass another checkpoint directory")
        else:
            with atomic_path(keyfile) as tmp:
                tmp.write_text(json.dumps({"key": key}))

    def _file(self, k: int) -> Path:
        return self.dir / f"slab_{k:05d}.pt"

    def has(self, k: int) -> bool:
        return self._file(k).exists()

    def get(self, k: int) -> dict:
        """``{"samples": (n, Z_k, Y, X) float tensor, "nfe": int}`` of slab ``k``."""
        import torch

        try:
            saved = torch.load(self._file(k), map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"checkpoint slab {self._file(k)} could not be read ({err}); delete it to redo "
                             f"that slab") from err
        if saved.get("key") != self.key:
            raise ValueError(f"checkpoint slab {self._file(k)} belongs to another run; delete {self.dir}")
        return saved

    def put(self, k: int, samples, nfe: int) -> None:
        import torch

        try:
            with atomic_path(self._file(k)) as tmp:
                torch.save({"key": self.key, "samples": samples.detach().cpu().contiguous(), "nfe": int(nfe)}, tmp)
        except OSError as err:
            raise OutputWriteError(f"could not write checkpoint slab {self._file(k)} ({_reason(err)}); the slabs "
                                   f"finished before it are kept in {self.dir}") from err

    def remove(self) -> None:
        for p in self.dir.glob("slab_*.pt"):
            p.unlink(missing_ok=True)
        (self.dir / "key.json").unlink(missing_ok=True)
        try:
            self.dir.rmdir()
        except OSError:
            pass  # something else lives there: leave it


def run_key(params: dict) -> str:
    """A stable hash of a run's parameters (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(_jsonable(params), sort_keys=True).encode()).hexdigest()


def write_volume(out, *, source: SinogramSource, plan, store: SlabStore, keep_samples: bool,
                 provenance_fn, on_chunk=None, scale: float = 1.0) -> Path:
    """Merge the stored slabs of ``plan`` into project file ``out`` (atomically) and return its path.

    The file holds ``/sinogram`` (copied from ``source`` row block by row block, with the geometry),
    ``/reference`` when the source has one, ``/reconstruction/mean`` ``(Z, Y, X)``, ``std`` (more
    than one sample) and ``samples`` ``(S, Z, Y, X)`` (``keep_samples``), all chunked and
    compressed, and ``/provenance`` from ``provenance_fn()`` (called last, so it can report what
    ``on_chunk(z0, z1, mean_chunk, nfe_of_the_slab)`` accumulated over the slabs). Stored slabs are in the
    scaled units of the scale step; ``scale`` multiplies mean, std and samples back after joining.
    """

    from .._version import __version__
    from ..recon.slabs import slab_weights

    out = Path(out)
    A, V, U = source.shape
    Z, Y, X = source.geometry.volume_shape
    n = store.get(0)["samples"].shape[0]
    _check_space(out, store, 4 * (A * V * U + Z * Y * X * (1 + (n > 1) + (n if keep_samples else 0)
                                                            + source.has_reference)))
    gz = dict(compression="gzip", compression_opts=4, shuffle=True)
    try:
        with atomic_h5(out) as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, tomodiff_version=__version__)
            sino = f.create_dataset("sinogram", shape=(A, V, U), dtype="f4", chunks=(1, min(V, 64), min(U, 1024)), **gz)
            sino.attrs["axes"] = "angle,row,col"
            write_geometry_attrs(sino, source.geometry.to_dict())
            step = max(1, plan[0][1] - plan[0][0])
            for a in range(0, V, step):
                b = min(a + step, V)
                sino[:, a:b, :] = source.read(a, b)
            if source.has_reference:
                ref = f.create_dataset("reference", shape=(Z, Y, X), dtype="f4", chunks=_chunks((Z, Y, X)), **gz)
                for a in range(0, Z, step):
                    ref[a:min(a + step, Z)] = source.reference(a, min(a + step, Z))
            g = f.create_group("reconstruction")
            carry = None  # (accumulated values, weights) of the slices shared with the next slab
            datasets = None
            for k, (start, stop) in enumerate(plan):
                saved = store.get(k)
                part = saved["samples"]  # (n, Z_k, Y, X)
                n = part.shape[0]
                if datasets is None:
                    datasets = {"mean": g.create_dataset("mean", shape=(Z, Y, X), dtype="f4",
                                                         chunks=_chunks((Z, Y, X)), **gz)}
                    if n > 1:
                        datasets["std"] = g.create_dataset("std", shape=(Z, Y, X), dtype="f4",
                                                           chunks=_chunks((Z, Y, X)), **gz)
                    if keep_samples:
                        datasets["samples"] = g.create_dataset("samples", shape=(n, Z, Y, X), dtype="f4",
                                                               chunks=_chunks((n, Z, Y, X)), **gz)
                # the same additions in the same order as slabs.blend, so the result is bitwise equal
                w = slab_weights(plan, k, part.dtype)
                acc = part.new_zeros(part.shape)
                wsum = part.new_zeros(part.shape[1])
                if carry is not None:
                    s = carry[0].shape[1]
                    acc[:, :s] += carry[0]
                    wsum[:s] += carry[1]
                acc += part * w.view(-1, 1, 1)
                wsum += w
                final = (plan[k + 1][0] if k + 1 < len(plan) else stop) - start
                carry = (acc[:, final:], wsum[final:]) if final < acc.shape[1] else None
                joined = acc[:, :final] / wsum[:final].view(-1, 1, 1)
                z0, z1 = start, start + final
                mean = joined.mean(0) * scale
                datasets["mean"][z0:z1] = mean.numpy()
                if "std" in datasets:
                    datasets["std"][z0:z1] = (joined.std(0, correction=1) * scale).numpy()
                if "samples" in datasets:
                    datasets["samples"][:, z0:z1] = (joined * scale).numpy()
                if on_chunk is not None:
                    on_chunk(z0, z1, mean, saved["nfe"])
                del saved, part, acc, joined
            p = f.create_group("provenance")
            provenance = _jsonable(provenance_fn())
            p.attrs["json"] = json.dumps(provenance)
            for key, v in provenance.items():
                if isinstance(v, (str, int, float, bool)):
                    p.attrs[key] = v
    except OSError as err:
        raise OutputWriteError(f"could not write {out} ({_reason(err)}); any earlier {out.name} is unchanged and the "
                               f"finished slabs stay in {store.dir}, so rerunning only redoes the merge") from err
    return out
