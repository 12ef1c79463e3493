"""Calibrated per-voxel intervals from posterior samples, and the coverage that checks them.

A diffusion sampler's spread is only an uncertainty if the truth falls inside its intervals as
often as they claim. The interval used here is Gaussian, ``mean ± k·z_p·std`` (``z_p`` the
standard-normal quantile of the central ``p`` interval, ``std`` over the samples), where ``k``
recalibrates the sampler's spread: ``k = 1`` trusts it; :data:`CALIBRATION` holds the ``k`` fitted
on TRAINING data only (never the benchmark volumes) for the default method, by
:func:`fit_scale`, so that the 90% interval covers 90% of their voxels. ``benchmarks/sampler_eval.py``
and ``benchmarks/calibration.py`` fit it and measure coverage on held-out volumes.

Shapes: any, as long as ``mean``, ``std`` and ``truth`` broadcast together.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

__all__ = ["CALIBRATION", "interval", "coverage", "fit_scale", "calibrated_std"]

# k for reconstruct(method="auto") at 8 views, 8 samples, with the default prior ct-slice. Fitted by
# `benchmarks/calibration.py --prior ct-slice` on training data only: the four training-seed phantoms of the
# sweep and two training volumes of the ct-slice split (lidc0314_chest, philips_head_phantom, 4x block
# averaged), 8 views, 1% noise, 8 samples of method="auto". With it the 90% interval covers 0.886 of held-out
# phantom voxels and 0.843 on the held-out real head (raw: 0.31 and 0.27);
# benchmarks/results/calibration_ct-slice/. The same fit with slice-64 gave 4.937
# (benchmarks/results/calibration/).
CALIBRATION = {"scale": 4.520, "fitted_on": "training-seed phantoms shepp_logan:11, texture:12, ellipsoids:13, "
                                            "foam:14 and ct_corpus lidc0314_chest, philips_head_phantom (64²), "
                                            "8 views, 1% noise, 8 samples of method='auto', prior ct-slice"}


def _z(p: float) -> float:
    if not 0 < p < 1:
        raise ValueError(f"the interval's probability must be in (0, 1), got {p}")
    return float(stats.norm.ppf(0.5 + p / 2))


def interval(mean, std, p: float = 0.9, k: float = 1.0):
    """``(low, high) = mean ∓ k·z_p·std``: the central ``p`` interval, recalibrated by ``k``."""
    h = k * _z(p) * std
    return mean - h, mean + h


def coverage(mean, std, truth, p: float = 0.9, k: float = 1.0) -> float:
    """Fraction of voxels whose ``truth`` lies in :func:`interval` (``|truth − mean| ≤ k·z_p·std``)."""
    to_np = (lambda a: a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, float))
    m, s, t = to_np(mean), to_np(std), to_np(truth)
    return float(np.mean(np.abs(t - m) <= k * _z(p) * s))


def fit_scale(mean, std, truth, p: float = 0.9) -> float:
    """The ``k`` for which :func:`coverage` equals ``p``: the ``p``-quantile of ``|truth − mean| / (z_p·std)``."""
    to_np = (lambda a: a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, float))
    m, s, t = to_np(mean), to_np(std), to_np(truth)
    ratio = np.abs(t - m) / np.maximum(_z(p) * s, 1e-12)
    k = float(np.quantile(ratio, p))
    if not math.isfinite(k):
        raise ValueError("fit_scale: non-finite ratio (zero std everywhere?)")
    return k


def calibrated_std(std, k: float | None = None):
    """``k·std`` with ``k`` from :data:`CALIBRATION` by default: the spread whose intervals cover as claimed."""
    return std * (CALIBRATION["scale"] if k is None else k)
