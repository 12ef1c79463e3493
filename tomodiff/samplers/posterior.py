"""``sample_posterior``: one entry point that draws posterior samples for ``y = A(x) + noise``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from tomodiff.operators.solvers import conjugate_gradient
from tomodiff.priors.schedules import check_sigmas, ddpm_cosine_sigmas, ddpm_linear_sigmas, karras_sigmas

from ._common import check_measurement, check_sigma_y, combine, match_batch, randn
from .ddim import ddim
from .ddpm import ddpm
from .dds import dds
from .diffpir import diffpir
from .discrepancy import discrepancy_cg
from .dps import dps
from .pigdm import pigdm
from .sdedit import sdedit

__all__ = ["sample_posterior", "PosteriorResult", "METHODS"]

METHODS = ("pigdm", "dps", "dds", "diffpir", "sdedit", "none")
_SCHEDULES = {"karras": karras_sigmas, "ddpm-linear": ddpm_linear_sigmas, "ddpm-cosine": ddpm_cosine_sigmas}
# options each method accepts (passed through **options), with their defaults
_METHOD_OPTIONS = {
    "pigdm": {"data_var": 1.0, "scale": 1.0, "gram_method": "auto", "cg_tol": 1e-6, "cg_max_iter": 100,
              "jacobian": "vjp"},
    "dps": {"zeta": 0.3, "noise": None, "variant": "norm", "target": 1.0},  # CT defaults: tomodiff.methods
    "dds": {"cg_iters": 5, "data_var": 1.0, "prox": True, "tv_z": None},
    "diffpir": {"lam": 1.0, "data_var": 1.0, "cg_tol": 1e-4, "cg_max_iter": 50},
    "sdedit": {"x_init": None, "t0": 0.5},
    "none": {},
}
# the final data-consistency step every method accepts: final_cg CG iterations from each sample, stopped
# where χ²/m reaches final_target (None: no stop; samplers/discrepancy.py)
_FINAL_OPTIONS = {"final_cg": 0, "final_target": None}
# options every method but sdedit accepts: a warm start (and the final step)
_COMMON_OPTIONS = {"x_init": None, "sigma_start": None, **_FINAL_OPTIONS}
_DEFAULT_SAMPLER = {"pigdm": "ddpm", "dps": "ddpm", "dds": "ddim", "diffpir": "ddim", "sdedit": "ddpm",
                    "none": "ddpm"}
# DDIM η per method when sampler="ddim" and no eta is given: DDS's paper value 0.85
_DEFAULT_ETA = {"dds": 0.85, "diffpir": 0.85}


@dataclass
class PosteriorResult:
    """Posterior samples and their provenance.

    samples: ``(n_samples, B, C, *domain_shape)``; ``mean`` / ``std``: ``(B, C, *domain_shape)``,
    per pixel over the samples (``std`` uses ``n − 1``; zero for one sample); ``nfe``: denoiser
    evaluations (batched calls; each covers all samples); ``seconds``: wall time.
    """

    samples: torch.Tensor
    nfe: int
    seconds: float
    method: str
    sigmas: torch.Tensor
    options: dict = field(default_factory=dict)

    @property
    def mean(self) -> torch.Tensor:
        return self.samples.mean(0)

    @property
    def std(self) -> torch.Tensor:
        if self.samples.shape[0] < 2:
            return torch.zeros_like(self.samples[0])
        return self.samples.std(0, correction=1)

    def __repr__(self):
        return (f"PosteriorResult(method={self.method!r}, samples={tuple(self.samples.shape)}, nfe={self.nfe}, "
                f"seconds={self.seconds:.3g})")


class _Counted:
    """The user's denoiser, counting calls (one call = one NFE for the whole batch)."""

    def __init__(self, denoiser):
        self.denoiser, self.calls = denoiser, 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.denoiser(x, sigma)


def _schedule(steps, schedule, sigma_min, sigma_max, sigmas):
    if sigmas is not None:
        s = check_sigmas(sigmas)
        if len(s) - 1 != steps:
            raise ValueError(f"sigmas has {len(s) - 1} steps but steps={steps}")
        return s
    if callable(schedule):
        return check_sigmas(schedule(steps))
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule must be one of {tuple(_SCHEDULES)} or a callable, got {schedule!r}")
    if schedule == "karras":
        return karras_sigmas(steps, sigma_min, sigma_max)
    return _SCHEDULES[schedule](steps)


def _least_squares(A, y, iters=30):
    """Minimum-norm least-squares start for SDEdit: CG on AᵀA x = Aᵀy from 0."""

    return conjugate_gradient(lambda v: A.adjoint(A.forward(v)), A.adjoint(y), tol=1e-6, max_iter=iters)


def final_data_step(A, y, x, iters: int):
    """``iters`` CG iterations on ``AᵀA z = Aᵀy`` from each sample ``x`` (``(N, C, ...)``, batch a
    multiple of ``y``'s): the residual ``‖y − A z‖`` never increases (CG on the normal equations
    minimises it over a growing Krylov space), and few iterations stay near ``x``."""


    yb = match_batch(y, x, "final_cg")
    return conjugate_gradient(lambda v: A.adjoint(A.forward(v)), A.adjoint(yb), x0=x, tol=0.0, max_iter=int(iters))


def _checked(A, y, method, sigma_y, steps, n_samples, generator, sampler, eta, options):
    """``(steps, n_samples, options with defaults, sampler)`` after checking every argument."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_measurement(A, y, "sample_posterior")
    check_sigma_y(sigma_y, "sample_posterior")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"sample_posterior: steps must be an integer >= 1, got {steps!r}")
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"sample_posterior: n_samples must be an integer >= 1, got {n_samples!r}")
    accepted = {**(_COMMON_OPTIONS if method != "sdedit" else _FINAL_OPTIONS), **_METHOD_OPTIONS[method]}
    unknown = set(options) - set(accepted)
    if unknown:
        raise TypeError(f"sample_posterior: unknown option(s) {sorted(unknown)} for method={method!r}; "
                        f"accepted: {sorted(accepted)}")
    opts = {**accepted, **options}
    if isinstance(generator, (list, tuple)) and len(generator) != n_samples:
        raise ValueError(f"sample_posterior: got {len(generator)} generators for n_samples={n_samples}")
    sampler = sampler or _DEFAULT_SAMPLER[method]
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
    if eta is not None and sampler != "ddim":
        raise ValueError("eta applies to sampler='ddim' only")
    if method != "sdedit":
        _check_warm_start(A, y, opts)
    _check_final(opts)
    return int(steps), int(n_samples), opts, sampler


def _check_final(opts) -> None:
    if isinstance(opts["final_cg"], bool) or int(opts["final_cg"]) != opts["final_cg"] or opts["final_cg"] < 0:
        raise ValueError(f"sample_posterior: final_cg must be an integer >= 0, got {opts['final_cg']!r}")
    t = opts["final_target"]
    if t is not None and not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
        raise ValueError(f"sample_posterior: final_target must be None or a finite chi2/m > 0, got {t!r}")


def _final_step(A, y, x, sigma_y, opts):
    """The final data-consistency step on the samples ``x`` (``final_cg`` 0: none)."""
    if not opts["final_cg"]:
        return x
    if opts["final_target"] is None:
        return final_data_step(A, y, x, opts["final_cg"])
    return discrepancy_cg(A, y, x, sigma_y, target=opts["final_target"], max_iter=opts["final_cg"])


def _check_warm_start(A, y, opts) -> None:
    B, C = y.shape[:2]
    if opts["x_init"] is not None:
        if tuple(opts["x_init"].shape) != (B, C, *A.domain_shape):
            raise ValueError(f"sample_posterior: the warm start x_init has shape {tuple(opts['x_init'].shape)}, "
                             f"expected {(B, C, *A.domain_shape)} (the volume's)")
        if opts["sigma_start"] is None or not (0 < float(opts["sigma_start"]) < math.inf):
            raise ValueError(f"sample_posterior: a warm start needs sigma_start > 0, got {opts['sigma_start']!r}")
    elif opts["sigma_start"] is not None:
        raise ValueError("sample_posterior: sigma_start needs a warm start x_init")


def _own_guidance(A, y, method, sigma_y, opts):
    """The guidance of ``method`` itself (``None`` for sdedit and none)."""
    if method == "pigdm":
        return pigdm(A, y, sigma_y, data_var=opts["data_var"], scale=opts["scale"], method=opts["gram_method"],
                     cg_tol=opts["cg_tol"], cg_max_iter=opts["cg_max_iter"], jacobian=opts["jacobian"])
    if method == "dps":
        return dps(A, y, opts["zeta"], noise=opts["noise"], variant=opts["variant"], sigma_y=sigma_y,
                   target=opts["target"])
    if method == "dds":
        return dds(A, y, sigma_y, cg_iters=opts["cg_iters"], data_var=opts["data_var"], prox=opts["prox"],
                   tv_z=opts["tv_z"])
    if method == "diffpir":
        return diffpir(A, y, sigma_y, lam=opts["lam"], data_var=opts["data_var"], cg_tol=opts["cg_tol"],
                       cg_max_iter=opts["cg_max_iter"])
    return None


def sample_posterior(denoiser, A, y: torch.Tensor, *, method: str = "pigdm", sigma_y: float, steps: int,
                     n_samples: int = 1, generator=None, sampler: str | None = None, eta: float | None = None,
                     schedule="karras", sigma_min: float = 0.002, sigma_max: float = 80.0, sigmas=None,
                     guidance=None, callback=None, progress: bool = True, **options) -> PosteriorResult:
    """Draw ``n_samples`` posterior samples of ``x`` given ``y = A(x) + noise`` with a diffusion prior.

    Parameters
    ----------
    denoiser: ``D(x, sigma) -> x0_hat`` (VE convention, see :mod:`tomodiff.priors.adapters`).
    A: the forward operator; ``y``: ``(B, C, *A.range_shape)``. Samples have shape
        ``(n_samples, B, C, *A.domain_shape)``; all run as one batch of ``n_samples·B``.
    method: ``"pigdm"`` (default), ``"dps"``, ``"dds"`` (CG data consistency), ``"diffpir"`` (HQS
        with a CG proximal data step), ``"sdedit"`` or ``"none"`` (unconditional; ``y`` only fixes
        the shapes).
    sigma_y: measurement noise std (>= 0, units of ``y``). steps: number of steps = NFE (>= 1).
    generator: a ``torch.Generator``, or a list of ``n_samples`` of them (sample ``i`` uses
        generator ``i`` only, so a batch equals single runs with the matching generators).
    sampler: ``"ddpm"`` or ``"ddim"`` (default per method: ddim for dds, ddpm otherwise);
        ``eta`` for ddim (default 0.85 for dds and diffpir, 0 otherwise).
    schedule: ``"karras"`` (with ``sigma_min``, ``sigma_max``), ``"ddpm-linear"``, ``"ddpm-cosine"``
        or a callable ``steps -> sigmas``; ``sigmas`` overrides it.
    guidance: extra guidances (e.g. :func:`loss_guidance`), summed with the method's own.
    options: per method — pigdm: ``data_var, scale, gram_method, cg_tol, cg_max_iter, jacobian``;
        dps: ``zeta, noise, variant, target``; dds: ``cg_iters, data_var, prox, tv_z``; diffpir: ``lam,
        data_var, cg_tol, cg_max_iter``; sdedit: ``x_init`` (default: least squares by CG), ``t0``.
        Every method but sdedit also takes a warm start, ``x_init`` (``(B, C, *A.domain_shape)``,
        e.g. an FBP) with ``sigma_start`` (the run starts at ``x_init + σ_start·n`` on a schedule
        from ``σ_start``: CCDF/ISCS). Every method (sdedit included) takes ``final_cg``: CG iterations
        on ``AᵀA x = Aᵀy`` from each final sample (a final data-consistency step; 0 = off), and
        ``final_target``: the χ²/m at which each sample's final step stops (the discrepancy principle,
        :func:`~tomodiff.samplers.discrepancy.discrepancy_cg`; ``final_cg`` is then its most
        iterations; ``None``: no stop).
    """
    t_start = time.perf_counter()
    # 1. validate the problem
    steps, n_samples, opts, sampler = _checked(A, y, method, sigma_y, steps, n_samples, generator, sampler, eta,
                                               options)
    sigma_y = check_sigma_y(sigma_y, "sample_posterior")
    B, C = y.shape[:2]
    warm = method != "sdedit" and opts["x_init"] is not None
    if warm and sigmas is None and schedule == "karras":
        sigma_max = float(opts["sigma_start"])
    s = _schedule(steps, schedule, sigma_min, sigma_max, sigmas)
    # 2. the method's guidance (sample-major batch: item s·B + b is sample s of measurement b)
    g = combine(_own_guidance(A, y, method, sigma_y, opts), guidance)
    D = _Counted(denoiser)
    run = ddpm if sampler == "ddpm" else ddim
    kw = {"eta": eta if eta is not None else _DEFAULT_ETA.get(method, 0.0)} if sampler == "ddim" else {}
    # 3. sample
    if method == "sdedit":
        x_init = opts["x_init"]
        if x_init is None:
            x_init = _least_squares(A, y)
        if tuple(x_init.shape) != (B, C, *A.domain_shape):
            raise ValueError(f"sdedit: x_init must have shape {(B, C, *A.domain_shape)}, got {tuple(x_init.shape)}")
        x_init = x_init.to(y).repeat(n_samples, *([1] * (x_init.dim() - 1)))
        x = sdedit(D, x_init, opts["t0"], s, sampler=run, guidance=g, generator=generator, callback=callback,
                   progress=progress, **kw)
    else:
        shape = (n_samples * B, C, *A.domain_shape)
        x_T = float(s[0]) * randn(torch.empty(shape, dtype=y.dtype, device=y.device), generator)
        if warm:  # CCDF / ISCS: start from the estimate plus noise at σ_start
            x_T = x_T + opts["x_init"].to(y).repeat(n_samples, *([1] * (x_T.dim() - 1)))
        x = run(D, x_T, s, guidance=g, generator=generator, callback=callback, progress=progress, **kw)
    x = _final_step(A, y, x, sigma_y, opts)
    samples = x.reshape(n_samples, B, C, *A.domain_shape)
    return PosteriorResult(samples=samples, nfe=D.calls, seconds=time.perf_counter() - t_start, method=method,
                           sigmas=s, options={"sampler": sampler, **kw, **{k: v for k, v in opts.items()
                                                                          if k != "x_init"}})
