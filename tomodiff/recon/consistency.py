"""Data consistency of a reconstruction: the normalised residual χ²/m, a warning, and a guard.

For ``y = A x + n`` with Gaussian noise of std ``σ_y``, a reconstruction ``x̄`` that explains the
data leaves ``χ²/m = ‖y − A x̄‖² / (σ_y² · m)`` near 1 (``m`` measurements; somewhat below 1 for a
posterior mean or a regularised estimate, which smooth some noise away). Far above 1, the
reconstruction disagrees with the measurement: the prior overrode the data.

- :func:`data_consistency`: ``{"chi2_per_m", "chi2_per_view", "sigma_y"}`` overall and per view
  (projection angle), the dict that goes into a reconstruction's provenance under the key
  ``"data_consistency"``. With ``σ_y = 0`` the ratios are undefined: both are ``None``.
- :func:`warn_if_inconsistent`: one warning line when ``chi2_per_m`` exceeds a threshold.
- :func:`guard`: keep samples at least as data-consistent as a reference (TV): CG iterations on
  ``AᵀA x = Aᵀy`` from each sample until the mean's χ² is at most the reference's, else fall back
  to the reference with a warning.

Shapes: ``y`` ``(B, C, A, ...)`` with the view (angle) axis third; ``x`` ``(B, C, *A.domain_shape)``;
samples ``(n, B, C, *A.domain_shape)``.
"""

from __future__ import annotations

import math
import warnings

import torch

from ..operators.solvers import conjugate_gradient

__all__ = ["data_consistency", "warn_if_inconsistent", "guard", "DataConsistencyWarning", "WARN_CHI2"]

# χ²/m above this triggers the warning: at 1% noise a good reconstruction gives 0.5–1.5 on the
# training phantoms; issue 20 asks every diffusion result to end in [0.5, 2] with the true σ_y, so a
# sampler whose mean stays above 2 (residual √2 ≈ 1.4 times the noise) says it cannot reach the data.
WARN_CHI2 = 2.0


class DataConsistencyWarning(UserWarning):
    """The reconstruction does not explain the measured data (χ²/m far above 1)."""


def _residual2_per_view(A, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    with torch.no_grad():
        r = y - A.forward(x.to(y))
    per_view = r.double().pow(2).transpose(0, 2).reshape(r.shape[2], -1).sum(1)   # (A,)
    return per_view, r[:, :, 0].numel()


def data_consistency(A, x: torch.Tensor, y: torch.Tensor, sigma_y: float) -> dict:
    """``{"chi2_per_m": float, "chi2_per_view": [float, ...], "sigma_y": float}`` for ``x``.

    ``chi2_per_m = ‖y − A x‖² / (σ_y² m)``; ``chi2_per_view[a]`` the same over view ``a``'s
    ``m/A`` measurements. ``sigma_y = 0``: both ``None`` (no noise scale to compare with).
    """
    sigma_y = float(sigma_y)
    if not (math.isfinite(sigma_y) and sigma_y >= 0):
        raise ValueError(f"data_consistency: sigma_y must be finite and >= 0, got {sigma_y}")
    per_view, m_view = _residual2_per_view(A, x, y)
    if sigma_y == 0:
        return {"chi2_per_m": None, "chi2_per_view": None, "sigma_y": 0.0}
    s2 = sigma_y * sigma_y
    return {"chi2_per_m": float(per_view.sum() / (s2 * m_view * per_view.numel())),
            "chi2_per_view": [float(v / (s2 * m_view)) for v in per_view],
            "sigma_y": sigma_y}


def warn_if_inconsistent(report: dict, threshold: float = WARN_CHI2, what: str = "reconstruction",
                         stacklevel: int = 3) -> bool:
    """Warn (one line) when ``report["chi2_per_m"]`` exceeds ``threshold``; returns whether it did."""
    c = report.get("chi2_per_m")
    if c is None or c <= threshold:
        return False
    worst = max(range(len(report["chi2_per_view"])), key=lambda a: report["chi2_per_view"][a])
    warnings.warn(f"the {what} disagrees with the data: chi2/m = {c:.3g} (expected about 1; worst view {worst}: "
                  f"{report['chi2_per_view'][worst]:.3g}); the prior may not fit this object — compare with TV "
                  f"or use guard=True", DataConsistencyWarning, stacklevel=stacklevel)
    return True


def guard(A, y: torch.Tensor, samples: torch.Tensor, sigma_y: float, reference: torch.Tensor, *,
          max_iter: int = 30) -> tuple[torch.Tensor, dict]:
    """Make the samples' mean at least as data-consistent as ``reference`` (e.g. TV).

    While ``‖y − A·mean‖ > ‖y − A·reference‖``, ``k`` CG iterations on ``AᵀA x = Aᵀy`` run from
    every sample, ``k`` = 1, 2, 4, ... up to ``max_iter`` (CG on the normal equations minimises
    each sample's residual over a growing Krylov space, so it never increases, nor, by convexity,
    the mean's beyond the samples' average); if ``max_iter`` iterations do not suffice the
    reference replaces the samples, with a warning. Returns ``(samples, info)``, ``info`` =
    ``{"target_chi2", "cg_iters", "fallback"}`` (χ² as in :func:`data_consistency`; ``None``
    when ``σ_y = 0``, the comparison then uses the plain residual).
    """
    def res2(x):
        return float(_residual2_per_view(A, x, y)[0].sum())

    target = res2(reference)
    norm = data_consistency(A, reference, y, sigma_y)["chi2_per_m"]
    scale = None if norm is None or target == 0 else norm / target
    n = samples.shape[0]
    flat = samples.reshape(n * samples.shape[1], *samples.shape[2:])
    yb = y.to(flat).repeat(n, *([1] * (y.dim() - 1)))
    b = A.adjoint(yb)
    out, iters = samples, 0
    while res2(out.mean(0)) > target and iters < max_iter:
        iters = min(max_iter, max(1, 2 * iters))
        out = conjugate_gradient(lambda v: A.adjoint(A.forward(v)), b, x0=flat, tol=0.0,
                                 max_iter=iters).reshape(samples.shape)
    fallback = res2(out.mean(0)) > target
    if fallback:
        warnings.warn(f"guard: {max_iter} CG iterations did not bring the data residual down to the reference's; "
                      f"returning the reference reconstruction instead", DataConsistencyWarning, stacklevel=2)
        out = reference.to(samples).unsqueeze(0).expand_as(samples).clone()
    return out, {"target_chi2": None if scale is None else target * scale, "cg_iters": iters, "fallback": fallback}
