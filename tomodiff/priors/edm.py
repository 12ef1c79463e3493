"""EDM preconditioning (Karras et al. 2022) around a network, in the phantoms' [0, 1] data scale.

Notation (EDM paper, Table 1): σ_data ``sigma_data``; c_skip = σ_d²/(σ²+σ_d²);
c_out = σ·σ_d/√(σ²+σ_d²); c_in = 1/√(σ²+σ_d²); c_noise = ln(σ)/4;
D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise); training weight λ(σ) = 1/c_out².

The network works in a normalised space ``u = (x - offset) * scale`` (``offset=0.5, scale=2`` maps
[0, 1] to [-1, 1]); :class:`EDMDenoiser` converts data and σ both ways, so callers see the
variance-exploding contract ``x = x0 + σ·n`` in data units.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def sigma_per_sample(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ (float, 0-d, ``(B,)`` or anything with B elements broadcastable over the batch) ->
    ``(B, 1, ..., 1)`` tensor on x's device and dtype."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    B = x.shape[0]
    if s.numel() == 1:
        s = s.reshape(1).expand(B)
    elif s.numel() == B:
        s = s.reshape(B)
    else:
        raise ValueError(f"sigma with shape {tuple(s.shape)} does not match a batch of {B}")
    return s.view(B, *([1] * (x.dim() - 1)))


class EDMDenoiser(nn.Module):
    """``D(x, sigma) -> x0_hat`` in data units, wrapping a network ``F(u, c_noise)``.

    x: ``(B, C, *spatial)`` in data units (phantoms: [0, 1]); sigma: noise std in data units,
    float or B values. Returns a tensor shaped like x. Differentiable in x.

    Two variants read more than the noisy image (the network's ``in_channels`` say how many):

    context = k > 0 (a 2.5D prior): x is ``(B, 2k+1, H, W)``, a stack of adjacent noisy slices
        (all at the same σ); the result is the denoised centre slice ``(B, 1, H, W)``, and EDM's
        skip term uses the centre slice.
    conditional: the network also sees a condition image ``cond`` ``(B, 1, H, W)`` in data units
        (a classical reconstruction of the same slice) and a presence flag; ``cond=None`` (or
        ``keep`` 0 for a sample) gives the unconditional denoiser of the same network, which is
        what classifier-free guidance combines it with.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, offset: float = 0.5, scale: float = 2.0, *,
                 context: int = 0, conditional: bool = False):
        super().__init__()
        self.net = net
        self.sigma_data, self.offset, self.scale = float(sigma_data), float(offset), float(scale)
        self.context, self.conditional = int(context), bool(conditional)

    def _net_input(self, u: torch.Tensor, c_in: torch.Tensor, cond_u, keep) -> torch.Tensor:
        if not self.conditional:
            return c_in * u
        shape = (u.shape[0], 1, *u.shape[2:])
        if cond_u is None:
            present = u.new_zeros(shape)
            return torch.cat([c_in * u, present, present], dim=1)
        present = u.new_ones(shape) if keep is None else \
            keep.to(u.dtype).view(-1, *([1] * (u.dim() - 1))).expand(shape)
        return torch.cat([c_in * u, cond_u.to(u.dtype) * present, present], dim=1)

    def precond(self, u: torch.Tensor, s: torch.Tensor, cond_u: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """Preconditioned denoiser in the normalised space; ``s`` is ``(B, 1, ...)`` (normalised σ);
        ``cond_u`` the normalised condition, ``keep`` ``(B,)`` 1/0 per sample (condition dropout)."""
        sd = self.sigma_data
        s = s.clamp_min(1e-8)
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd / (s ** 2 + sd ** 2).sqrt()
        c_in = 1.0 / (s ** 2 + sd ** 2).sqrt()
        c_noise = s.reshape(-1).log() / 4
        centre = u[:, self.context:self.context + 1] if self.context else u
        return c_skip * centre + c_out * self.net(self._net_input(u, c_in, cond_u, keep), c_noise).to(u.dtype)

    def forward(self, x: torch.Tensor, sigma, cond: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x0_hat`` in data units; conditional: ``cond`` like ``x`` (data units), ``keep`` ``(B,)``
        1/0 per sample (0: that sample's unconditional estimate, so that both halves of classifier-free
        guidance run as one batch)."""
        s = sigma_per_sample(sigma, x) * self.scale
        dtype = next(self.net.parameters()).dtype
        u = ((x - self.offset) * self.scale).to(dtype)
        cond_u = None if cond is None else ((cond - self.offset) * self.scale).to(dtype)
        return (self.precond(u, s.to(dtype), cond_u, keep) / self.scale + self.offset).to(x.dtype)

    def loss(self, u0: torch.Tensor, s: torch.Tensor, noise: torch.Tensor, cond_u: torch.Tensor | None = None,
             keep: torch.Tensor | None = None) -> torch.Tensor:
        """EDM training loss (per sample, ``(B,)``) on clean normalised data ``u0`` at normalised σ ``s``
        (2.5D: ``u0`` is the clean slab and the target its centre slice)."""
        sd = self.sigma_data
        w = (s ** 2 + sd ** 2) / (s * sd) ** 2
        d = self.precond(u0 + s * noise, s, cond_u, keep)
        target = u0[:, self.context:self.context + 1] if self.context else u0
        return (w * (d - target) ** 2).flatten(1).mean(1)


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM's sampling schedule: n decreasing σ from sigma_max to sigma_min, then a final 0."""
    i = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    s = (sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


@torch.no_grad()
def heun_sample(denoiser, shape, *, steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 40.0,
                generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Unconditional EDM Heun sampler (Karras 2022, Alg. 1, deterministic). σ values are in the
    denoiser's data units; ``shape`` includes the batch. Returns the final sample. For training
    previews; the package's samplers live in ``tomodiff.samplers``."""
    sig = karras_sigmas(steps, sigma_min, sigma_max)
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device) * sig[0].item()
    for i in range(steps):
        s, s_next = sig[i].item(), sig[i + 1].item()
        # 1. Euler step along dx/dσ = (x - D(x; σ)) / σ
        d = (x - denoiser(x, s)) / s
        x_next = x + (s_next - s) * d
        # 2. second-order (Heun) correction except at the last step (σ_next = 0)
        if s_next > 0:
            d2 = (x_next - denoiser(x_next, s_next)) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d2)
        x = x_next
    return x


def lognormal_sigma(n: int, generator: torch.Generator, p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """EDM's training distribution: ln σ ~ N(p_mean, p_std²) (normalised units)."""
    return (torch.randn(n, generator=generator) * p_std + p_mean).exp()


def cosine_sigma(n: int, generator: torch.Generator, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """σ of the cosine schedule at t ~ U(0, 1): σ = tan(π t / 2), clipped to [sigma_min, sigma_max]."""
    t = torch.rand(n, generator=generator)
    lo, hi = math.atan(sigma_min) * 2 / math.pi, math.atan(sigma_max) * 2 / math.pi
    return torch.tan((lo + (hi - lo) * t) * math.pi / 2)


NOISE_DISTRIBUTIONS = {"karras": lognormal_sigma, "cosine": cosine_sigma}
