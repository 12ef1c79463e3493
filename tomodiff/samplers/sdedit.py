"""SDEdit (Meng et al., ICLR 2022): noise an initial estimate to an intermediate level, denoise it back.

Notation map: ``x_init`` → the guide image ``x^(g)`` (an FBP, SIRT or least-squares estimate);
``t0`` → SDEdit's ``t0 ∈ (0, 1]``, here the fraction of the schedule's steps that are run;
``sigma_start`` → ``σ(t0)``; the run starts from ``x^(g) + σ(t0)·n``.

SDEdit has no data step of its own. Through :func:`~tomodiff.samplers.sample_posterior` it takes the final
data-consistency step every method takes (``final_cg``, ``final_target``); the registry's ``sdedit``
(:mod:`tomodiff.methods`) noises the TV reconstruction and ends with CG stopped at χ²/m 1 (issue 20).
"""

from __future__ import annotations

import math

import torch

from tomodiff.priors.schedules import check_sigmas

from ._common import randn
from .ddpm import ddpm

__all__ = ["sdedit"]


def sdedit(denoiser, x_init: torch.Tensor, t0: float, sigmas, *, sampler=ddpm, guidance=None,
           generator=None, callback=None, progress: bool = True, **sampler_kwargs) -> torch.Tensor:
    """Denoise ``x_init`` (``(N, C, *spatial)``) from an intermediate noise level.

    ``sigmas``: a full schedule of ``steps + 1`` values; the last ``ceil(t0·steps)`` steps are run,
    starting at ``sigma_start = sigmas[steps − ceil(t0·steps)]``. ``t0 = 1`` starts at ``σ_max``
    (almost plain generation); small ``t0`` stays close to ``x_init``. ``sampler``: :func:`ddpm`
    (default) or :func:`ddim` (``sampler_kwargs`` such as ``eta`` go to it); ``guidance`` is
    optional (e.g. ΠGDM to keep the result consistent with the data). Returns the shape of ``x_init``.
    """
    s = check_sigmas(sigmas)
    if not 0.0 < t0 <= 1.0:
        raise ValueError(f"sdedit: t0 must be in (0, 1], got {t0}")
    if not isinstance(x_init, torch.Tensor) or not torch.isfinite(x_init).all():
        raise ValueError("sdedit: x_init must be a finite tensor")
    steps = len(s) - 1
    start = steps - math.ceil(t0 * steps)
    sub = s[start:]
    # 1. forward-noise the initial estimate to σ(t0) (the generators' first draws)
    x = x_init.detach() + float(sub[0]) * randn(x_init, generator)
    # 2. run the reverse process from there
    return sampler(denoiser, x, sub, guidance=guidance, generator=generator, callback=callback,
                   progress=progress, **sampler_kwargs)
