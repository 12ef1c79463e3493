"""``reconstruct``: one entry point for classical and diffusion reconstructions of a CT scan.

Diffusion methods use a prior's denoiser (a 2D slice prior is applied to every axial slice), draw
``n_samples`` posterior samples and report their mean and per-voxel standard deviation. Volumes
are processed in slabs of axial slices (parallel beam: memory grows with the slab, not the
volume), coupled so that neighbouring slices agree: TV along Z on every denoised estimate
(:func:`~tomodiff.samplers.z_smoothing`) and overlapping slabs whose shared slices continue their
neighbours (:func:`~tomodiff.samplers.known_slices`), cross-faded when joined: even slabs run
first, then odd slabs continue both finished neighbours (:func:`~tomodiff.recon.slabs.two_pass`).
Finished slabs go to a checkpoint directory, so an interrupted run resumes where it stopped with the
same result. Under ``torchrun`` (``WORLD_SIZE > 1``) the slabs of each pass are shared among the
ranks (:mod:`tomodiff.recon.distributed`) and every rank returns the whole result, equal to a
single-process run; :func:`tomodiff.recon.streamed.reconstruct_file` does the same file to file
with memory bounded by the slab.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import torch

from .. import methods
from ..operators.base import check_measurement
from ..render import EmissionAbsorption
from . import distributed, render_fit
from .engine import Settings, SlabLayout, TensorSource, run_slabs
from .memory import PeakMemory
from .calibration import lookup as calibration_for
from .calibration import not_calibrated
from .consistency import data_consistency, warn_if_inconsistent
from .consistency import guard as consistency_guard
from .metrics import data_residual
from .provenance import created, plain_options, prior_info, prior_key, used_options, versions
from .scale import resolve_scale, slabwise_robust_max, warn_if_out_of_range
from .slab_store import MemoryStore, run_key
from .slabs import blend, plan_slabs, two_pass
from .solvers import diffusion_options, solve_classical, solve_diffusion
from .warm_start import slab_options

# the method names (the registry's, tomodiff.methods), re-exported as tomodiff.recon.METHODS
METHODS = methods.names()
# options that are volumes (starting points): divided by the scale step's factor like the data
_VOLUME_OPTIONS = ("x0", "x_init")


@dataclass
class Reconstruction:
    """A reconstruction with its uncertainty, cost and provenance.

    mean: ``(B, C, *A.domain_shape)`` — the posterior mean (or the classical estimate);
    std: per-voxel uncertainty, same shape and units as ``mean`` (``None`` for classical methods
    and single samples): the calibrated one, ``k·std_raw`` with ``k`` from
    :func:`tomodiff.recon.calibration.lookup` (``k = 1`` where the run was never calibrated);
    std_raw: the samples' own standard deviation (Bessel-corrected); ``provenance["calibration"]``
    says which ``k`` was applied and where it was fitted (:attr:`calibration`);
    samples: ``(n_samples, B, C, *A.domain_shape)`` when kept;
    residual: ``‖A·mean − y‖ / ‖y‖``; nfe: denoiser evaluations (each covers a whole slab batch);
    seconds: wall time; peak_memory_mb: peak memory above the start (CUDA allocator or CPU RSS).
    """

    mean: torch.Tensor
    std: torch.Tensor | None
    samples: torch.Tensor | None
    residual: float
    nfe: int
    seconds: float
    peak_memory_mb: float
    provenance: dict = field(default_factory=dict)
    std_raw: torch.Tensor | None = None

    def __post_init__(self):
        # a std that no one calibrated (e.g. the renderer's) is the raw spread, and says so
        if self.std is not None and self.std_raw is None:
            self.std_raw = self.std
            self.provenance.setdefault("calibration", not_calibrated(
                str(self.provenance.get("method")), (self.provenance.get("prior") or {}).get("name")))

    @property
    def calibration(self) -> dict | None:
        """The record of the ``k`` in ``std = k·std_raw`` (``None`` without a std)."""
        return self.provenance.get("calibration") if self.std is not None else None

    def __repr__(self):
        return (f"Reconstruction(method={self.provenance.get('method')!r}, mean={tuple(self.mean.shape)}, "
                f"residual={self.residual:.3g}, nfe={self.nfe}, seconds={self.seconds:.3g})")


def _denoiser_of(prior):
    if prior is None:
        raise ValueError("diffusion methods need a prior: pass prior=tomodiff.priors.load('ct-slice') "
                         "or any callable D(x, sigma)")
    return getattr(prior, "denoiser", prior)


def reconstruct(A, y: torch.Tensor, *, method: str, prior=None, steps: int | None = None, n_samples: int = 1,
                sigma_y: float = 0.0, seed: int = 0, slab: int | None = 32, overlap: int = 4,
                z_coupling: float = 0.02, keep_samples: bool = False, checkpoint=None,
                remove_checkpoint: bool = True, scale="auto", progress: bool = True, callback=None,
                guard: bool = False, **options) -> Reconstruction:
    """Reconstruct ``y = A(x) + noise`` with a classical or a diffusion method.

    Parameters
    ----------
    A: a CT ``Projector`` (or any LinearOperator; slabs need a parallel-beam ``A.geometry``).
    y: ``(B, C, *A.range_shape)`` line integrals (world units).
    method: a name of the registry :mod:`tomodiff.methods`: ``"fbp" | "sirt" | "cgls" | "tv"``
        (options: ``filter``; ``n_iter``; ``lam``, see :mod:`tomodiff.recon`) or ``"pigdm" | "dps" |
        "dds" | "diffpir" | "sdedit"`` (options as in :func:`tomodiff.samplers.sample_posterior`, e.g.
        ``zeta`` for dps, ``t0`` for sdedit; a warm start ``x_init="fbp" | "sirt" | "tv"`` with
        ``sigma_start``), or ``"auto"``: the sampler sweep's winner (:data:`tomodiff.methods.AUTO`).
    prior: for diffusion methods, a prior (``tomodiff.priors.load(name)``) or a denoiser
        ``D(x, sigma)`` in the volume's units.
    steps: diffusion steps (NFE per slab; default 50, or the sweep's for auto); n_samples: posterior
        samples (mean and std over them).
    sigma_y: measurement noise std in units of ``y`` (0: unknown). Diffusion methods use it in their
        likelihood; TV without ``lam`` chooses its weight from it (the result's χ²/m =
        :data:`tomodiff.methods.TV_CHI2_TARGET`, :mod:`tomodiff.recon.tv_weight`), and without it
        falls back to 0.006 × views; ``provenance["tv_weight"]`` records the rule and the weight.
        seed: everything random derives from it.
    slab, overlap: slices per slab and slices shared by neighbours (``None``: the whole volume at
        once). z_coupling: weight of TV along Z on each denoised estimate (0: off).
    keep_samples: return the individual samples too. checkpoint: a directory that stores finished
        slabs (:mod:`tomodiff.recon.slab_store`); rerunning with the same arguments, data, prior
        (sha256) and geometry resumes from it. It is removed on success unless
        ``remove_checkpoint=False`` (the caller then removes it once the result is safely stored, as
        ``tomodiff reconstruct`` does after writing its output).
    scale: the scale step (:mod:`tomodiff.recon.scale`): ``"auto"`` (robust maximum of a quick
        FBP maps to 1), a number (the attenuation that maps to 1) or ``None`` (data already in the
        prior's [0, 1] units). Every method solves ``y / s`` and the result is multiplied back, so
        weights such as TV's ``lam`` act on the scaled volume and keep their meaning in any units.
    callback: ``callback(done, total)`` after every iteration or diffusion step (``total`` =
        iterations, or slabs × steps); an exception raised in it aborts the run (e.g. to cancel).
    guard: keep a diffusion result at least as data-consistent as TV (final CG iterations, else
        TV with a warning; :func:`tomodiff.recon.consistency.guard`). Diffusion results report
        ``χ²/m`` in ``provenance["data_consistency"]`` and warn when it is far above 1.
    """
    t0 = time.perf_counter()
    if isinstance(A, EmissionAbsorption):  # a renderer: nonlinear, two channels; its own fits (render_fit.py)
        return _render(A, y, method, prior, steps, n_samples, sigma_y, seed, scale, keep_samples, progress, callback,
                       t0, options)
    m, steps, options = methods.resolve(method, steps, options)
    steps = methods.DEFAULT_STEPS if steps is None else steps
    check_measurement(A, y, "reconstruct")
    settings = Settings(seed=seed, progress=progress, callback=callback, checkpoint=checkpoint,
                        keep_checkpoint=not remove_checkpoint)
    layout = SlabLayout(slab, overlap, z_coupling)
    # provenance records only what the method uses: classical methods take no steps or samples, and only
    # TV a noise level (its weight comes from it)
    params = {"method": m.name, **({"steps": steps, "n_samples": n_samples, "sigma_y": sigma_y, "seed": seed,
                                    "slab": slab, "overlap": overlap, "z_coupling": z_coupling}
                                   if m.diffusion else {"sigma_y": sigma_y} if m.name == "tv" else {}),
              **plain_options(options)}
    with PeakMemory(y.device) as mem:
        out, used, nfe, scale_record, guard_info, notes = _solve_scaled(
            A, y, m, prior, steps, n_samples, sigma_y, layout, settings, scale, guard, params, options)
    mean, std, samples = out
    r = _result(A, y, m, prior, mean, std, samples if keep_samples else None, nfe, used, params, scale_record,
                guard_info, sigma_y, time.perf_counter() - t0, mem.peak_mb, options=options)
    r.provenance.update(notes)
    return r


def _solve_scaled(A, y, m, prior, steps, n_samples, sigma_y, layout, settings, scale, guard, params, options):
    """The scale step around the solve: every method solves ``y / s`` (noise level ``σ_y / s``); results
    are multiplied back (recon/scale.py). Returns ``((mean, std, samples), used options, nfe, scale record,
    guard info, notes for provenance)``."""
    geometry = getattr(A, "geometry", None)
    estimate = None
    if m.diffusion and _splits(A, layout):  # the same estimate as the file-to-file path's, block by block
        blocks = plan_slabs(geometry.volume_shape[0], layout.slab, 0)
        estimate = lambda: slabwise_robust_max(geometry, lambda a, b: y[..., a:b, :].contiguous(),  # noqa: E731
                                               blocks, device=y.device)
    s, scale_record = resolve_scale(A, y, scale, linear=m.linear, estimate=estimate)
    y = y / s
    if m.diffusion and scale != "auto":
        warn_if_out_of_range(A, y, stacklevel=4)  # at reconstruct()'s caller
    options = {k: (v / s if k in _VOLUME_OPTIONS and isinstance(v, torch.Tensor) else v) for k, v in options.items()}
    guard_info = None
    if not m.diffusion:
        mean, used, notes = solve_classical(A, y, m.name, options, sigma_y=sigma_y / s, progress=settings.progress,
                                            callback=settings.callback)
        if "tv_weight" in notes:
            notes["tv_weight"]["units"] = "the scaled problem y / scale (lam, sigma_y)"
        return (mean * s, None, None), used, 0, scale_record, None, notes
    samples, nfe, used = _diffusion(A, y, m.name, prior, steps, n_samples, sigma_y / s, layout, settings,
                                    {**params, "scale": s}, options)
    if guard:  # the reference stays TV with the old weight (no noise level passed): the guard is unchanged
        ref, _, _ = solve_classical(A, y, "tv", {})
        samples, guard_info = consistency_guard(A, y, samples, sigma_y / s, ref)  # all in the scaled units
    mean = samples.mean(0)
    std = samples.std(0, correction=1) if n_samples > 1 else None
    return (mean * s, None if std is None else std * s, samples * s), used, nfe, scale_record, guard_info, {}


def _render(R, y, method, prior, steps, n_samples, sigma_y, seed, scale, keep_samples, progress, callback, t0,
            options) -> Reconstruction:
    """``reconstruct`` for an emission–absorption renderer: ``"tv"`` or ``"dps"`` of :mod:`.render_fit`
    (``scale``: per-channel units of the prior, ``"auto"`` meaning 1; slabs and the guard do not apply)."""
    render_fit.check_problem(R, y, "reconstruct")
    with PeakMemory(y.device) as mem:
        samples, nfe, used = render_fit.solve_render(R, y, method, prior=prior, steps=steps, n_samples=n_samples,
                                                     seed=seed, scale=scale, sigma_y=sigma_y, progress=progress,
                                                     callback=callback, **options)
    mean = samples.mean(0)
    std = samples.std(0, correction=1) if samples.shape[0] > 1 else None
    provenance = {"method": method, "steps": nfe or None, "n_samples": samples.shape[0], "sigma_y": sigma_y,
                  "seed": seed, "scale": repr(scale), "options": used_options(used),
                  "prior": prior_info(prior) if method == "dps" else {},
                  "geometry": R.to_dict(),
                  "versions": versions(), "created": created()}
    if sigma_y > 0:
        provenance["data_consistency"] = {"chi2_per_m": float(((R(mean) - y) / sigma_y).pow(2).mean())}
    return Reconstruction(mean=mean, std=std, samples=samples if keep_samples else None,
                          residual=float(data_residual(R, mean, y).max()), nfe=nfe,
                          seconds=time.perf_counter() - t0, peak_memory_mb=mem.peak_mb, provenance=provenance)


def _result(A, y, m, prior, mean, std, samples, nfe, used, params, scale_record, guard_info, sigma_y, seconds,
            peak_mb, options=None) -> Reconstruction:
    """The :class:`Reconstruction` with provenance; ``std`` comes in raw and leaves calibrated (``options``:
    the run's resolved options, which decide whether a fitted calibration applies)."""
    residual = float(data_residual(A, mean, y).max())
    geometry = getattr(A, "geometry", None)
    provenance = {**params, "scale": scale_record, "options": used_options(used),
                  "prior": prior_info(prior) if m.diffusion else {},
                  "geometry": geometry.to_dict() if geometry is not None else None,
                  "backend": getattr(A, "backend", None), "versions": versions(), "created": created()}
    if m.diffusion:
        consistency = data_consistency(A, mean, y, sigma_y)
        if guard_info is not None:
            consistency["guard"] = guard_info
        warn_if_inconsistent(consistency, what=f"{m.name} reconstruction", stacklevel=4)  # at reconstruct()'s caller
        provenance["data_consistency"] = consistency
    std_raw = std
    if std is not None:
        k, provenance["calibration"] = calibration_for(m.name, prior, views=getattr(geometry, "n_angles", None),
                                                       geometry=geometry, n_samples=params["n_samples"],
                                                       steps=params["steps"], options=options)
        std = std * k
    return Reconstruction(mean=mean, std=std, samples=samples, residual=residual, nfe=nfe, seconds=seconds,
                          peak_memory_mb=peak_mb, provenance=provenance, std_raw=std_raw)


def _diffusion(A, y, method, prior, steps, n_samples, sigma_y, layout: SlabLayout, settings: Settings, params,
               options):
    """Posterior samples ``(n, B, C, *A.domain_shape)`` of the whole volume, slab by slab through the
    slab runner; returns ``(samples, nfe, options as used)``."""
    _denoiser_of(prior)  # a clear error without one
    geometry = getattr(A, "geometry", None)
    n_slices = A.domain_shape[0] if len(A.domain_shape) == 3 else 1
    split = _splits(A, layout)
    plan = plan_slabs(n_slices, layout.slab, layout.overlap) if split else [(0, n_slices)]
    opts = diffusion_options(method, prior, options)
    ctx, _ = distributed.setup(y.device)
    # the key covers everything the slabs depend on: arguments, data, prior weights and geometry
    key = {**params, "plan": plan, "y_sha256": _tensor_hash(y), "prior": prior_key(prior),
           "geometry": geometry.to_dict() if geometry is not None else None}
    _same_on_every_rank(ctx, run_key(key))
    store = MemoryStore(settings.checkpoint, key, (n_samples, *y.shape[:2], *A.domain_shape), y.dtype, y.device)

    def solve(A_k, y_k, k, left, right, cb):
        start, stop = plan[k]
        res = solve_diffusion(prior, A_k, y_k, k, method=method, steps=steps, n_samples=n_samples,
                              sigma_y=sigma_y, seed=settings.seed, z_coupling=layout.z_coupling,
                              opts=slab_options(opts, start, stop, n_slices) if split else opts, left=left,
                              right=right, progress=settings.progress, callback=cb)
        return res.samples, res.nfe

    run_slabs(TensorSource(A, y, split), store, plan, two_pass(plan), solve, ctx, hint="rerun to resume",
              progress=settings.progress, callback=settings.callback, steps=steps)
    parts = [store.get(k)["samples"] for k in range(len(plan))]
    out = blend(parts, plan, n_slices) if split else parts[0]
    nfe = sum(store.get(k)["nfe"] for k in range(len(plan)))
    distributed.barrier(ctx, "the end of the run")
    if not settings.keep_checkpoint:
        store.remove()
    return out, nfe, opts


def _splits(A, layout: SlabLayout) -> bool:
    """Whether the volume is solved in slabs: 3D, slabs asked for, and rows that are slices."""
    geometry = getattr(A, "geometry", None)
    return len(A.domain_shape) == 3 and layout.slab is not None and geometry is not None \
        and geometry.rows_are_slices


def _same_on_every_rank(ctx, key: str) -> None:
    """Under torch.distributed every rank must solve the same problem, or the exchanged slabs would mix runs."""
    keys = distributed.gather_objects(ctx, key, "the start of the run")
    if len(set(keys)) > 1:
        raise ValueError(f"rank {ctx.rank}/{ctx.world}: the ranks were given different data or arguments "
                         f"(ranks {[r for r, k in enumerate(keys) if k != keys[0]]} differ from rank 0); under "
                         f"torchrun every rank must call reconstruct() with the same y and arguments")


def _tensor_hash(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
