"""Write a reconstructed volume into a project file one block of slices at a time.

:func:`write_volume` takes the joined slices in order (from :func:`tomodiff.recon.slabs.blend_stream`)
and writes mean, std and samples into chunked, compressed datasets of a project file, next to a
copy of the sinogram read row block by row block, atomically: a failed write leaves any earlier
file as it was. Memory: one block of samples plus one slab's worth of sinogram rows.
"""

from __future__ import annotations

import json
import resource
import shutil
from pathlib import Path

from .._version import __version__
from .atomic import OutputWriteError, atomic_h5, check_written, write_error
from .project_file import FORMAT, FORMAT_VERSION, _jsonable, write_geometry_attrs, write_std_attrs

#: HDF5 chunk of streamed volumes, at most (Z, Y, X) = (8, 256, 256): a slab writes whole chunks
VOLUME_CHUNK = (8, 256, 256)

__all__ = ["VOLUME_CHUNK", "OutputWriteError", "write_volume"]  # OutputWriteError: from .atomic


def _check_space(out: Path, kept: str, need: int) -> None:
    """Refuse to start a merge that cannot fit (against the uncompressed size, a full disk or a
    file-size limit), so that it fails before the merge rather than during it (where ``atomic_h5``
    catches a disk that fills up meanwhile)."""
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    room = min(free, fsize if fsize != resource.RLIM_INFINITY else free)
    if room < need:
        what = "free on its disk" if room == free else "allowed per file (ulimit -f)"
        raise OutputWriteError(f"could not write {out} (not enough space: it needs up to {need / 2**20:.1f} MiB, "
                               f"{room / 2**20:.1f} MiB {what}); any earlier {out.name} is unchanged and "
                               f"{kept}, so rerunning only redoes the merge")


def _chunks(shape):
    lead = (1,) * (len(shape) - 3)
    return (*lead, *(min(s, c) for s, c in zip(shape[-3:], VOLUME_CHUNK)))


def _create(g, name, shape, gz):
    return g.create_dataset(name, shape=shape, dtype="f4", chunks=_chunks(shape), **gz)


def _copy_inputs(f, source, step: int, gz) -> None:
    """``/sinogram`` with its geometry, and ``/reference`` when the source has one, ``step`` rows at a time."""
    A, V, U = source.shape
    Z, Y, X = source.geometry.volume_shape
    sino = f.create_dataset("sinogram", shape=(A, V, U), dtype="f4", chunks=(1, min(V, 64), min(U, 1024)), **gz)
    sino.attrs["axes"] = "angle,row,col"
    write_geometry_attrs(sino, source.geometry.to_dict())
    for a in range(0, V, step):
        sino[:, a:min(a + step, V), :] = source.read(a, min(a + step, V))
    if source.has_reference:
        ref = _create(f, "reference", (Z, Y, X), gz)
        for a in range(0, Z, step):
            ref[a:min(a + step, Z)] = source.reference(a, min(a + step, Z))


def write_volume(out, *, source, chunks, n_samples: int, keep_samples: bool, provenance_fn, step: int,
                 on_chunk=None, scale: float = 1.0, std_scale: float = 1.0,
                 kept: str = "the finished slabs are kept") -> Path:
    """Write the joined slices of a run into project file ``out`` (atomically) and return its path.

    source: the :class:`~tomodiff.io.sinogram_reader.SinogramSource` of the run (its sinogram,
    geometry and reference are copied, ``step`` rows at a time); chunks: ``(z0, z1, samples, nfe)``
    in order, ``samples`` ``(n, z1 − z0, Y, X)`` in the scaled units of the scale step (``scale``
    multiplies mean, std and samples back). The file holds ``/sinogram``, ``/reference`` when the
    source has one, ``/reconstruction/mean`` ``(Z, Y, X)``, ``std_raw`` (the samples' std, more than
    one sample), ``std`` (``std_scale``·``std_raw``: the calibrated std, its attributes from
    ``provenance["calibration"]``) and ``samples`` ``(S, Z, Y, X)`` (``keep_samples``), all chunked
    and compressed, and ``/provenance`` from ``provenance_fn()`` (called last, so it can report what
    ``on_chunk(z0, z1, mean, nfe)`` accumulated). kept: where the caller's inputs stay if the write
    fails, for the error message.
    """
    out = Path(out)
    A, V, U = source.shape
    Z, Y, X = source.geometry.volume_shape
    n = n_samples
    _check_space(out, kept, 4 * (A * V * U + Z * Y * X * (1 + 2 * (n > 1) + (n if keep_samples else 0)
                                                          + source.has_reference)))
    gz = dict(compression="gzip", compression_opts=4, shuffle=True)
    try:
        with atomic_h5(out) as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, tomodiff_version=__version__)
            _copy_inputs(f, source, step, gz)
            g = f.create_group("reconstruction")
            mean_d = _create(g, "mean", (Z, Y, X), gz)
            std_d = _create(g, "std", (Z, Y, X), gz) if n > 1 else None
            raw_d = _create(g, "std_raw", (Z, Y, X), gz) if n > 1 else None
            samples_d = _create(g, "samples", (n, Z, Y, X), gz) if keep_samples else None
            for z0, z1, joined, nfe in chunks:
                mean = joined.mean(0) * scale
                mean_d[z0:z1] = mean.numpy()
                if std_d is not None:
                    raw = joined.std(0, correction=1) * scale
                    raw_d[z0:z1] = raw.numpy()
                    std_d[z0:z1] = (raw * std_scale).numpy()
                if samples_d is not None:
                    samples_d[:, z0:z1] = (joined * scale).numpy()
                check_written(f)  # a full disk stops the merge here, not after the whole volume
                if on_chunk is not None:
                    on_chunk(z0, z1, mean, nfe)
            p = f.create_group("provenance")
            provenance = _jsonable(provenance_fn())
            if std_d is not None:
                write_std_attrs(std_d, provenance.get("calibration"))
            p.attrs["json"] = json.dumps(provenance)
            for key, v in provenance.items():
                if isinstance(v, (str, int, float, bool)):
                    p.attrs[key] = v
    except OutputWriteError as err:
        raise write_error(err, out, f"{kept}, so rerunning only redoes the merge") from err
    return out
