"""DPS: diffusion posterior sampling (Chung, Kim, McCann, Klasky & Ye, ICLR 2023).

The likelihood is evaluated at the denoised estimate, ``p(y | x_t) ≈ p(y | x̂0(x_t))`` (ΠGDM with
``r_t = 0``), and its gradient is backpropagated through the denoiser. As in the authors' code the
step is taken on the next iterate, ``x_next −= ζ ∇_{x_t} ‖y − A(x̂0)‖`` (the *norm*, not its square:
the paper's ``ζ_t = ζ'/‖y − A(x̂0)‖`` times the squared norm's gradient, up to a factor 2).

Differences from the reference code, on purpose: the norm is taken **per batch item**
(``Σ_b ‖r_b‖``, not the norm of the whole batch), so a sample does not depend on what else is in
the batch; ``ζ`` acts on VE-scaled ``x_t`` (data units), not on the VP-scaled iterate.

Variants: ``"norm"`` (default, above), ``"squared"`` (``ζ ∇ ‖r‖²``), ``"nll"`` (``ζ ∇`` of the
noise model's negative log-likelihood). Residual ``r``: ``y − A(x̂0)`` for Gaussian noise; for
Poisson noise the variance-weighted ``(y − A(x̂0))/sqrt(Var y)`` with ``Var y ≈ max(y, 1/p)/p``
(``p = photons``), the DPS paper's shot-noise form.

Notation map: ``x`` → ``x_t``; ``denoised`` → ``x̂0``; ``zeta`` → ``ζ``; ``A`` → the forward model
``𝒜`` (linear or nonlinear); ``residual`` → ``y − 𝒜(x̂0)`` (weighted for Poisson).
"""

from __future__ import annotations

import math

import torch

from tomodiff.operators import GaussianNoise, PoissonNoise

from ._common import Guidance, StepContext, check_measurement, match_batch

__all__ = ["dps", "DPS"]

VARIANTS = ("norm", "squared", "nll")


class DPS(Guidance):
    """The DPS guidance; build it with :func:`dps`."""

    needs_grad = True

    def __init__(self, A, y, zeta, *, noise=None, variant="norm"):
        self.A, self.y = A, check_measurement(A, y, "dps")
        if callable(zeta):
            self.zeta = zeta
        else:
            if not (math.isfinite(float(zeta)) and float(zeta) >= 0):
                raise ValueError(f"dps: zeta must be finite and >= 0, got {zeta}")
            self.zeta = float(zeta)
        if variant not in VARIANTS:
            raise ValueError(f"dps: variant must be one of {VARIANTS}, got {variant!r}")
        if noise is None:
            noise = GaussianNoise(0.0)
        if not isinstance(noise, (GaussianNoise, PoissonNoise)):
            raise TypeError(f"dps: noise must be GaussianNoise, PoissonNoise or None, got {type(noise).__name__}")
        self.noise, self.variant = noise, variant
        if isinstance(noise, PoissonNoise):
            p = noise.photons
            self._weight = (p / self.y.clamp_min(1.0 / p)).sqrt()        # 1/sqrt(Var y)
        else:
            self._weight = None

    def loss(self, denoised: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-item data term, shape ``(N,)``, differentiable in ``denoised``."""
        pred = self.A(denoised)
        if self.variant == "nll":
            return self.noise.nll(y, pred).sum(1)
        r = y - pred
        if self._weight is not None:
            r = r * match_batch(self._weight, denoised, "dps")
        sq = r.pow(2).flatten(1).sum(1)
        if self.variant == "squared":
            return sq
        return sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()          # ‖r_b‖, finite gradient at 0

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        y = match_batch(self.y, ctx.x, "dps")
        zeta = float(self.zeta(ctx.sigma)) if callable(self.zeta) else self.zeta
        # 1. per-item data term at x̂0 (summing keeps items independent: ∂/∂x_b only sees item b)
        loss = self.loss(ctx.denoised, y).sum()
        # 2. backpropagate through the denoiser to x_t
        (grad,) = torch.autograd.grad(loss, ctx.x, retain_graph=True)
        # 3. the step x_next −= ζ ∇ is a change ∇·(−ζ/gain) of x̂0 in the sampler's update
        return (-zeta / ctx.gain) * grad

    def __repr__(self):
        return f"dps({self.A!r}, zeta={self.zeta!r}, noise={self.noise!r}, variant={self.variant!r})"


def dps(A, y: torch.Tensor, zeta, *, noise=None, variant: str = "norm") -> DPS:
    """DPS guidance: ``x_next −= ζ ∇_{x_t} ‖y − A(x̂0)‖`` per batch item.

    ``A``: a linear or nonlinear operator (anything callable and differentiable with
    ``range_shape``); ``y``: ``(B, C, *A.range_shape)``; ``zeta``: step size (float, or a callable
    ``sigma -> ζ``); ``noise``: ``GaussianNoise`` (default) or ``PoissonNoise``; ``variant``:
    ``"norm" | "squared" | "nll"``. The sample batch may be ``k·B`` (sample-major).
    """
    return DPS(A, y, zeta, noise=noise, variant=variant)
