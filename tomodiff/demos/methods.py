"""The reconstruction methods the 2D demo compares, behind one call: ``solve(method, task, ...)``.

- ``pinv``: the regularised pseudo-inverse ``Aᵀ(λI + AAᵀ)⁻¹y`` (no prior, 0 NFE).
- ``pigdm``: ΠGDM posterior sampling with a trained prior (closed-form ``(σ_y²I + r_t²AAᵀ)⁻¹``).
- ``dps``: DPS with the step ``ζ`` of ``DPS_ZETA`` (tuned per task, see there).

Both diffusion methods use the same DDPM ancestral sampler and Karras schedule with
``σ ∈ [SIGMA_MIN, SIGMA_MAX]`` in data units (images in [0, 1]), one sample, one NFE per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..priors import registry
from ..samplers import sample_posterior
from .image_tasks import Task, pseudo_inverse

METHODS = ("pinv", "pigdm", "dps")
METHOD_LABELS = {"pinv": "Aᵀ(λI+AAᵀ)⁻¹y", "pigdm": "ΠGDM", "dps": "DPS"}
DIFFUSION_METHODS = ("pigdm", "dps")

SIGMA_MAX = 20.0   # data units; 40 in the prior's [-1, 1] network space, as its training sample grid
SIGMA_MIN = 0.002

# DPS step ζ per task (the "norm" variant, x_next −= ζ ∇_{x_t}‖y − A x̂0‖): the best mean PSNR over
# ζ ∈ {1, 3, 10, 30} at 50 steps, two seeds, on the demo's Shepp–Logan slice with a slice-64 checkpoint
# of 748 training steps (re-tune for other priors: ``python -m tomodiff.demos.tune_dps``). ζ ≥ 30
# lost 1-6 dB on every task (overshoot); ζ = 1 ignored much of y except on the box.
DPS_ZETA = {
    "deblur": 3.0,
    "sr4": 10.0,
    "inpaint-pixels": 3.0,
    "inpaint-box": 1.0,
    "outpaint": 3.0,
}


class PriorUnavailable(FileNotFoundError):
    """The prior the diffusion methods need is not installed or not readable."""


@dataclass
class Estimate:
    """A method's answer to one task: ``image`` ``(1, 1, H, W)`` (unclipped), denoiser
    evaluations ``nfe`` and wall time ``seconds``."""

    image: torch.Tensor
    nfe: int
    seconds: float


def load_prior(spec: str):
    """A prior by shipped name (``"slice-64"``) or by path to a ``.pt`` prior file.

    Raises :class:`PriorUnavailable` naming the missing file and the ways around it.
    """

    path = Path(spec)
    is_path = path.suffix == ".pt" or path.is_file()
    try:
        return registry.load_file(path) if is_path else registry.load(spec)
    except (KeyError, registry.PriorFileError) as err:
        msg = err.args[0] if err.args else str(err)
        where = path if is_path else registry.WEIGHTS_DIR / f"{spec}.pt"
        raise PriorUnavailable(
            f"the diffusion methods need the prior {spec!r}, but {where} is missing or unreadable ({msg}). "
            f"Pass --prior PATH/TO/prior.pt, or --methods pinv for the pseudo-inverse alone.") from err


def solve(method: str, task: Task, *, prior=None, noise_sigma: float, steps: int = 50, lam: float = 1e-3,
          zeta: float | None = None, seed: int = 0, progress: bool = False) -> Estimate:
    """Reconstruct ``task`` with ``method`` (one of ``METHODS``).

    ``prior``: an object with ``.denoiser(x, sigma)`` in [0, 1] data units (needed by pigdm and dps).
    ``noise_sigma``: the measurement noise std (ΠGDM's σ_y). ``steps``: sampler steps (= NFE).
    ``lam``: Tikhonov weight of ``pinv``. ``zeta``: DPS step (default ``DPS_ZETA[task.key]``).
    ``seed``: seeds the sampler's noise.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if method == "pinv":
        t0 = time.perf_counter()
        x = pseudo_inverse(task.A, task.y, lam)
        return Estimate(x, 0, time.perf_counter() - t0)
    if prior is None:
        raise ValueError(f"method {method!r} needs a prior")

    if method == "pigdm":
        # r_t² = σ_d²σ_t²/(σ_d² + σ_t²) with the prior's own data std σ_d (data units)
        sd = getattr(getattr(prior, "net", None), "sigma_data", None)
        scale = getattr(getattr(prior, "net", None), "scale", 1.0)
        opts = {"data_var": (sd / scale) ** 2} if sd is not None else {}
    else:
        opts = {"zeta": DPS_ZETA.get(task.key, 3.0) if zeta is None else float(zeta)}
    res = sample_posterior(prior.denoiser, task.A, task.y, method=method, sigma_y=noise_sigma, steps=steps,
                           sigma_max=SIGMA_MAX, sigma_min=SIGMA_MIN, progress=progress,
                           generator=torch.Generator().manual_seed(seed), **opts)
    return Estimate(res.samples[0], res.nfe, res.seconds)
