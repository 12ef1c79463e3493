"""Emission and absorption from rendered images: a TV-regularised fit and DPS with a per-channel prior.

The problem is ``y = R(x) + noise`` with ``R`` an :class:`~tomodiff.render.EmissionAbsorption`
renderer, ``x`` ``(B, 2, Z, Y, X)`` (emission, absorption) and ``y`` ``(B, 1, A, V, U)``. Unlike the
CT methods, ``R`` is nonlinear and mixes its two input channels, so neither CG nor slab-wise solving
applies; these are the two routes that do:

- :func:`fit_tv`: what users of differentiable rendering run as a baseline — Adam on
  ``½‖R(x) − y‖² + lam·Σ_c TV_ε(x_c)`` with ``x ≥ 0`` (projected after every step).
- :func:`fit_dps`: DPS (:mod:`tomodiff.samplers.dps`), the prior's denoiser applied to each channel
  as if it were a volume of its own (a slice prior denoises every axial slice of both).

``scale`` maps each channel to the prior's units: the samplers work on ``x / scale`` and the
operator sees ``scale · x'`` (``None``: both channels already in the prior's range, e.g. [0, 1]).
:func:`solve_render` is what :func:`tomodiff.recon.reconstruct` calls for a renderer.
"""

from __future__ import annotations

import math

import torch

from ..priors.schedules import karras_sigmas
from ..render import EmissionAbsorption
from ..samplers import ddpm, dps
from ..samplers._common import randn
from .tv import gradient

METHODS = ("tv", "dps")
# Defaults chosen on the procedural fallback of the render demo (ellipsoids:13, 32³, 8 orthographic views
# at 20° elevation, back-light 1, 1% noise; tomodiff/demos/render_demo.py), never on the engine block, by
# PSNR on novel views. TV: lam 0.001 of {0.0005, 0.001, 0.002, 0.008, 0.03} (150 steps at lr 0.04 as good
# as 300 at 0.02). DPS with the ct-slice prior from noise (ζ 1–100, 30 steps) stayed below 13.3 dB on novel
# views; warm-started from TV at σ 0.05 with ζ 0.5 (of σ 0.05–0.3, ζ 0.5–10, norm and squared) it was best.
# Since then (issue 24, benchmarks/results/render_dps_sweep.md), on ct-slab's training object bonsai_tree:
# the line step (ζ 1.5 of the line search) with its stop at χ²/m 1 (needs sigma_y; without it no stop)
# 33.13 dB on novel views, against 32.60 for norm ζ 0.5 and 32.97 for it at 50 steps (TV 33.84).
TV_DEFAULTS = {"lam": 0.001, "n_iter": 150, "lr": 0.04, "eps": 1e-3, "nonneg": True}
DPS_DEFAULTS = {"zeta": 1.5, "variant": "line", "target": 1.0, "x_init": "tv", "sigma_start": 0.05}
DPS_STEPS = 20


def check_problem(R, y: torch.Tensor, who: str) -> torch.Tensor:
    """``R`` must be an :class:`EmissionAbsorption` renderer and ``y`` its images ``(B, 1, A, V, U)``."""
    if not isinstance(R, EmissionAbsorption):
        raise TypeError(f"{who}: R must be a tomodiff.render.EmissionAbsorption renderer, got {type(R).__name__}")
    return R.check_images(y, who)


def channel_scale(scale, like: torch.Tensor) -> torch.Tensor:
    """``scale`` as a ``(1, 2, 1, 1, 1)`` tensor: ``None`` → 1, a number → both channels, a pair →
    (emission, absorption); every entry finite and > 0."""
    if scale is None or (isinstance(scale, str) and scale == "auto"):
        values = [1.0, 1.0]
    elif isinstance(scale, (int, float)) and not isinstance(scale, bool):
        values = [float(scale)] * 2
    else:
        values = [float(v) for v in scale]
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"scale must be None, a number > 0 or a pair (emission, absorption) of them, got {scale!r}")
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 2, 1, 1, 1)


class ScaledRenderer:
    """``x' ↦ R(scale · x')``: the renderer seen from the prior's units (what DPS differentiates)."""

    def __init__(self, R: EmissionAbsorption, scale: torch.Tensor):
        self.R, self.scale = R, scale
        self.domain_shape, self.range_shape = R.domain_shape, R.range_shape

    def __call__(self, x):
        return self.R(x * self.scale.to(x))

    def __repr__(self):
        return f"ScaledRenderer({self.R!r}, scale={self.scale.flatten().tolist()})"


def smooth_tv(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``Σ_voxels sqrt(‖∇x‖² + ε²) − ε`` per ``(b, c)``: isotropic TV (voxel differences, as in
    :mod:`tomodiff.recon.tv`), smoothed by ``ε`` so that its gradient exists where ``∇x = 0``."""
    g = gradient(x, x.dim() - 2)
    return ((g.pow(2).sum(dim=2) + eps * eps).sqrt() - eps).flatten(2).sum(-1)


def fit_tv(R: EmissionAbsorption, y: torch.Tensor, *, lam: float = TV_DEFAULTS["lam"],
           n_iter: int = TV_DEFAULTS["n_iter"], lr: float = TV_DEFAULTS["lr"], eps: float = TV_DEFAULTS["eps"],
           nonneg: bool = True, x0: torch.Tensor | None = None, scale=None, callback=None) -> torch.Tensor:
    """TV-regularised fit of ``(emission, absorption)`` to images ``y``: ``(B, 2, Z, Y, X)``.

    Minimises ``½‖R(x) − y‖² + lam·Σ_c TV_ε(x_c / scale_c)`` per item with Adam (step ``lr`` in the
    scaled units, cosine-decayed to 0 over ``n_iter`` steps), projecting onto ``x ≥ 0`` after every
    step when ``nonneg``. ``x0``: start (default zeros); ``callback(k, x)`` after step ``k`` (1-based).
    ``lam`` is in units of ``y``² per (scaled ``x`` unit × voxel).
    """
    y = check_problem(R, y, "fit_tv")
    if not (math.isfinite(lam) and lam >= 0 and lr > 0 and eps > 0) or int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"fit_tv: need lam >= 0, lr > 0, eps > 0 and an integer n_iter >= 1, "
                         f"got lam={lam}, lr={lr}, eps={eps}, n_iter={n_iter}")
    s = channel_scale(scale, y)
    shape = (y.shape[0], 2, *R.domain_shape)
    if x0 is not None and tuple(x0.shape) != shape:
        raise ValueError(f"fit_tv: x0 must have shape {shape}, got {tuple(x0.shape)}")
    x = (torch.zeros(shape, dtype=y.dtype, device=y.device) if x0 is None else x0.detach().to(y) / s).clone()
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(n_iter))
    with torch.enable_grad():
        for k in range(1, int(n_iter) + 1):
            opt.zero_grad(set_to_none=True)
            r = R(x * s) - y
            loss = 0.5 * r.pow(2).sum() + lam * smooth_tv(x, eps).sum()
            loss.backward()
            opt.step()
            sched.step()
            if nonneg:
                with torch.no_grad():
                    x.clamp_(min=0.0)
            if callback is not None:
                callback(k, (x * s).detach())
    return (x * s).detach()


def per_channel(denoiser):
    """A denoiser for ``(N, 2, *spatial)`` from one for single-channel inputs: each channel is
    denoised as an item of its own, at the same noise level."""

    def D(x, sigma):
        n, c = x.shape[:2]
        out = denoiser(x.reshape(n * c, 1, *x.shape[2:]), sigma.repeat_interleave(c))
        return out.reshape(x.shape)

    return D


def fit_dps(R: EmissionAbsorption, y: torch.Tensor, prior, *, steps: int = 50, n_samples: int = 1,
            zeta: float = DPS_DEFAULTS["zeta"], variant: str = DPS_DEFAULTS["variant"], seed: int = 0,
            scale=None, sigma_max: float | None = None, x_init: torch.Tensor | None = None,
            sigma_start: float | None = None, nonneg: bool = True, sigma_y: float = 0.0, target: float = 1.0,
            progress: bool = False, callback=None) -> tuple[torch.Tensor, int]:
    """DPS posterior samples of ``(emission, absorption)``: ``((n_samples, B, 2, Z, Y, X), nfe)``.

    ``prior``: a prior or denoiser ``D(x, sigma)`` for single-channel inputs, applied per channel
    (:func:`per_channel`). Ancestral DDPM sampling on the Karras schedule from ``sigma_max`` (default
    the prior's) to 0.002 in ``steps`` steps, guided by DPS per item (:func:`tomodiff.samplers.dps`: by
    default the line-searched step that stops at χ²/m ``target``; ``"norm"``: ``x_next −= ζ ∇‖y − R(x̂0)‖``).
    A warm start ``x_init`` ``(B, 2, Z, Y, X)`` (e.g. :func:`fit_tv`) with ``sigma_start`` starts from
    ``x_init + σ_start·n`` instead. Sample ``i`` draws from its
    own generator, seeded from ``seed`` and ``i``. ``nonneg`` clamps the final samples at 0
    (emission and absorption are non-negative). ``sigma_y``, ``target``: the noise std of ``y`` and
    the χ²/m at which the ``"line"`` variant's step stops (:func:`tomodiff.samplers.dps`; 0: no stop).
    ``callback(done, steps)`` after every step.
    """
    y = check_problem(R, y, "fit_dps")
    if prior is None:
        raise ValueError("fit_dps needs a prior: pass tomodiff.priors.load('ct-slice') or any D(x, sigma)")
    if int(steps) != steps or steps < 1 or int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"fit_dps: steps and n_samples must be integers >= 1, got {steps} and {n_samples}")
    denoiser = getattr(prior, "denoiser", prior)
    s = channel_scale(scale, y)
    B = y.shape[0]
    shape = (n_samples * B, 2, *R.domain_shape)
    if (x_init is None) != (sigma_start is None):
        raise ValueError("fit_dps: a warm start needs both x_init and sigma_start")
    if x_init is not None and tuple(x_init.shape) != (B, 2, *R.domain_shape):
        raise ValueError(f"fit_dps: x_init must have shape {(B, 2, *R.domain_shape)}, got {tuple(x_init.shape)}")
    top = float(sigma_start if sigma_start is not None else
                sigma_max if sigma_max is not None else getattr(prior, "sigma_max", None) or 80.0)
    sigmas = karras_sigmas(int(steps), 0.002, top)
    generators = [torch.Generator().manual_seed(int(seed) * 1000 + i) for i in range(int(n_samples))]
    x_T = top * randn(torch.empty(shape, dtype=y.dtype, device=y.device), generators)
    if x_init is not None:
        x_T = x_T + (x_init.to(y) / s).repeat(n_samples, 1, 1, 1, 1)
    guidance = dps(ScaledRenderer(R, s), y, zeta, variant=variant, sigma_y=float(sigma_y or 0.0), target=target)
    hook = None if callback is None else (lambda info: callback(info["i"] + 1, int(steps)))
    x = ddpm(per_channel(denoiser), x_T, sigmas, guidance=guidance, generator=generators, callback=hook,
             progress=progress)
    x = x * s
    if nonneg:
        x = x.clamp_min(0.0)
    return x.reshape(n_samples, B, 2, *R.domain_shape), int(steps)


def solve_render(R, y, method: str, *, prior=None, steps: int | None = None, n_samples: int = 1, seed: int = 0,
                 scale=None, sigma_y: float | None = None, progress: bool = False, callback=None, **options):
    """``(samples (n, B, 2, Z, Y, X), nfe, options as used)`` of ``method`` (``"tv"`` or ``"dps"``).

    tv: :func:`fit_tv` with options ``lam, n_iter, lr, eps, nonneg, x0`` (one "sample", 0 NFE);
    dps: :func:`fit_dps` with options ``zeta, variant, sigma_max, x_init, sigma_start, nonneg``, by
    default warm-started from :func:`fit_tv` (``x_init="tv"``, ``sigma_start`` 0.05 in the scaled
    units: from noise it fitted far worse, see :data:`DPS_DEFAULTS`); ``x_init=None`` samples from noise.
    ``steps`` defaults to :data:`DPS_STEPS`.
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} does not apply to a renderer (nonlinear, two channels); "
                         f"choose one of {METHODS}")
    if method == "tv":
        opts = {**TV_DEFAULTS, **options}
        cb = None if callback is None else (lambda k, x: callback(k, opts["n_iter"]))
        x = fit_tv(R, y, scale=scale, callback=cb, **opts)
        return x[None], 0, opts
    opts = {**DPS_DEFAULTS, **options}
    if opts["x_init"] is None:
        opts["sigma_start"] = options.get("sigma_start")  # from noise, unless the caller says otherwise
    run = dict(opts)
    if isinstance(opts["x_init"], str):
        if opts["x_init"] != "tv":
            raise ValueError(f"dps on a renderer: x_init must be 'tv', a tensor or None, got {opts['x_init']!r}")
        run["x_init"] = fit_tv(R, y, scale=scale, **TV_DEFAULTS)
    samples, nfe = fit_dps(R, y, prior, steps=steps or DPS_STEPS, n_samples=n_samples, seed=seed, scale=scale,
                           sigma_y=sigma_y or 0.0, progress=progress, callback=callback, **run)
    if isinstance(opts["x_init"], torch.Tensor):  # provenance names it, not its values
        opts["x_init"] = f"given tensor {tuple(opts['x_init'].shape)}"
    return samples, nfe, opts
