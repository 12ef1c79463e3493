"""What every sampler loop shares: input checks, seeded noise, the guided denoiser call, errors.

How guidance enters a step (the one rule all guidances follow)
-------------------------------------------------------------
A guidance is a callable ``g(ctx) -> Δ`` returning a correction ``Δ`` to the denoised estimate
``x̂0`` (data units, the shape of ``x``); the step then uses ``x̂0 + Σ Δ_k``. Corrections of
several guidances are summed. ``ctx`` (:class:`StepContext`) carries ``x_t``, ``x̂0 = D(x_t, σ_t)``,
``σ_t``, ``σ_next`` and ``gain = ∂x_next/∂x̂0`` (a scalar of the sampler's update), so that
guidances defined as a step on ``x_next`` (DPS, custom losses: ``x_next −= ζ ∇_{x_t} L``) can return
``Δ = −ζ ∇L / gain``, and guidances defined on the posterior mean (ΠGDM's Tweedie form
``E[x0|x_t, y] ≈ x̂0 + σ_t² ∇_{x_t} log p(y|x_t)``) return their term directly.
Guidances with ``needs_grad = True`` get ``ctx.x`` with ``requires_grad`` and ``ctx.denoised``
attached to the graph; gradients are enabled only inside that call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from tomodiff.operators.base import check_measurement  # noqa: F401 (re-exported for the samplers)
from tomodiff.priors.schedules import check_sigmas

__all__ = ["SamplingError", "StepContext", "Guidance", "SumGuidance", "combine"]


class SamplingError(RuntimeError):
    """Sampling stopped: a non-finite value or a malformed denoiser output, with the step named."""


@dataclass(frozen=True)
class StepContext:
    """What a guidance sees at step ``index`` (0-based) of ``steps``.

    x: ``(N, C, *spatial)`` current ``x_t`` (requires grad for gradient guidances).
    denoised: ``x̂0 = D(x_t, σ_t)``, same shape (attached to the graph for gradient guidances).
    sigma, sigma_next: ``σ_t`` and ``σ_next`` (floats, data units).
    gain: ``∂x_next/∂x̂0`` of the sampler's update (scalar in ``(0, 1]``).
    """

    index: int
    steps: int
    x: torch.Tensor
    denoised: torch.Tensor
    sigma: float
    sigma_next: float
    gain: float


class Guidance:
    """Base class: subclasses implement ``__call__(ctx) -> Δx̂0``; ``a + b`` sums two guidances."""

    needs_grad: bool = True

    def __call__(self, ctx: StepContext) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def __add__(self, other):
        return combine(self, other)


class SumGuidance(Guidance):
    """Several guidances applied at once: the corrections are summed (each sees the same ``x̂0``)."""

    def __init__(self, parts):
        self.parts = list(parts)
        self.needs_grad = any(getattr(p, "needs_grad", True) for p in self.parts)

    def __call__(self, ctx):
        total = None
        for p in self.parts:
            d = p(ctx)
            if d is not None:
                total = d if total is None else total + d
        return total

    def __repr__(self):
        return " + ".join(map(repr, self.parts))


def combine(*guidances) -> Guidance | None:
    """Sum guidances (``None`` entries are dropped; nested lists and sums are flattened)."""
    flat = []
    for g in guidances:
        if g is None:
            continue
        if isinstance(g, (list, tuple)):
            c = combine(*g)
            if c is not None:
                flat.append(c)
        elif isinstance(g, SumGuidance):
            flat.extend(g.parts)
        else:
            if not callable(g):
                raise TypeError(f"a guidance must be callable, got {type(g).__name__}")
            flat.append(g)
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else SumGuidance(flat)


# ---------------------------------------------------------------------------- checks
def check_start(x: torch.Tensor, sigmas) -> torch.Tensor:
    """Validate the starting tensor and the schedule; returns sigmas as float64 on the CPU."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x_T must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or not x.is_floating_point():
        raise ValueError(f"x_T must be a floating tensor of shape (N, C, ...), got {x.dtype} {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x_T contains NaN or Inf")
    return check_sigmas(sigmas)


def _where(index: int, steps: int, sigma: float) -> str:
    return f"step {index + 1} of {steps} (sigma={sigma:.4g})"


def check_denoised(x0, x: torch.Tensor, index: int, steps: int, sigma: float, what="denoiser output"):
    if not isinstance(x0, torch.Tensor):
        raise SamplingError(f"{_where(index, steps, sigma)}: {what} must be a tensor, got {type(x0).__name__}")
    if x0.shape != x.shape:
        raise SamplingError(f"{_where(index, steps, sigma)}: {what} has shape {tuple(x0.shape)}, "
                            f"expected the input's shape {tuple(x.shape)}")
    bad = ~torch.isfinite(x0)
    if bad.any():
        raise SamplingError(f"{_where(index, steps, sigma)}: {what} contains {int(bad.sum())} NaN/Inf "
                            f"value(s) out of {x0.numel()}")


# ---------------------------------------------------------------------------- noise
def _check_generators(generator, n_items: int):
    if isinstance(generator, (list, tuple)):
        if len(generator) == 0 or n_items % len(generator):
            raise ValueError(f"a list of {len(generator)} generators must evenly divide the batch of {n_items}")
        return list(generator)
    return generator


def randn(like: torch.Tensor, generator=None) -> torch.Tensor:
    """Standard normal noise shaped like ``like``.

    ``generator``: ``None``, a ``torch.Generator``, or a list of ``G`` generators, ``G`` dividing the
    batch: generator ``g`` fills the ``g``-th contiguous block of ``N/G`` items, so a batch of ``k``
    samples drawn with ``k`` generators equals ``k`` runs with one each. Numbers are drawn on the
    generator's device (CPU by default) and moved, so a seed gives the same result on any device.
    """
    gens = _check_generators(generator, like.shape[0])

    def draw(shape, g):
        dev = g.device if g is not None else torch.device("cpu")
        return torch.randn(shape, generator=g, dtype=like.dtype, device=dev).to(like.device)

    if isinstance(gens, list):
        per = like.shape[0] // len(gens)
        return torch.cat([draw((per, *like.shape[1:]), g) for g in gens])
    return draw(like.shape, gens)


# ---------------------------------------------------------------------------- the guided call
def guided_denoise(denoiser, x: torch.Tensor, sigma: float, sigma_next: float, gain: float,
                   index: int, steps: int, guidance) -> tuple[torch.Tensor, torch.Tensor]:
    """One denoiser evaluation plus guidance: returns ``(x̂0, x̂0 + ΣΔ)``, both detached."""
    s_in = x.new_full((x.shape[0],), sigma)
    delta = None
    if guidance is not None and getattr(guidance, "needs_grad", True):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = denoiser(xg, s_in)
            check_denoised(x0, x, index, steps, sigma)
            delta = guidance(StepContext(index, steps, xg, x0, sigma, sigma_next, gain))
        x0 = x0.detach()
    else:
        with torch.no_grad():
            x0 = denoiser(x, s_in)
            check_denoised(x0, x, index, steps, sigma)
            if guidance is not None:
                delta = guidance(StepContext(index, steps, x, x0, sigma, sigma_next, gain))
    if delta is None:
        return x0, x0
    delta = delta.detach()
    check_denoised(delta, x, index, steps, sigma, what="guidance correction")
    return x0, x0 + delta


def check_step_result(x: torch.Tensor, index: int, steps: int, sigma: float) -> None:
    bad = ~torch.isfinite(x)
    if bad.any():
        raise SamplingError(f"{_where(index, steps, sigma)}: the updated sample contains {int(bad.sum())} "
                            f"NaN/Inf value(s)")


def progress_range(steps: int, progress: bool, desc: str):
    return tqdm(range(steps), disable=not progress, desc=desc, leave=False)


def ancestral_split(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """``(σ_down, σ_up)`` of a DDIM(η) step in VE form, ``σ_down² + σ_up² = σ_next²``.

    ``σ_up = η·σ_next·sqrt(1 − σ_next²/σ²)`` is η times the DDPM posterior std; η = 1 gives the
    ancestral (DDPM) step, η = 0 the deterministic DDIM (probability-flow Euler) step.
    """
    up = min(sigma_next, eta * sigma_next * math.sqrt(max(0.0, 1.0 - (sigma_next / sigma) ** 2)))
    return math.sqrt(max(0.0, sigma_next**2 - up**2)), up


# ---------------------------------------------------------------------------- measurements
def check_sigma_y(sigma_y, who: str) -> float:
    try:
        s = float(sigma_y)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{who}: sigma_y must be a number, got {sigma_y!r}") from err
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"{who}: sigma_y must be finite and >= 0, got {sigma_y}")
    return s


def match_batch(y: torch.Tensor, x: torch.Tensor, who: str) -> torch.Tensor:
    """Tile ``y`` (batch ``B``) to ``x``'s batch ``k·B`` (sample-major: item ``s·B + b`` ↔ ``y[b]``)."""
    B, N = y.shape[0], x.shape[0]
    if N == B:
        return y.to(dtype=x.dtype, device=x.device)
    if N % B:
        raise ValueError(f"{who}: the sample batch {N} is not a multiple of y's batch {B}")
    return y.to(dtype=x.dtype, device=x.device).repeat(N // B, *([1] * (y.dim() - 1)))
