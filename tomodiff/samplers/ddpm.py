"""DDPM ancestral sampling (Ho et al. 2020) in the VE convention ``x_t = x0 + σ_t·n``.

Notation map (code → paper, VE form of DDPM's posterior ``q(x_{t−1} | x_t, x0)``):
``x`` → ``x_t``; ``sigma``, ``sigma_next`` → ``σ_t``, ``σ_s`` (``s = t−1``); ``denoised`` → ``x̂0``;
``mean`` → ``μ̃_t = x̂0 + (σ_s²/σ_t²)(x_t − x̂0)``; ``std`` → ``sqrt(β̃_t)`` in VE units
``σ_s·sqrt(1 − σ_s²/σ_t²)``. (With ``x_vp = x/sqrt(1+σ²)`` this is exactly DDPM's ancestral step.)
"""

from __future__ import annotations

import math

import torch

from ._common import check_start, check_step_result, combine, guided_denoise, progress_range, randn

__all__ = ["ddpm"]


def ddpm(denoiser, x_T: torch.Tensor, sigmas, *, guidance=None, generator=None, callback=None,
         progress: bool = True) -> torch.Tensor:
    """Ancestral sampling from ``x_T`` (shape ``(N, C, *spatial)``, ``N`` samples in one batch).

    ``sigmas``: decreasing noise levels (``steps + 1`` values, usually ending at 0; see
    :mod:`tomodiff.priors.schedules`); ``x_T`` should be drawn at ``sigmas[0]``
    (``sigmas[0]·randn``). ``guidance``: a guidance, a list of them (summed) or ``None``.
    ``generator``: a ``torch.Generator`` or a list of them (one per block of the batch, see
    :func:`tomodiff.samplers._common.randn`). ``callback(info)`` gets a dict with ``i``, ``x``,
    ``sigma``, ``sigma_next``, ``denoised``, ``denoised_guided`` after each step.
    Returns the final sample, shape of ``x_T``. One denoiser evaluation per step.
    """
    s = check_start(x_T, sigmas)
    guidance = combine(guidance)
    steps = len(s) - 1
    x = x_T.detach()
    for i in progress_range(steps, progress, "ddpm"):
        sigma, sigma_next = float(s[i]), float(s[i + 1])
        ratio = (sigma_next / sigma) ** 2                     # σ_s²/σ_t²
        # 1. x̂0 = D(x_t, σ_t), plus the guidances' corrections
        x0, x0_g = guided_denoise(denoiser, x, sigma, sigma_next, 1.0 - ratio, i, steps, guidance)
        # 2. posterior mean μ̃ = x̂0 + (σ_s²/σ_t²)(x_t − x̂0)
        x = x0_g + ratio * (x - x0_g)
        # 3. add fresh noise with the posterior std (none on the last step to σ = 0)
        std = sigma_next * math.sqrt(1.0 - ratio)
        if std > 0:
            x = x + std * randn(x, generator)
        check_step_result(x, i, steps, sigma)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": x0,
                      "denoised_guided": x0_g})
    return x
