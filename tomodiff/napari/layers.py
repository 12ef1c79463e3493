"""Turn tomodiff files into napari layer-data tuples ``(data, kwargs, "image")``.

Pure numpy/h5py: usable (and tested) without napari.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import ProjectData, read_project


def _limits(arr: np.ndarray, lo=0.5, hi=99.5) -> list[float]:
    a, b = np.percentile(arr, [lo, hi]) if arr.size else (0.0, 1.0)
    return [float(a), float(b) if b > a else float(a) + 1.0]


def _scale(data: ProjectData, ndim: int) -> tuple[float, ...]:
    voxel = float((data.geometry or {}).get("voxel_size", 1.0) or 1.0)
    return (voxel,) * ndim


def project_layers(path, *, error_map: bool = True) -> list[tuple]:
    """Layers of a project file: reference, mean, std (uncertainty), samples, |mean − reference|
    and the sinogram (hidden: it lives in detector space, not volume space)."""
    path = Path(path)
    data = read_project(path)
    stem = path.stem
    layers: list[tuple] = []
    ref = data.reference
    recon = data.reconstruction
    volume_limits = _limits(ref if ref is not None else recon.get("mean", np.zeros(1)))

    if ref is not None:
        layers.append((ref, dict(name=f"{stem}: reference", colormap="gray", contrast_limits=volume_limits,
                                 scale=_scale(data, ref.ndim)), "image"))
    if "mean" in recon:
        mean = recon["mean"]
        method = data.provenance.get("method", "reconstruction")
        layers.append((mean, dict(name=f"{stem}: {method} mean", colormap="gray", contrast_limits=volume_limits,
                                  scale=_scale(data, mean.ndim)), "image"))
        if error_map and ref is not None and ref.shape == mean.shape:
            err = np.abs(mean - ref)
            layers.append((err, dict(name=f"{stem}: |mean − reference|", colormap="inferno",
                                     contrast_limits=_limits(err, 0, 99.5), scale=_scale(data, err.ndim),
                                     visible=False), "image"))
    if "std" in recon:
        std = recon["std"]
        layers.append((std, dict(name=f"{stem}: std (uncertainty)", colormap="magma",
                                 contrast_limits=_limits(std, 0, 99.5), scale=_scale(data, std.ndim),
                                 visible=False), "image"))
    if "samples" in recon:
        s = recon["samples"]
        layers.append((s, dict(name=f"{stem}: samples", colormap="gray", contrast_limits=volume_limits,
                               scale=(1.0,) + _scale(data, s.ndim - 1), visible=False), "image"))
    if data.sinogram is not None:
        layers.append((data.sinogram, dict(name=f"{stem}: sinogram", colormap="gray",
                                           contrast_limits=_limits(data.sinogram), visible=False), "image"))
    return layers


def scan_layers(path) -> list[tuple]:
    """A DXchange/NXtomo scan as one layer of line integrals ``(A, V, U)``."""
    from ..io import normalize, read_scan

    scan = read_scan(path)
    p = normalize(scan, clamp_gain=1e-3)
    return [(p, dict(name=f"{Path(path).stem}: projections (−log)", colormap="gray",
                     contrast_limits=_limits(p), metadata={"angles_rad": scan.angles.tolist()}), "image")]


def file_kind(path) -> str | None:
    """``"project"``, ``"scan"`` or ``None`` (not a file tomodiff reads)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == "tomodiff":
                return "project"
            if "exchange/data" in f or any(hasattr(g, "keys") and "instrument/detector/data" in g
                                           for g in f.values()):
                return "scan"
    except (OSError, ValueError):
        return None
    return None
