"""Calibrated per-voxel intervals from posterior samples, the table of fitted scales, and coverage.

A diffusion sampler's spread is only an uncertainty if the truth falls inside its intervals as
often as they claim. The interval used here is Gaussian, ``mean ± k·z_p·std_raw`` (``z_p`` the
standard-normal quantile of the central ``p`` interval, ``std_raw`` the samples' standard deviation
with Bessel's correction), where ``k`` recalibrates the sampler's spread: ``k = 1`` trusts it.
:data:`TABLE` holds the ``k`` fitted by :func:`fit_scale` on TRAINING data only (never the
benchmark volumes nor the held-out real CT) so that the 90% interval covers 90% of their voxels,
one per sampler configuration (:data:`RUNS`), prior and view count; :func:`lookup` finds the one
that applies to a run. ``reconstruct()`` and the file writers report ``std = k·std_raw`` and keep
``std_raw`` beside it. ``benchmarks/calibration.py`` fits the table and measures coverage and the
rank correlation of std with the error on held-out volumes (``benchmarks/results/calibration_table.md``).

Shapes: any, as long as ``mean``, ``std`` and ``truth`` broadcast together.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from scipy import stats

from .. import methods

__all__ = ["N_SAMPLES_FITTED", "PRIOR_WEIGHTS", "RUNS", "TABLE", "calibrated_std", "coverage", "fit_scale",
           "interval", "lookup", "not_calibrated", "sample_count_factor", "spearman"]

#: the sample count every entry of the table was fitted with (k grows as the count falls: the spread
#: of few samples is itself noisy, see :func:`sample_count_factor`)
N_SAMPLES_FITTED = 4
#: the nominal probability of the interval the table's k were fitted for
P_FITTED = 0.9

# What each calibrated configuration ran when it was fitted: the registry's method, steps and options
# (its defaults included) at the time. A run is calibrated only if it runs exactly this, so a later change
# of the registry's defaults (as pigdm's Jacobian changed) leaves it labelled "not calibrated" until refitted.
RUNS = {
    "auto": {"method": "dds", "steps": 20, "options": {"prox": False, "cg_iters": 2, "tv_z": [10.0, 0.04],
                                                       "x_init": "tv", "sigma_start": 0.1, "final_cg": 0,
                                                       "final_target": 1.0}},
    # pigdm's defaults since issue 20 (TV warm start, final CG stopped at χ²/m 1); refitted for them
    "pigdm": {"method": "pigdm", "steps": 50, "options": {"jacobian": "gaussian", "x_init": "tv", "sigma_start": 0.1,
                                                          "final_cg": 50, "final_target": 1.0}},
    "cfg": {"method": "cfg", "steps": 20, "options": {"w": 0.0, "prox": False, "cg_iters": 2, "tv_z": [10.0, 0.04],
                                                      "x_init": "tv", "sigma_start": 0.1}},
}
# The weights each prior was fitted with (sha256 of the shipped .pt): retrained weights spread differently.
PRIOR_WEIGHTS = {"ct-slice": "26356bb69d82d91512da240022df530f48e13893fd938bf3460986a477417354",
                 "ct-cond": "6952e2fc78d4f164b8455c495178a25f9178e1d927ff0726113acaf6b68f95f0"}

_TRAINING = ("training-seed phantoms shepp_logan:11, texture:12, ellipsoids:13, foam:14 and ct_corpus "
             "lidc0314_chest, philips_head_phantom (4x block averaged); 64², central 8 slices, full-arc parallel "
             "beam, 1% noise, seed 0")
# k per (configuration, prior, views), fitted by `python -m benchmarks.calibration --fit` on _TRAINING with
# N_SAMPLES_FITTED samples (table and held-out checks: benchmarks/results/calibration_table.md).
TABLE = {
    ("auto", "ct-slice", 4): 9.414,
    ("auto", "ct-slice", 8): 5.666,
    ("auto", "ct-slice", 16): 5.524,
    # refitted for pigdm's issue-20 defaults (`fit --only pigdm:8`, training PSNR of the mean 24.19 dB, Spearman
    # 0.658); the old cold pigdm with final_cg 2 had 4.468. Its held-out check in calibration_table.md predates it.
    ("pigdm", "ct-slice", 8): 6.074,
    ("cfg", "ct-cond", 8): 5.848,
}


def _z(p: float) -> float:
    if not 0 < p < 1:
        raise ValueError(f"the interval's probability must be in (0, 1), got {p}")
    return float(stats.norm.ppf(0.5 + p / 2))


def _np(a) -> np.ndarray:
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, float)


def interval(mean, std, p: float = 0.9, k: float = 1.0):
    """``(low, high) = mean ∓ k·z_p·std``: the central ``p`` interval, recalibrated by ``k``."""
    h = k * _z(p) * std
    return mean - h, mean + h


def coverage(mean, std, truth, p: float = 0.9, k: float = 1.0) -> float:
    """Fraction of voxels whose ``truth`` lies in :func:`interval` (``|truth − mean| ≤ k·z_p·std``)."""
    m, s, t = _np(mean), _np(std), _np(truth)
    return float(np.mean(np.abs(t - m) <= k * _z(p) * s))


def fit_scale(mean, std, truth, p: float = 0.9) -> float:
    """The ``k`` for which :func:`coverage` equals ``p``: the ``p``-quantile of ``|truth − mean| / (z_p·std)``."""
    m, s, t = _np(mean), _np(std), _np(truth)
    ratio = np.abs(t - m) / np.maximum(_z(p) * s, 1e-12)
    k = float(np.quantile(ratio, p))
    if not math.isfinite(k):
        raise ValueError("fit_scale: non-finite ratio (zero std everywhere?)")
    return k


def spearman(std, error) -> float:
    """Spearman's rank correlation of ``std`` with ``|error|`` over all voxels (invariant to any k)."""
    return float(stats.spearmanr(_np(std).ravel(), np.abs(_np(error)).ravel())[0])


def sample_count_factor(n: int, fitted: int = N_SAMPLES_FITTED, p: float = P_FITTED) -> float:
    """How ``k`` scales from ``fitted`` samples to ``n``: ``t_{n−1} / t_{fitted−1}``, the ratio of the
    Student-t quantiles of the central ``p`` interval. Why: if the error ``e`` at a voxel is Gaussian with
    a spread ``c·σ`` and the ``n`` samples spread by ``σ`` independently of it, ``e / (c·std_raw)`` is
    t-distributed with ``n − 1`` degrees of freedom, so ``k_n = c·t_{n−1}/z_p`` and the unknown ``c``
    cancels in the ratio. ``benchmarks/calibration.py`` checks it on training data (2–8 samples)."""
    if n < 2 or fitted < 2:
        raise ValueError(f"a std needs at least 2 samples, got n={n}, fitted={fitted}")
    q = 0.5 + p / 2
    return float(stats.t.ppf(q, n - 1) / stats.t.ppf(q, fitted - 1))


def _plain(options: dict) -> dict:
    """Options as JSON values (tuples as lists; anything else, such as a tensor, by its repr) for comparison."""
    out = {}
    for k, v in options.items():
        if isinstance(v, tuple):
            v = list(v)
        try:
            out[k] = json.loads(json.dumps(v))
        except (TypeError, ValueError):
            out[k] = repr(v)
    return out


def _configuration(method: str, steps: int | None, options: dict | None) -> tuple[str | None, str, dict]:
    """``(label of RUNS or None, the run's name for messages, what differs from the nearest label)``."""
    m, steps, opts = methods.resolve(method, steps, dict(options or {}))
    run = {"method": m.name, "steps": steps, "options": _plain(methods.with_defaults(m.name, opts))}
    for label, fitted in RUNS.items():
        if fitted == run:
            return label, m.name, {}
    near = next((lb for lb, f in RUNS.items() if f["method"] == m.name), None)
    if near is None:
        return None, m.name, {}
    f = RUNS[near]
    diff = {k: run["options"].get(k) for k in set(f["options"]) | set(run["options"])
            if f["options"].get(k) != run["options"].get(k)}
    if f["steps"] != steps:
        diff["steps"] = steps
    changed = ", ".join(f"{k}={v}" for k, v in sorted(diff.items()))
    return None, f"{m.name} ({changed})" if near == m.name else f"{m.name} ({near} with {changed})", diff


def _prior_name(prior) -> tuple[str | None, str | None]:
    """``(name, sha256)`` of a prior given by name or as an object (``None`` where unknown)."""
    if prior is None or isinstance(prior, str):
        return prior, PRIOR_WEIGHTS.get(prior) if isinstance(prior, str) else None
    info = dict(getattr(prior, "info", {}) or {})
    return info.get("name", getattr(prior, "name", None)), info.get("sha256")


def not_calibrated(method: str, prior: str | None, why: str = "") -> dict:
    """The record of a std that is the raw sample spread (``k = 1``)."""
    what = f"{method} with {prior or 'this prior'}"
    return {"calibrated": False, "k": 1.0, "method": method, "prior": prior,
            "note": f"raw sample spread, not calibrated for {what}{f' ({why})' if why else ''}"}


def lookup(method: str, prior, *, views: int | None = None, n_samples: int = N_SAMPLES_FITTED,
           steps: int | None = None, options: dict | None = None, geometry=None) -> tuple[float, dict]:
    """The interval scale ``k`` for a run, and a JSON-able record of where it comes from.

    method, steps, options: the run as given to ``reconstruct`` (a registry name, ``auto`` included;
    ``None`` steps and options mean the method's defaults). It is calibrated only if it resolves to one
    of :data:`RUNS` exactly. prior: a shipped prior's name or a prior object (its name and, for the
    shipped ones, its weights' sha256 must match :data:`PRIOR_WEIGHTS`). views: projection angles; the
    nearest fitted view count is used within a factor 2 (``views_fitted`` in the record), farther is
    not calibrated. n_samples: samples behind the std; k is scaled from :data:`N_SAMPLES_FITTED` by
    :func:`sample_count_factor`. geometry: the scan's (``views`` defaults to its angle count); the
    table was fitted on full-arc parallel-beam scans, so a limited arc (below 170°) or a fan or cone
    beam keeps the k but is marked not validated (``validated`` False, the reason in ``note``; on
    held-out 90° arcs the 8-view k still covered 83%, benchmarks/results/calibration_table.md).

    Returns ``(k, record)``; for a combination never fitted ``k = 1`` and ``record["calibrated"]`` is
    ``False``. ``record["note"]`` is one line for users (``"raw sample spread, not calibrated for METHOD
    with PRIOR"`` or where k was fitted).
    """
    if geometry is not None and views is None:
        views = geometry.n_angles
    label, name, diff = _configuration(method, steps, options)
    prior_name, sha = _prior_name(prior)
    if label is None:
        return 1.0, not_calibrated(name, prior_name)
    fitted = sorted(v for (lb, pr, v) in TABLE if lb == label and pr == prior_name)
    if not fitted:
        return 1.0, not_calibrated(label, prior_name)
    if sha is not None and PRIOR_WEIGHTS.get(prior_name) not in (None, sha):
        return 1.0, not_calibrated(label, prior_name, f"fitted with other weights, sha256 {PRIOR_WEIGHTS[prior_name][:12]}…")
    if views is None:
        return 1.0, not_calibrated(label, prior_name, "unknown number of views")
    near = min(fitted, key=lambda v: (abs(math.log2(views / v)), v))
    if abs(math.log2(views / near)) > 1:
        return 1.0, not_calibrated(label, prior_name, f"{views} views; fitted at {', '.join(map(str, fitted))}")
    if n_samples < 2:
        return 1.0, not_calibrated(label, prior_name, "a single sample has no spread")
    k0 = TABLE[(label, prior_name, near)]
    factor = sample_count_factor(n_samples)
    k = k0 * factor
    caveats = ([f"k of {near} views"] if near != views else []) + \
              ([f"scaled from {N_SAMPLES_FITTED} samples by the Student-t ratio {factor:.3f}"]
               if n_samples != N_SAMPLES_FITTED else []) + _scan_caveats(geometry)
    record = {"calibrated": True, "k": k, "k_fitted": k0, "method": label, "prior": prior_name, "views": views,
              "views_fitted": near, "n_samples": n_samples, "n_samples_fitted": N_SAMPLES_FITTED,
              "interval": f"mean ± k·z·std_raw, k fitted for {P_FITTED:.0%} coverage", "fitted_on": _TRAINING,
              "table": "tomodiff.recon.calibration.TABLE (benchmarks/results/calibration_table.md)",
              "validated": not caveats,
              "note": f"calibrated, k {k:.2f} × the spread of {n_samples} samples (fitted for {label} with {prior_name} "
                      f"at {near} views on training data{'; ' + '; '.join(caveats) if caveats else ''})"}
    return k, record


def _scan_caveats(geometry) -> list[str]:
    """Where a scan differs from the full-arc parallel-beam scans the table was fitted on."""
    if getattr(geometry, "kind", None) is None:  # not a CT geometry
        return []
    from .scale import LIMITED_ARC_DEG, arc_degrees  # the scale step's own notion of a limited arc

    out = []
    arc = arc_degrees(geometry)
    if arc < LIMITED_ARC_DEG:
        out.append(f"fitted on full arcs, this scan covers {arc:.0f}°")
    if geometry.kind != "parallel":
        out.append(f"fitted on parallel beam, this scan is {geometry.kind} beam")
    return out


def calibrated_std(std, k: float):
    """``k·std``: the spread whose intervals cover as claimed (``k`` from :func:`lookup`)."""
    return std * k
