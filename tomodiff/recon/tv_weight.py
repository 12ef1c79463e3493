"""TV's weight from the noise level: the discrepancy principle.

With measurements ``y = A x + n``, ``n`` Gaussian of std ``σ_y``, a reconstruction that explains
the data, and no more, leaves a residual about the size of the noise. :func:`discrepancy_weight`
chooses TV's weight ``λ`` so that the TV result ``x_λ`` (:func:`tomodiff.recon.tv`) has

    χ²/m (λ) = ‖A x_λ − y‖² / (m · σ_y²) = target

(Morozov's discrepancy principle; ``m`` = the number of measurements, ``y.numel()``). χ²/m grows
with ``λ`` (more smoothing, a worse fit), so the search brackets the target on ``log λ`` around
:func:`tomodiff.methods.default_tv_weight` (the old rule, 0.006 × views) and bisects the bracket.

Morozov's target is 1; this TV's best results on real CT fit the data closer than that (χ²/m
0.5–0.9 at the best weight), so ``method="tv"`` asks for :data:`tomodiff.methods.TV_CHI2_TARGET`
(0.8, tuned on training volumes, see ``benchmarks/results/tv_weight_rule.md``).

Without a noise level (``σ_y`` ``None`` or 0) there is nothing to compare the residual with: the
old rule is returned, and the record says so. If χ²/m stays on one side of the target over the
whole bracket, the bracket's end is returned, with ``reached=False`` and a note; walking down,
the search also stops where χ²/m no longer falls (less than ``tol`` over a factor ``step``: the
noise level may be too small) and returns the largest weight on that floor.

Cost: ``record["solves"]`` TV solves, usually 4–8 (5.9 on average at 64², 16 slices, 8–16 views). The first runs ``first_iter`` PDHG iterations
from zero, every later one ``search_iter`` iterations warm-started from the solution of the
nearest weight tried so far (the primal point; PDHG's dual variables restart at 0). With the
defaults (100 and 50) a search costs about 1.5–2.5 plain TV solves (200 iterations each); the
caller then runs the reconstruction itself at the chosen ``λ`` from zero, so that
``tv(A, y, lam=λ)`` reproduces it. That result has iterated less than the warm-started chain, and
its χ²/m comes out a little below the search's (6% below on average, at most 18%, at 64² with
8–16 views: ``benchmarks/results/tv_weight_rule.md``).
"""

from __future__ import annotations

import math

import torch

from .. import methods
from ._common import check_measurement, check_operator, check_positive
from .consistency import data_consistency
from .tv import tv

__all__ = ["discrepancy_weight", "RULE_DISCREPANCY", "RULE_DEFAULT"]

RULE_DISCREPANCY = "discrepancy"
RULE_DEFAULT = "0.006 x views"


def discrepancy_weight(A, y: torch.Tensor, sigma_y: float | None, *, target: float = 1.0,
                       bracket: tuple[float, float] = (1 / 64, 1024.0), step: float = 4.0, tol: float = 0.05,
                       max_solves: int = 12, first_iter: int = 100, search_iter: int = 50, nonneg: bool = True,
                       op_norm: float | None = None, callback=None) -> tuple[float, dict]:
    """TV's weight ``λ`` at which the TV result's ``χ²/m`` is ``target``; returns ``(λ, record)``.

    Parameters
    ----------
    A:
        A :class:`~tomodiff.operators.LinearOperator` (a CT ``Projector``), as for :func:`~tomodiff.recon.tv`.
    y:
        Measurements ``(B, C, *A.range_shape)``. One ``λ`` serves every item: χ² is summed over
        all of them, and ``m = y.numel()``.
    sigma_y:
        The noise std in ``y``'s units (after the scale step where there is one). ``None`` or 0:
        no noise level — the old rule's weight is returned.
    target:
        The ``χ²/m`` to reach: 1 is Morozov's principle; TV results that fit less than the noise
        away need less (:data:`tomodiff.methods.TV_CHI2_TARGET` is what ``method="tv"`` uses).
    bracket:
        ``(low, high)`` factors on the old rule's weight: the search stays inside
        ``[low · λ₀, high · λ₀]``, ``λ₀`` = :func:`tomodiff.methods.default_tv_weight`.
    step:
        Factor by which the bracket grows from ``λ₀`` until χ²/m crosses ``target``.
    tol:
        Stop when ``|χ²/m / target − 1| <= tol``, or when the bracket is narrower than a factor
        ``1 + tol``.
    max_solves:
        At most this many TV solves.
    first_iter, search_iter:
        PDHG iterations of the first solve (from zero) and of every later one (warm-started).
    nonneg, op_norm:
        As :func:`~tomodiff.recon.tv` (``op_norm`` is estimated once if not given).
    callback:
        ``callback(k, x)`` after every PDHG iteration of every solve (an exception raised in it
        aborts the search).

    Returns
    -------
    ``λ`` (float, in :func:`~tomodiff.recon.tv`'s units of ``lam``) and a record (plain values, for
    provenance): ``rule`` (``"discrepancy"`` or ``"0.006 x views"``), ``lam``, ``target``,
    ``sigma_y``, ``chi2_per_m`` (of the search's solution nearest to ``λ``; ``None`` without a
    noise level), ``reached`` (whether χ²/m crossed ``target`` inside the bracket), ``solves``,
    ``trace`` (``[[λ, χ²/m], ...]`` in the order tried) and ``note``.
    """
    name = "discrepancy_weight"
    check_operator(A, name)
    y = check_measurement(A, y, name)
    lam0 = methods.default_tv_weight(A)
    if sigma_y is None or float(sigma_y) == 0.0:
        return lam0, {"rule": RULE_DEFAULT, "lam": lam0, "target": None, "sigma_y": sigma_y, "chi2_per_m": None,
                      "reached": False, "solves": 0, "trace": [],
                      "note": "no noise level (sigma_y unknown or 0): the discrepancy principle needs one; "
                              "the old rule 0.006 x views was used"}
    sigma_y = check_positive(sigma_y, "sigma_y", name)
    target = check_positive(target, "target", name)
    low, high = (check_positive(b, "bracket", name) for b in bracket)
    if not low <= 1.0 <= high:
        raise ValueError(f"{name}: bracket must contain 1 (factors on the old rule's weight), got {bracket}")
    if not step > 1.0:
        raise ValueError(f"{name}: step must be > 1, got {step}")
    with torch.no_grad():
        if op_norm is None:
            op_norm = A.norm(generator=torch.Generator(device=y.device).manual_seed(0), dtype=y.dtype,
                             device=y.device)
        search = _Search(A, y, sigma_y, target, nonneg, float(op_norm), first_iter, search_iter, callback)
        lam, reached, note = search.run(lam0, lam0 * low, lam0 * high, step, tol, max_solves)
    return lam, {"rule": RULE_DISCREPANCY, "lam": lam, "target": target, "sigma_y": sigma_y,
                 "chi2_per_m": search.nearest(lam)[1], "reached": reached, "solves": len(search.tried),
                 "trace": [[a, c] for a, c, _ in search.tried], "note": note}


class _Search:
    """The TV solves of one search: ``tried`` holds ``(λ, χ²/m, x)`` in the order they ran."""

    def __init__(self, A, y, sigma_y, target, nonneg, op_norm, first_iter, search_iter, callback):
        self.A, self.y, self.sigma_y, self.target, self.callback = A, y, sigma_y, target, callback
        self.nonneg, self.op_norm = nonneg, op_norm
        self.first_iter, self.search_iter = first_iter, search_iter
        self.tried: list[tuple[float, float, torch.Tensor]] = []

    def nearest(self, lam: float):
        return min(self.tried, key=lambda t: abs(math.log(t[0] / lam)))

    def chi2(self, lam: float) -> float:
        """χ²/m of the TV result at ``lam`` (warm-started from the nearest weight tried)."""
        x0 = self.nearest(lam)[2] if self.tried else None
        x = tv(self.A, self.y, lam=lam, n_iter=self.search_iter if self.tried else self.first_iter, x0=x0,
               nonneg=self.nonneg, op_norm=self.op_norm, callback=self.callback, progress=False)
        c = data_consistency(self.A, x, self.y, self.sigma_y)["chi2_per_m"]
        self.tried.append((lam, c, x))
        return c

    def run(self, lam0, lam_min, lam_max, step, tol, max_solves) -> tuple[float, bool, str]:
        """``(λ, reached, note)``: bracket ``target`` from ``lam0`` by factors ``step``, then bisect."""
        f = lambda c: math.log(c / self.target)  # noqa: E731  (< 0: fits better than the target)
        lam, c = lam0, self.chi2(lam0)
        if abs(f(c)) <= math.log1p(tol):
            return lam, True, "the old rule's weight already meets the target"
        up = c < self.target
        edge = lam_max if up else lam_min
        lo = hi = None
        while len(self.tried) < max_solves:  # 1. bracket: walk away from lam0 until χ²/m crosses the target
            if lam == edge:
                side = "below" if up else "above"
                return lam, False, (f"chi2/m stays {side} the target {self.target:g} over the whole bracket "
                                    f"(at {lam:.4g}: {c:.3g}); the bracket's end was used")
            nxt = min(lam * step, lam_max) if up else max(lam / step, lam_min)
            (prev, c_prev), lam, c = (lam, c), nxt, self.chi2(nxt)
            if (c >= self.target) == up:
                lo, hi = (prev, lam) if up else (lam, prev)
                break
            if not up and c > c_prev / (1.0 + tol):  # the fit no longer improves: χ²/m has reached its floor
                return prev, False, (f"chi2/m levels off at {c:.3g}, above the target {self.target:g}: smaller "
                                     f"weights fit the data no better (is sigma_y too small?); the largest "
                                     f"weight on the level, {prev:.4g}, was used")
        if lo is None:
            return lam, False, f"no bracket within {max_solves} solves; the last weight tried was used"
        while len(self.tried) < max_solves:  # 2. bisect log λ on [lo, hi] (χ²/m below the target at lo, above at hi)
            if hi / lo <= 1.0 + tol:
                break
            mid = math.sqrt(lo * hi)
            c = self.chi2(mid)
            if abs(f(c)) <= math.log1p(tol):
                return mid, True, f"chi2/m {c:.3g} within {tol:g} of the target"
            lo, hi = (mid, hi) if c < self.target else (lo, mid)
        # the target lies between lo and hi: interpolate log χ² linearly in log λ
        c_lo, c_hi = self.nearest(lo)[1], self.nearest(hi)[1]
        w = min(1.0, max(0.0, -f(c_lo) / (f(c_hi) - f(c_lo)))) if c_hi > c_lo else 0.5
        lam = math.exp((1 - w) * math.log(lo) + w * math.log(hi))
        return lam, True, f"bracketed within [{lo:.4g}, {hi:.4g}] (chi2/m {c_lo:.3g} .. {c_hi:.3g})"
