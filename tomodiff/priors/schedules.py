"""Noise schedules: functions returning decreasing VE sigma tensors that end at 0.

Every sampler in :mod:`tomodiff.samplers` walks a 1-D tensor ``sigmas`` of length ``steps + 1``,
``sigmas[0] = σ_max > sigmas[1] > ... > sigmas[-1] = 0``, in the variance-exploding (VE)
convention ``x = x0 + σ·n``. σ is in the data's own units. The number of steps (= the number
of denoiser evaluations, NFE) is always the caller's choice.

Variance-preserving (DDPM) schedules are mapped to VE sigmas through
``x_vp = sqrt(ᾱ)·x0 + sqrt(1 − ᾱ)·n = sqrt(ᾱ)·(x0 + σ·n)`` with ``σ = sqrt((1 − ᾱ) / ᾱ)``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["karras_sigmas", "ddpm_alphas_cumprod", "ddpm_sigmas", "ddpm_linear_sigmas",
           "ddpm_cosine_sigmas", "alphas_cumprod_to_sigmas", "check_sigmas"]


def _check_steps(n) -> int:
    if isinstance(n, bool) or int(n) != n:
        raise TypeError(f"the number of steps must be an integer, got {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of steps must be >= 1, got {n}")
    return n


def _append_zero(s: torch.Tensor) -> torch.Tensor:
    return torch.cat([s, s.new_zeros(1)])


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  *, dtype=torch.float64) -> torch.Tensor:
    """EDM schedule (Karras et al. 2022, eq. 5): ``n`` steps from ``sigma_max`` to ``sigma_min``, then 0.

    ``σ_i = (σ_max^(1/ρ) + i/(n−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ`` for ``i < n``; returns shape ``(n + 1,)``.
    With ``n = 1`` the single step goes from ``sigma_max`` straight to 0.
    """
    n = _check_steps(n)
    if not (0 < sigma_min < sigma_max and math.isfinite(sigma_max)):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    if n == 1:
        return torch.tensor([sigma_max, 0.0], dtype=dtype)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho).to(dtype)


def ddpm_alphas_cumprod(num_train_steps: int = 1000, kind: str = "linear", *, beta_start: float = 1e-4,
                        beta_end: float = 0.02, cosine_s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """``ᾱ_t`` for ``t = 0 .. T−1`` of a discrete DDPM, float64, shape ``(T,)``.

    ``kind="linear"``: Ho et al. 2020, ``β_t`` linear from ``beta_start`` to ``beta_end``.
    ``kind="cosine"``: Nichol & Dhariwal 2021, ``ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2)``, ``β`` clipped at ``max_beta``.
    """
    T = _check_steps(num_train_steps)
    if kind == "linear":
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    elif kind == "cosine":
        t = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((t + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    else:
        raise ValueError(f"kind must be 'linear' or 'cosine', got {kind!r}")
    return torch.cumprod(1 - betas, dim=0)


def alphas_cumprod_to_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """VE noise level of each VP timestep: ``σ = sqrt((1 − ᾱ) / ᾱ)`` (same shape, float64)."""
    ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
    if ((ac <= 0) | (ac > 1)).any():
        raise ValueError("alphas_cumprod must lie in (0, 1]")
    return ((1 - ac) / ac).sqrt()


def _interp_log_sigma(grid: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Sigma at fractional timesteps ``t`` by linear interpolation of ``log σ`` on the integer grid."""
    log_s = grid.clamp_min(1e-20).log()
    lo = t.floor().long().clamp(0, len(grid) - 1)
    hi = (lo + 1).clamp(max=len(grid) - 1)
    w = t - lo
    return (log_s[lo] * (1 - w) + log_s[hi] * w).exp()


def ddpm_sigmas(n: int, *, kind: str = "linear", num_train_steps: int = 1000, dtype=torch.float64,
                **schedule_kwargs) -> torch.Tensor:
    """``n`` steps of a discrete DDPM schedule as VE sigmas, then 0; shape ``(n + 1,)``.

    The steps sit at ``n`` evenly spaced (fractional) timesteps from ``T − 1`` down to 0, the
    sigma between two training timesteps interpolated in ``log σ`` (as k-diffusion does), so any
    ``n`` works, including ``n > T``. ``schedule_kwargs`` go to :func:`ddpm_alphas_cumprod`.
    """
    n = _check_steps(n)
    grid = alphas_cumprod_to_sigmas(ddpm_alphas_cumprod(num_train_steps, kind, **schedule_kwargs))
    t = torch.linspace(len(grid) - 1, 0, n, dtype=torch.float64)
    return _append_zero(_interp_log_sigma(grid, t)).to(dtype)


def ddpm_linear_sigmas(n: int, **kwargs) -> torch.Tensor:
    """:func:`ddpm_sigmas` with the linear β schedule (σ_max ≈ 157 for T = 1000)."""
    return ddpm_sigmas(n, kind="linear", **kwargs)


def ddpm_cosine_sigmas(n: int, **kwargs) -> torch.Tensor:
    """:func:`ddpm_sigmas` with the cosine schedule (σ_max ≈ 3e4 for T = 1000: β clipped at 0.999)."""
    return ddpm_sigmas(n, kind="cosine", **kwargs)


def check_sigmas(sigmas) -> torch.Tensor:
    """Validate a schedule: 1-D, at least 2 entries (one step), finite, >= 0, strictly decreasing.

    Returns it as a float64 tensor. Raises ``ValueError`` naming what is wrong.
    """
    if not isinstance(sigmas, torch.Tensor):
        sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.dim() != 1:
        raise ValueError(f"sigmas must be a 1-D tensor, got shape {tuple(sigmas.shape)}")
    if sigmas.numel() < 2:
        raise ValueError(f"sigmas must hold at least 2 values (steps >= 1), got {sigmas.numel()}")
    s = sigmas.detach().to("cpu", torch.float64)
    if not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"sigmas must be finite and >= 0, got {s.tolist()}")
    if not (s[1:] < s[:-1]).all():
        i = int(torch.nonzero(s[1:] >= s[:-1])[0])
        raise ValueError(f"sigmas must be strictly decreasing, but sigmas[{i + 1}]={s[i + 1].item():.6g} "
                         f">= sigmas[{i}]={s[i].item():.6g}")
    return s
