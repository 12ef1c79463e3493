"""Turn tomodiff files into napari layer-data tuples ``(data, kwargs, "image")``.

Pure numpy/h5py: usable (and tested) without napari.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import ProjectData, normalize, read_project, read_scan
from ..io.kind import file_kind
from ..io.project_file import recorded_mu_max
from ..io.tiff_stack import scan_folder
from .uncertainty import OVERLAY, consistency, std_label


def _limits(arr: np.ndarray, lo=0.5, hi=99.5) -> list[float]:
    a, b = np.percentile(arr, [lo, hi]) if arr.size else (0.0, 1.0)
    return [float(a), float(b) if b > a else float(a) + 1.0]


def _scale(data: ProjectData, ndim: int) -> tuple[float, ...]:
    voxel = float((data.geometry or {}).get("voxel_size", 1.0) or 1.0)
    return (voxel,) * ndim


def _n_samples(data: ProjectData) -> int | None:
    n = data.provenance.get("n_samples")
    if isinstance(n, int) and n > 0:
        return n
    samples = data.reconstruction.get("samples")
    return None if samples is None else int(samples.shape[0])


def project_layers(path, *, error_map: bool = True) -> list[tuple]:
    """Layers of a project file: reference, mean, std (named with the number of samples it comes
    from and whether it is calibrated, a hidden additive overlay), the raw std (hidden), samples,
    |mean − reference| and the sinogram (hidden: it lives in detector space, not volume space). The
    mean's and std's metadata hold ``n_samples``, the std's ``calibration`` record and the
    provenance's ``data_consistency`` (χ² per view) when the file records them."""
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
    n_samples = _n_samples(data)
    result_meta = {"n_samples": n_samples, "data_consistency": consistency(data.provenance),
                   "calibration": data.calibration}
    if "mean" in recon:
        mean = recon["mean"]
        method = data.provenance.get("method", "reconstruction")
        layers.append((mean, dict(name=f"{stem}: {method} mean", colormap="gray", contrast_limits=volume_limits,
                                  scale=_scale(data, mean.ndim), metadata={**result_meta, "kind": "mean"}),
                       "image"))
        if error_map and ref is not None and ref.shape == mean.shape:
            err = np.abs(mean - ref)
            layers.append((err, dict(name=f"{stem}: |mean − reference|", colormap="inferno",
                                     contrast_limits=_limits(err, 0, 99.5), scale=_scale(data, err.ndim),
                                     visible=False), "image"))
    if "std" in recon:
        std = recon["std"]
        layers.append((std, dict(name=f"{stem}: {std_label(n_samples, data.calibration)}", **OVERLAY,
                                 contrast_limits=_limits(std, 0, 99.5), scale=_scale(data, std.ndim),
                                 visible=False, metadata={**result_meta, "kind": "std"}), "image"))
    if "std_raw" in recon and data.calibration and data.calibration.get("calibrated"):  # else equal to the std
        raw = recon["std_raw"]
        layers.append((raw, dict(name=f"{stem}: raw {std_label(n_samples)}", **OVERLAY,
                                 contrast_limits=_limits(raw, 0, 99.5), scale=_scale(data, raw.ndim),
                                 visible=False, metadata={**result_meta, "kind": "std_raw"}), "image"))
    if "samples" in recon:
        s = recon["samples"]
        layers.append((s, dict(name=f"{stem}: samples", colormap="gray", contrast_limits=volume_limits,
                               scale=(1.0,) + _scale(data, s.ndim - 1), visible=False), "image"))
    if data.sinogram is not None:
        layers.append(sinogram_layer(data.sinogram, data.geometry, data.provenance.get("sigma_y"),
                                     name=f"{stem}: sinogram", mu_max=recorded_mu_max(data.provenance)))
    return layers


def sinogram_layer(sino: np.ndarray, geometry: dict | None, sigma_y: float | None, *, name: str,
                   visible: bool = False, mu_max: float | None = None) -> tuple:
    """A sinogram layer ``(A, U)`` or ``(A, V, U)`` that the reconstruction widget can reconstruct:
    its ``metadata`` holds ``geometry`` (a ``Geometry.to_dict()``), ``sigma_y`` (or ``None``) and
    ``mu_max``, the object's known maximum attenuation when the file records it (the scale step then
    uses it instead of an estimate). Hidden by default: it lives in detector space, not volume space."""
    return (sino, dict(name=name, colormap="gray", contrast_limits=_limits(sino), visible=visible,
                       metadata={"geometry": geometry, "sigma_y": sigma_y, "mu_max": mu_max}), "image")


def result_layers(prefix: str, method: str, mean: np.ndarray, std: np.ndarray | None, *,
                  voxel_size: float = 1.0, contrast_limits=None, metadata: dict | None = None,
                  n_samples: int | None = None, std_overlay: bool = True,
                  calibration: dict | None = None) -> list[tuple]:
    """Layers of a fresh reconstruction: ``"{prefix}: {method} mean"`` and, when there is one,
    ``"{prefix}: {method} std over N samples (calibrated ×k | raw, not calibrated)"`` (the result's
    calibrated std, a coloured additive overlay on the mean, shown when ``std_overlay``), scaled by
    the voxel size. Both carry ``metadata`` plus ``kind``, ``n_samples`` and ``calibration`` (the
    result's record, :func:`tomodiff.recon.calibration.lookup`)."""
    scale = (float(voxel_size),) * mean.ndim
    meta = {**(metadata or {}), "n_samples": n_samples, "calibration": calibration}
    layers = [(mean, dict(name=f"{prefix}: {method} mean", colormap="gray", scale=scale,
                          metadata={**meta, "kind": "mean"},
                          contrast_limits=list(contrast_limits) if contrast_limits else _limits(mean)), "image")]
    if std is not None:
        layers.append((std, dict(name=f"{prefix}: {method} {std_label(n_samples, calibration)}", **OVERLAY, scale=scale,
                                 visible=std_overlay, metadata={**meta, "kind": "std"},
                                 contrast_limits=_limits(std, 0, 99.5)), "image"))
    return layers


def path_kind(path) -> str | None:
    """``"project"``, ``"scan"`` (a DXchange/NXtomo file or a TIFF scan folder) or ``None``; never raises."""
    return "scan" if scan_folder(path) is not None else file_kind(path)


def scan_layers(path) -> list[tuple]:
    """A DXchange/NXtomo scan, or a TIFF scan folder, as one layer of line integrals ``(A, V, U)``."""
    from ..ct import parallel_beam  # start-up time: tomodiff.ct loads torch (~1.6 s); project files need none

    layout = scan_folder(path)
    scan = layout.read() if layout is not None else read_scan(path)
    p = normalize(scan, clamp_gain=1e-3)
    _, rows, cols = p.shape
    # the geometry `tomodiff reconstruct` assumes for raw scans: parallel beam, axis at the detector centre
    geometry = parallel_beam((rows, cols, cols), scan.angles, det_shape=(rows, cols)).to_dict()
    return [(p, dict(name=f"{Path(path).stem}: projections (−log)", colormap="gray",
                     contrast_limits=_limits(p), metadata={"angles_rad": scan.angles.tolist(),
                                                           "geometry": geometry, "sigma_y": None}), "image")]
