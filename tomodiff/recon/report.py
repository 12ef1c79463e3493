"""A reconstruction as a user keeps it: quality against a reference, provenance, the project file.

:func:`quality` scores a result against a reference volume (PSNR/SSIM with the reference's own
range: honest in any units); :func:`project_data` gathers what ``tomodiff reconstruct`` writes:
the input sinogram and geometry, the reference, mean, std and samples, and the provenance with
cost, residual, quality and units.
"""

from __future__ import annotations

import numpy as np

from ..io import ProjectData
from .metrics import psnr, ssim


def quality(mean: np.ndarray, reference) -> dict:
    """``{"psnr", "ssim", "data_range"}`` of ``mean`` against ``reference`` (data range: the
    reference's max − min); all ``None`` without a reference of the same shape or with a flat one."""
    out = {"psnr": None, "ssim": None, "data_range": None}
    if reference is None or np.shape(reference) != mean.shape:
        return out
    ref = np.asarray(reference, np.float32)
    data_range = float(ref.max() - ref.min())
    if data_range > 0:
        out = {"psnr": float(psnr(mean, ref, data_range=data_range)),
               "ssim": float(ssim(mean, ref, data_range=data_range)), "data_range": data_range}
    return out


def project_data(r, problem, *, source: str, pixel_size=None) -> tuple[ProjectData, dict]:
    """``(ProjectData to write, quality)`` for reconstruction ``r`` of ``problem`` (a
    :class:`tomodiff.io.problem.Problem`) read from ``source``; ``pixel_size`` names the length unit
    of the attenuation when the user gave one."""
    mean = r.mean[0, 0].cpu().numpy()
    q = quality(mean, problem.reference)
    recon = {"mean": mean}
    if r.std is not None:  # the calibrated std (provenance["calibration"] says how) and the samples' own
        recon["std"] = r.std[0, 0].cpu().numpy()
        recon["std_raw"] = r.std_raw[0, 0].cpu().numpy()
    if r.samples is not None:
        recon["samples"] = r.samples[:, 0, 0].cpu().numpy()
    n_samples = r.provenance.get("n_samples", 1)
    provenance = {**r.provenance, "input": source, "residual": r.residual, "seconds": r.seconds, "nfe": r.nfe,
                  "peak_memory_mb": r.peak_memory_mb, "psnr": q["psnr"], "ssim": q["ssim"],
                  "metrics": {"data_range": q["data_range"],
                              "data_range_rule": "reference max - min" if q["data_range"] else None},
                  "std_samples": n_samples if r.std is not None else None,
                  "units": {"pixel_size": pixel_size, "voxel_size": problem.geometry.voxel_size,
                            "attenuation": "1/" + ("length unit of --pixel-size" if pixel_size else
                                                   "world unit of the geometry")}}
    ref = None if problem.reference is None else np.asarray(problem.reference)
    data = ProjectData(sinogram=problem.y[0, 0].cpu().numpy(), geometry=problem.geometry, reference=ref,
                       reconstruction=recon, provenance=provenance)
    return data, q
