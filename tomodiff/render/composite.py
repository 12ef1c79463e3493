"""The emission–absorption equation solved exactly along a ray of piecewise-constant steps.

Along a ray, radiance ``L`` obeys ``dL/dt = −κ(t) L + e(t)`` (κ absorption per world unit, e
emission per world unit). Over one step of length ``Δ`` with constant ``e`` and ``κ`` the exact
solution is

    L_out = L_in · exp(−κΔ) + e·Δ·φ(κΔ),      φ(τ) = (1 − exp(−τ)) / τ,   φ(0) = 1,

so a ray of steps ``s = 0 … P−1`` (in the direction light travels, ``s = P−1`` next to the camera)
starting from a back-light ``L_0 = b`` reaches the camera with

    L = b · exp(−Σ_s τ_s) + Σ_s e_s Δ φ(τ_s) · exp(−Σ_{j>s} τ_j),      τ_s = κ_s Δ.

With κ = 0 this is ``Σ e_s Δ``, the line integral a projector computes; with e = 0 it is
Beer–Lambert, ``b · exp(−Σ κ_s Δ)``. Notation: ``tau`` → τ, ``depth_after`` → ``Σ_{j>s} τ_j``.
"""

from __future__ import annotations

import torch

# Below this |τ| φ uses its Taylor series: 1 − τ/2 + τ²/6 is then exact to |τ|³/24 < 5e-11 relative,
# and the series has the right derivative at τ = 0, where (1 − e^−τ)/τ is 0/0.
_SERIES_BELOW = 1e-3


def phi(tau: torch.Tensor) -> torch.Tensor:
    """``φ(τ) = (1 − exp(−τ))/τ = −expm1(−τ)/τ``, with ``φ(0) = 1``; stable and differentiable at 0."""
    small = tau.abs() < _SERIES_BELOW
    safe = torch.where(small, torch.ones_like(tau), tau)  # keeps the unused branch finite (and its gradient)
    return torch.where(small, 1.0 - tau * (0.5 - tau / 6.0), -torch.expm1(-safe) / safe)


def composite(emission: torch.Tensor, absorption: torch.Tensor, step: torch.Tensor,
              background: float = 0.0) -> torch.Tensor:
    """Radiance reaching the camera along each ray.

    emission, absorption: ``(P, ..., R)`` samples of ``e`` and ``κ`` (per world unit), the first dim
        ordered along the light's path (last = nearest the camera).
    step: ``(R,)`` (or broadcastable) world length of each step along each ray.
    background: back-light radiance entering every ray at its far end.

    Returns ``(..., R)``.
    """
    tau = absorption * step
    # optical depth between each step and the camera: an exclusive cumulative sum from the camera's
    # end, built by shifting (not by subtracting from the total, which loses digits when τ is large)
    from_camera = tau.flip(0).cumsum(0)
    depth_after = torch.cat([torch.zeros_like(tau[:1]), from_camera[:-1]]).flip(0)
    radiance = (emission * step * phi(tau) * torch.exp(-depth_after)).sum(0)
    if background:
        radiance = radiance + background * torch.exp(-from_camera[-1])
    return radiance
