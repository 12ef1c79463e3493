"""A final data-consistency step that stops at the noise level (Morozov's discrepancy principle).

From each final sample ``x`` run CGLS, i.e. conjugate gradient on the normal equations
``AᵀA z = Aᵀ y`` started at ``x``, and stop every batch item where its data fit first reaches

    χ²/m = ‖y − A z‖² / (m σ_y²) = target

(``m`` measurements per item). CGLS lowers ``‖y − A z‖²`` monotonically, and along one CG step the
misfit is the quadratic ``c − 2αγ + α²‖A p‖²`` (``c`` the misfit, ``γ = ‖Aᵀ r‖²``, ``p`` the search
direction), so the last step is cut at the smaller root, where the misfit equals the target exactly.
An item that already fits to the target (or better) is returned unchanged: the step only ever removes
misfit the noise cannot explain; it never undoes a fit. ``σ_y = 0`` (noiseless data) has no
discrepancy to stop at: the step then runs ``max_iter`` iterations, like ``final_cg`` without a target.

Notation map: ``x`` → the samples (``(N, C, ...)``, batch a multiple of ``y``'s, sample-major);
``r`` → ``y − A z``; ``s`` → ``Aᵀ r``; ``p`` → CG direction; ``q`` → ``A p``; ``gamma`` → ``‖s‖²``;
``T`` → ``target · m · σ_y²``.
"""

from __future__ import annotations

import math

import torch

from ._common import match_batch

__all__ = ["discrepancy_cg"]


def _sq(v: torch.Tensor) -> torch.Tensor:
    return v.pow(2).flatten(1).sum(1)


def _items(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return a.reshape(-1, *([1] * (like.dim() - 1)))


def discrepancy_cg(A, y: torch.Tensor, x: torch.Tensor, sigma_y: float, *, target: float = 1.0, max_iter: int = 50,
                   return_info: bool = False):
    """At most ``max_iter`` CGLS iterations on ``‖y − A z‖²`` from each item of ``x``, each item stopped
    where its χ²/m (with noise std ``sigma_y``, units of ``y``) first reaches ``target`` (module docstring).

    ``A``: a linear operator (``forward``/``adjoint``); ``y``: ``(B, C, *A.range_shape)``; ``x``: ``(k·B, C,
    *A.domain_shape)``. With ``return_info``, also ``{"iterations": (N,), "chi2_per_m": (N,)}`` (the
    iterations each item took and its final χ²/m; ``nan`` for ``σ_y = 0``).
    """
    if not hasattr(A, "adjoint"):
        raise TypeError(f"discrepancy_cg: A must be a linear operator, got {type(A).__name__}")
    if not (math.isfinite(float(sigma_y)) and sigma_y >= 0):
        raise ValueError(f"discrepancy_cg: sigma_y must be finite and >= 0, got {sigma_y}")
    if not (math.isfinite(float(target)) and target > 0):
        raise ValueError(f"discrepancy_cg: target must be finite and > 0, got {target}")
    if int(max_iter) != max_iter or max_iter < 0:
        raise ValueError(f"discrepancy_cg: max_iter must be an integer >= 0, got {max_iter}")
    yb = match_batch(y, x, "discrepancy_cg")
    m = yb[0].numel()
    T = float(target) * m * float(sigma_y) ** 2
    z = x.detach().clone()
    r = yb - A.forward(z)
    c = _sq(r)
    s = A.adjoint(r)
    p = s.clone()
    gamma = _sq(s)
    floor = torch.finfo(gamma.dtype).eps ** 2 * gamma  # converged (Aᵀr ≈ 0): stop, as CG would break down
    active = (c > T) & (gamma > 0)
    iters = torch.zeros_like(c, dtype=torch.long)
    for _ in range(int(max_iter)):
        if not bool(active.any()):
            break
        q = A.forward(p)
        qq = _sq(q)
        ok = active & (qq > 0)
        safe = torch.where(ok, qq, torch.ones_like(qq))
        alpha = torch.where(ok, gamma / safe, torch.zeros_like(qq))
        # the misfit after a full step; where it would pass T, cut the step at the smaller root
        full = c - gamma * alpha
        disc = (gamma * gamma - qq * (c - T)).clamp_min(0)
        a_T = (gamma - disc.sqrt()) / safe
        reached = ok & (T > 0) & (full <= T)
        alpha = torch.where(reached, a_T, alpha)
        z = z + _items(alpha, z) * p
        r = r - _items(alpha, r) * q
        c = _sq(r)
        iters = iters + ok.long()
        s = A.adjoint(r)
        gamma_new = _sq(s)
        beta = torch.where(ok & (gamma > 0), gamma_new / torch.where(gamma > 0, gamma, torch.ones_like(gamma)),
                           torch.zeros_like(gamma))
        p = s + _items(beta, p) * p
        gamma = torch.where(ok, gamma_new, gamma)
        active = ok & ~reached & (c > T) & (gamma > floor)
    if not return_info:
        return z
    chi2 = c / (m * float(sigma_y) ** 2) if sigma_y > 0 else torch.full_like(c, float("nan"))
    return z, {"iterations": iters, "chi2_per_m": chi2}
