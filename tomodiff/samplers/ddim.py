"""DDIM(η) sampling (Song, Meng & Ermon 2021) in the VE convention ``x_t = x0 + σ_t·n``.

Notation map (code → paper): ``x`` → ``x_t``; ``sigma``, ``sigma_next`` → ``σ_t``, ``σ_s``;
``denoised`` → ``x̂0``; ``(x − x̂0)/σ_t`` → ``ε_θ(x_t)``; ``sigma_up`` → DDIM's ``σ_t(η)`` in VE units,
``η·σ_s·sqrt(1 − σ_s²/σ_t²)``; ``sigma_down = sqrt(σ_s² − σ_up²)`` → the coefficient of ``ε_θ``.
η = 0: deterministic DDIM (Euler on the probability-flow ODE); η = 1: the same law as :func:`ddpm`.
"""

from __future__ import annotations

import torch

from ._common import (ancestral_split, check_start, check_step_result, combine, guided_denoise,
                      progress_range, randn)

__all__ = ["ddim"]


def ddim(denoiser, x_T: torch.Tensor, sigmas, *, eta: float = 0.0, guidance=None, generator=None,
         callback=None, progress: bool = True) -> torch.Tensor:
    """DDIM sampling with stochasticity ``eta`` in ``[0, 1]``; arguments as :func:`~tomodiff.samplers.ddpm`.

    Returns the final sample, shape of ``x_T``. One denoiser evaluation per step.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    s = check_start(x_T, sigmas)
    guidance = combine(guidance)
    steps = len(s) - 1
    x = x_T.detach()
    for i in progress_range(steps, progress, f"ddim(eta={eta:g})"):
        sigma, sigma_next = float(s[i]), float(s[i + 1])
        sigma_down, sigma_up = ancestral_split(sigma, sigma_next, eta)
        # 1. x̂0 = D(x_t, σ_t), plus the guidances' corrections
        x0, x0_g = guided_denoise(denoiser, x, sigma, sigma_next, 1.0 - sigma_down / sigma, i, steps, guidance)
        # 2. move to σ_down along ε̂ = (x_t − x̂0)/σ_t: x = x̂0 + σ_down·ε̂
        x = x0_g + (sigma_down / sigma) * (x - x0_g)
        # 3. add σ_up of fresh noise (η > 0 only)
        if sigma_up > 0:
            x = x + sigma_up * randn(x, generator)
        check_step_result(x, i, steps, sigma)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": x0,
                      "denoised_guided": x0_g})
    return x
