"""The denoiser contract and adapters that bring VP (DDPM) networks into it.

Contract: a denoiser is any callable ``D(x, sigma) -> x0_hat`` with ``x = x0 + sigma·n``
(variance exploding, VE), ``x`` of shape ``(B, C, *spatial)``, ``sigma`` the noise standard
deviation in the data's units, a float or a tensor broadcastable over the batch (``()``, ``(B,)`` or
``(B, 1, ..., 1)``); ``x0_hat`` has the shape of ``x`` and estimates ``E[x0 | x]``.
The samplers always pass ``sigma`` as a ``(B,)`` tensor.

Notation map (VP ↔ VE), ``ᾱ`` = ``alphas_cumprod[t]``:
``x_vp = sqrt(ᾱ)·x_ve``, ``σ = sqrt((1 − ᾱ)/ᾱ)``, ``ᾱ = 1/(1 + σ²)``.
eps-prediction: ``x0 = x_ve − σ·ε``; v-prediction (``v = sqrt(ᾱ)ε − sqrt(1−ᾱ)x0``):
``x0 = sqrt(ᾱ)·x_vp − sqrt(1 − ᾱ)·v``; x0-prediction: the output itself.
"""

from __future__ import annotations

from typing import Callable

import torch

from .schedules import alphas_cumprod_to_sigmas

__all__ = ["batch_sigma", "VPDenoiser"]

PREDICTIONS = ("eps", "v", "x0")


def batch_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` as a ``(B, 1, ..., 1)`` tensor of ``x``'s dtype and device (B = ``x.shape[0]``).

    Accepts a float, a 0-d tensor, a ``(B,)`` tensor, or anything broadcastable to
    ``(B, 1, ..., 1)``; raises ``ValueError`` for other shapes or for negative / non-finite values.
    """
    B, nd = x.shape[0], x.dim()
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.dim() == 1 and s.numel() in (1, B):
        s = s.reshape(-1, *([1] * (nd - 1)))
    try:
        s = torch.broadcast_to(s, (B,) + (1,) * (nd - 1)) if s.dim() <= nd else None
    except RuntimeError:
        s = None
    if s is None:
        raise ValueError(f"sigma must be a float or a tensor of shape (), ({B},) or ({B}, 1, ...), "
                         f"got shape {tuple(torch.as_tensor(sigma).shape)} for x of shape {tuple(x.shape)}")
    if not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError("sigma must be finite and >= 0")
    return s


class VPDenoiser:
    """Wrap a network trained in the VP/DDPM convention as a VE denoiser ``D(x, sigma) -> x0_hat``.

    Parameters
    ----------
    model:
        ``model(x_vp, t) -> prediction`` with ``x_vp`` of shape ``(B, C, *spatial)`` and ``t`` a
        ``(B,)`` tensor of timesteps (see ``timestep``); the prediction has ``x``'s shape.
    alphas_cumprod:
        The training schedule's ``ᾱ_t``, shape ``(T,)`` (e.g. :func:`~tomodiff.priors.schedules.ddpm_alphas_cumprod`).
    prediction:
        ``"eps"`` (noise), ``"v"`` (velocity, Salimans & Ho 2022) or ``"x0"`` (clean image).
    timestep:
        ``"discrete"`` (default): ``t`` is the fractional index into ``alphas_cumprod`` at which
        ``σ(t) = sigma``, interpolated in ``log σ`` (as k-diffusion does); ``"rounded"``: the nearest
        integer index (for networks that only accept integers; the denoiser then sees ``σ(t)``, not
        ``sigma``, and a small mismatch); or a callable ``sigma -> t`` for continuous-time models.
    """

    def __init__(self, model: Callable, alphas_cumprod, *, prediction: str = "eps", timestep="discrete"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if not (callable(timestep) or timestep in ("discrete", "rounded")):
            raise ValueError(f"timestep must be 'discrete', 'rounded' or a callable, got {timestep!r}")
        self.model, self.prediction, self.timestep = model, prediction, timestep
        self.sigmas = alphas_cumprod_to_sigmas(alphas_cumprod)  # (T,) float64, increasing in t
        if not (self.sigmas[1:] > self.sigmas[:-1]).all():
            raise ValueError("alphas_cumprod must be strictly decreasing")
        self._log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep of each sigma (clamped to ``[0, T−1]``), float64, same shape."""
        log_s = sigma.to(torch.float64).clamp_min(1e-20).log()
        ls = self._log_sigmas.to(log_s.device)
        hi = torch.searchsorted(ls, log_s.reshape(-1)).clamp(1, len(ls) - 1)
        lo = hi - 1
        w = ((log_s.reshape(-1) - ls[lo]) / (ls[hi] - ls[lo])).clamp(0, 1)
        return (lo + w).reshape(sigma.shape)

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = batch_sigma(sigma, x)                         # (B, 1, ..., 1), VE σ
        if callable(self.timestep):
            t = self.timestep(s.reshape(-1))
        else:
            t = self.sigma_to_t(s.reshape(-1))
            if self.timestep == "rounded":
                t = t.round()
                # 1. the network sees σ(t) exactly: use it for the conversion too
                s = self.sigmas.to(x.device)[t.long()].to(x.dtype).reshape(s.shape)
            t = t.to(x.dtype)
        a = 1.0 / (1.0 + s * s)                           # ᾱ
        x_vp = x * a.sqrt()
        out = self.model(x_vp, t)
        if out.shape != x.shape:
            raise ValueError(f"VPDenoiser: model returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
        if self.prediction == "eps":
            return x - s * out
        if self.prediction == "v":
            return a.sqrt() * x_vp - (1 - a).sqrt() * out
        return out

    def __repr__(self):
        return (f"VPDenoiser({self.model!r}, T={len(self.sigmas)}, prediction={self.prediction!r}, "
                f"timestep={self.timestep!r})")
