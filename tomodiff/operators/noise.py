"""Measurement noise models and ``simulate``: ``y = noise(A(x))``, seeded.

Each model also gives its negative log-likelihood, which DPS-style guidance differentiates.
"""

from __future__ import annotations

import math

import torch


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(f"{what} contains {bad} non-finite value(s) (NaN or Inf); expected all finite")


class GaussianNoise:
    """Additive white Gaussian noise ``y = Ax + sigma·z``, ``z ~ N(0, I)``."""

    def __init__(self, sigma: float):
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"GaussianNoise: sigma must be finite and >= 0, got {sigma}")
        self.sigma = float(sigma)

    def __call__(self, clean: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device="cpu").to(clean.device)
        return clean + self.sigma * z

    def nll(self, y: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Per-item ``‖y − mean‖² / (2σ²)`` (constant dropped), shape ``(B, C)``; σ=0 gives ``‖·‖²/2``."""
        s2 = self.sigma**2 if self.sigma > 0 else 1.0
        return 0.5 * (y - mean).pow(2).flatten(2).sum(-1) / s2

    def __repr__(self):
        return f"GaussianNoise(sigma={self.sigma!r})"


class PoissonNoise:
    """Photon-counting noise.

    With ``gain=None`` (image tasks) the clean signal is an intensity and
    ``y = Poisson(photons · clean) / photons``: the higher ``photons``, the cleaner.
    With ``gain=1`` (transmission CT, ``clean = I0·exp(−Ax)`` already in counts) set
    ``photons=1`` and ``y = Poisson(clean)``.
    """

    def __init__(self, photons: float):
        if not (math.isfinite(photons) and photons > 0):
            raise ValueError(f"PoissonNoise: photons must be finite and > 0, got {photons}")
        self.photons = float(photons)

    def __call__(self, clean: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        if (clean < 0).any():
            raise ValueError("PoissonNoise: the clean signal must be non-negative (it is a photon rate)")
        rate = (clean * self.photons).detach().to("cpu", torch.float64)
        counts = torch.poisson(rate, generator=generator)
        return (counts / self.photons).to(clean.dtype).to(clean.device)

    def nll(self, y: torch.Tensor, mean: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """Per-item Poisson negative log-likelihood in counts (constant dropped), shape ``(B, C)``."""
        lam = (mean * self.photons).clamp_min(eps)
        k = y * self.photons
        return (lam - k * torch.log(lam)).flatten(2).sum(-1)

    def __repr__(self):
        return f"PoissonNoise(photons={self.photons!r})"


def simulate(A, x: torch.Tensor, noise=None, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Simulate a measurement ``y = noise(A(x))`` without tracking gradients.

    ``A`` is a linear or nonlinear operator, ``x`` of shape ``(B, C, *A.domain_shape)``,
    ``noise`` a noise model (or ``None`` for a clean measurement). Random numbers come from
    ``generator`` on the CPU, so the same seed gives the same ``y`` on any device.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"simulate: x must be a torch.Tensor, got {type(x).__name__}")
    _check_finite(x, "simulate: input x")
    with torch.no_grad():
        clean = A.forward(x)
        y = clean if noise is None else noise(clean, generator=generator)
    _check_finite(y, "simulate: simulated measurement")
    return y
