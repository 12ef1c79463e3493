"""``reconstruct``: one entry point for classical and diffusion reconstructions of a CT scan.

Diffusion methods use a prior's denoiser (a 2D slice prior is applied to every axial slice), draw
``n_samples`` posterior samples and report their mean and per-voxel standard deviation. Volumes
are processed in slabs of axial slices (parallel beam: memory grows with the slab, not the
volume), coupled so that neighbouring slices agree: TV along Z on every denoised estimate
(:func:`~tomodiff.samplers.z_smoothing`) and overlapping slabs whose shared slices continue their
neighbours (:func:`~tomodiff.samplers.known_slices`), cross-faded when joined: even slabs run
first, then odd slabs continue both finished neighbours (:func:`~tomodiff.recon.slabs.two_pass`).
Finished slabs go to a checkpoint file, so an interrupted run resumes where it stopped with the
same result. Under ``torchrun`` (``WORLD_SIZE > 1``) the slabs of each pass are shared among the
ranks (:mod:`tomodiff.recon.distributed`) and every rank returns the whole result, equal to a
single-process run; :func:`tomodiff.recon.streamed.reconstruct_file` does the same file to file
with memory bounded by the slab.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..io.atomic import atomic_path
from ..operators.base import check_measurement
from .memory import PeakMemory
from .metrics import data_residual
from .scale import resolve_scale, warn_if_out_of_range
from .slabs import blend, can_split, plan_slabs, slab_geometry

CLASSICAL = ("fbp", "sirt", "cgls", "tv")
LINEAR = ("fbp", "sirt", "cgls")  # results proportional to y: the scale step cannot change them
DIFFUSION = ("pigdm", "dps", "dds", "diffpir", "sdedit")
METHODS = CLASSICAL + DIFFUSION + ("auto",)  # auto: the sampler sweep's winner (recon/auto.py)
# defaults of each classical method's options (passed through ``options``)
CLASSICAL_DEFAULTS = {"fbp": {"filter": "hann"}, "sirt": {"n_iter": 100}, "cgls": {"n_iter": 20},
                      "tv": {"n_iter": 200}}
# TV weight per projection angle: the data term grows with the number of views, so the best λ does
# too. Chosen on training-seed phantoms (shepp_logan:11, texture:12 at 64², 1% noise; best λ was
# 0.03–0.1 at 8 views and 0.1–0.3 at 16), never on the benchmark set.
TV_LAM_PER_VIEW = 0.006
# DPS step ζ and SDEdit start t0 for CT, chosen the same way (shepp_logan:11 and texture:12, central
# 8 slices, 4–32 views, 50 steps, slice-64): ζ 0.3 was best or within 0.4 dB of the best of
# {0.03, ..., 10} at every view count; t0 0.35 (from the FBP) best or within 1.1 dB of {0.2, ..., 0.7}.
DIFFUSION_DEFAULTS = {"dps": {"zeta": 0.3}, "sdedit": {"t0": 0.35}}
# options that are volumes (starting points): divided by the scale step's factor like the data
_VOLUME_OPTIONS = ("x0", "x_init")


@dataclass
class Reconstruction:
    """A reconstruction with its uncertainty, cost and provenance.

    mean: ``(B, C, *A.domain_shape)`` — the posterior mean (or the classical estimate);
    std: per-voxel posterior standard deviation, same shape (``None`` for classical methods and
    single samples); samples: ``(n_samples, B, C, *A.domain_shape)`` when kept;
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

    def __repr__(self):
        return (f"Reconstruction(method={self.provenance.get('method')!r}, mean={tuple(self.mean.shape)}, "
                f"residual={self.residual:.3g}, nfe={self.nfe}, seconds={self.seconds:.3g})")


def _versions() -> dict:
    from .._version import __version__

    return {"tomodiff": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _prior_info(prior) -> dict:
    if prior is None:
        return {}
    info = dict(getattr(prior, "info", {}) or {})
    return {"name": info.get("name", getattr(prior, "name", type(prior).__name__)),
            "sha256": info.get("sha256"), "class": type(prior).__name__}


def _prior_key(prior) -> dict:
    """What identifies a prior in checkpoint keys: the sha256 of its weights where it has them,
    else its name and class (a plain callable ``D(x, sigma)``: only its class is known)."""
    info = _prior_info(prior)
    return {"sha256": info["sha256"]} if info.get("sha256") else info


def _denoiser_of(prior):
    if prior is None:
        raise ValueError("diffusion methods need a prior: pass prior=tomodiff.priors.load('ct-slice') "
                         "or any callable D(x, sigma)")
    return getattr(prior, "denoiser", prior)


def _data_var(prior, default: float) -> float:
    """The prior's data variance in data units (EDM's σ_data, un-normalised), for ΠGDM/DDS's r_t²."""
    net = getattr(prior, "net", None)
    if net is not None and hasattr(net, "sigma_data") and hasattr(net, "scale"):
        return float(net.sigma_data / net.scale) ** 2
    return default


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
    method: ``"fbp" | "sirt" | "cgls" | "tv"`` (options: ``filter``; ``n_iter``; ``lam``, see
        :mod:`tomodiff.recon`) or ``"pigdm" | "dps" | "dds" | "diffpir" | "sdedit"`` (options as in
        :func:`tomodiff.samplers.sample_posterior`, e.g. ``zeta`` for dps, ``t0`` for sdedit; CT
        defaults in ``DIFFUSION_DEFAULTS``; a warm start ``x_init="fbp" | "sirt" | "tv"`` with
        ``sigma_start``), or ``"auto"``: the sampler sweep's winner (:mod:`tomodiff.recon.auto`).
    prior: for diffusion methods, a prior (``tomodiff.priors.load(name)``) or a denoiser
        ``D(x, sigma)`` in the volume's units.
    steps: diffusion steps (NFE per slab; default 50, or the sweep's for auto); n_samples: posterior
        samples (mean and std over them).
    sigma_y: measurement noise std in units of ``y``. seed: everything random derives from it.
    slab, overlap: slices per slab and slices shared by neighbours (``None``: the whole volume at
        once). z_coupling: weight of TV along Z on each denoised estimate (0: off).
    keep_samples: return the individual samples too. checkpoint: a file that stores finished
        slabs; rerunning with the same arguments, data, prior (sha256) and geometry resumes from it.
        It is removed on success unless ``remove_checkpoint=False`` (the caller then removes it once
        the result is safely stored, as ``tomodiff reconstruct`` does after writing its output).
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
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        from .auto import resolve_auto

        method, steps, options = resolve_auto(steps, options)
    steps = 50 if steps is None else steps
    check_measurement(A, y, "reconstruct")
    geometry = getattr(A, "geometry", None)
    # provenance records only what the method uses: classical methods take no steps, samples or noise level
    params = {"method": method, **({"steps": steps, "n_samples": n_samples, "sigma_y": sigma_y, "seed": seed,
                                    "slab": slab, "overlap": overlap, "z_coupling": z_coupling}
                                   if method in DIFFUSION else {}),
              **{k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()
                 if isinstance(v, (int, float, str, bool, type(None)))
                 or (isinstance(v, tuple) and all(isinstance(e, (int, float)) for e in v))}}  # e.g. dds tv_z
    device = y.device
    y_units = y
    with PeakMemory(device) as mem:
        # the scale step: every method solves y / s; results are multiplied back (recon/scale.py)
        s, scale_record = resolve_scale(A, y, scale, linear=method in LINEAR)
        y = y / s
        if method in DIFFUSION and scale != "auto":
            warn_if_out_of_range(A, y)
        options = {k: (v / s if k in _VOLUME_OPTIONS and isinstance(v, torch.Tensor) else v)
                   for k, v in options.items()}
        if method in CLASSICAL:
            (mean, used), std, samples, nfe = _classical(A, y, method, options, progress, callback), None, None, 0
        else:
            samples, nfe, used = _diffusion(A, y, method, prior, steps, n_samples, sigma_y / s, seed, slab, overlap,
                                            z_coupling, checkpoint, progress, {**params, "scale": s}, options,
                                            callback, remove_checkpoint=remove_checkpoint)
            guard_info = None
            if guard:
                from .consistency import guard as _guard

                ref, _ = _classical(A, y, "tv", {}, False, None)
                samples, guard_info = _guard(A, y, samples, sigma_y / s, ref)  # all in the scaled units
            mean = samples.mean(0)
            std = samples.std(0, correction=1) if n_samples > 1 else None
        mean = mean * s
        std = None if std is None else std * s
        samples = None if samples is None else samples * s
        y = y_units
    residual = float(data_residual(A, mean, y).max())
    consistency = None
    if method in DIFFUSION:
        from .consistency import data_consistency, warn_if_inconsistent

        consistency = data_consistency(A, mean, y, sigma_y)
        if guard_info is not None:
            consistency["guard"] = guard_info
        warn_if_inconsistent(consistency, what=f"{method} reconstruction")
    # options as used, defaults included (callables and tensors by repr)
    provenance = {**params, "scale": scale_record,
                  "options": {k: repr(v) for k, v in used.items() if k != "callback"},
                  "prior": _prior_info(prior) if method in DIFFUSION else {},
                  "geometry": geometry.to_dict() if geometry is not None else None,
                  "backend": getattr(A, "backend", None), "versions": _versions(),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if consistency is not None:
        provenance["data_consistency"] = consistency
    return Reconstruction(mean=mean, std=std, samples=samples if keep_samples else None, residual=residual,
                          nfe=nfe, seconds=time.perf_counter() - t0, peak_memory_mb=mem.peak_mb,
                          provenance=provenance)


def _classical(A, y, method, options, progress, callback):
    from . import cgls, fbp, sirt, tv

    opts = {**CLASSICAL_DEFAULTS[method], **options}
    if callback is not None and method != "fbp":
        opts["callback"] = lambda k, x: callback(k, opts["n_iter"])
    if method == "tv" and "lam" not in opts:
        n_views = A.geometry.n_angles if hasattr(A, "geometry") else 16
        opts["lam"] = TV_LAM_PER_VIEW * n_views
    if method == "fbp":
        out = fbp(A, y, **opts)
        if callback is not None:
            callback(1, 1)
        return out, opts
    fn = {"sirt": sirt, "cgls": cgls, "tv": tv}[method]
    return fn(A, y, progress=progress, **opts), opts


def _slab_problem(A, y, start, stop, whole: bool):
    if whole:
        return A, y
    from ..ct import Projector

    return Projector(slab_geometry(A.geometry, start, stop), backend=A.backend), y[..., start:stop, :]


def _generators(seed: int, slab_index: int, n_samples: int) -> list[torch.Generator]:
    # one generator per (slab, sample): a resumed run or a single sample redraws the same numbers
    return [torch.Generator().manual_seed(int(hashlib.sha256(f"{seed}/{slab_index}/{i}".encode()).hexdigest()[:15], 16))
            for i in range(n_samples)]


def _diffusion_options(method, prior, options) -> dict:
    """The sampler options of ``method`` as used: CT defaults, the prior's data variance and σ_max."""
    opts = {**DIFFUSION_DEFAULTS.get(method, {}), **options}
    if method in ("pigdm", "dds", "diffpir"):
        opts.setdefault("data_var", _data_var(prior, 1.0))
    if getattr(prior, "sigma_max", None) is not None:  # start where the prior was trained, not above
        opts.setdefault("sigma_max", float(prior.sigma_max))
    if method == "pigdm":  # a few CG iterations per step suffice for guidance (DESIGN: 10)
        opts.setdefault("cg_max_iter", 10)
        opts.setdefault("cg_tol", 1e-3)
    return opts


def _diffusion_slab(denoiser, A_k, y_k, k, *, method, steps, n_samples, sigma_y, seed, z_coupling, opts,
                    left=None, right=None, progress=True, callback=None):
    """Posterior samples of one slab (the sampler's result; ``.samples`` is ``(n, B, C, Z_k, Y, X)``).

    left, right: ``(n, B, C, s, Y, X)`` finished slices this slab shares with its neighbours (the
    first / last ``s`` slices of the slab), pulled in as known slices; ``None`` where there is none.
    """
    from ..samplers import known_slices, sample_posterior, z_smoothing

    guidance = []
    if len(A_k.domain_shape) == 3 and z_coupling > 0:
        guidance.append(z_smoothing(z_coupling))
    if left is not None:
        guidance.append(known_slices(left.reshape(-1, *left.shape[2:]), start=0))
    if right is not None:
        guidance.append(known_slices(right.reshape(-1, *right.shape[2:]), start=A_k.domain_shape[0] - right.shape[3]))
    kw = dict(opts)
    if isinstance(kw.get("x_init"), str):  # warm start from a classical reconstruction of the slab
        from .auto import warm_start
        kw["x_init"] = warm_start(A_k, y_k, kw["x_init"])
    if method == "sdedit" and kw.get("x_init") is None and getattr(A_k, "geometry", None) is not None:
        from .fbp import fbp
        kw["x_init"] = fbp(A_k, y_k, filter="hann", nonneg=True)
    if callback is not None:
        kw["callback"] = callback
    return sample_posterior(denoiser, A_k, y_k, method=method, sigma_y=sigma_y, steps=steps, n_samples=n_samples,
                            generator=_generators(seed, k, n_samples), guidance=guidance or None,
                            progress=progress, **kw)


def _diffusion(A, y, method, prior, steps, n_samples, sigma_y, seed, slab, overlap, z_coupling, checkpoint,
               progress, params, options, callback=None, *, remove_checkpoint=True):
    from . import distributed
    from .auto import slab_options
    from .slabs import two_pass

    denoiser = _denoiser_of(prior)
    volume = len(A.domain_shape) == 3
    n_slices = A.domain_shape[0] if volume else 1
    split = volume and slab is not None and can_split(getattr(A, "geometry", None))
    plan = plan_slabs(n_slices, slab, overlap) if split else [(0, n_slices)]
    phases = two_pass(plan)  # slabs coupled by schedule: the same result on any number of ranks
    opts = _diffusion_options(method, prior, options)
    ctx, _ = distributed.setup(y.device)
    # the key covers everything the slabs depend on: arguments, data, prior weights and geometry
    geometry = getattr(A, "geometry", None)
    store = distributed.open_checkpoint(_Checkpoint, checkpoint, ctx, {
        **params, "plan": plan, "y_sha256": _tensor_hash(y), "prior": _prior_key(prior),
        "geometry": geometry.to_dict() if geometry is not None else None})
    store.keep = not remove_checkpoint
    parts, nfes = {}, {}
    bar = _slab_bar(len(plan), progress and len(plan) > 1)
    for phase in phases:
        owner = distributed.assign(plan, phase, ctx.world)
        for k in phase:
            if owner[k] != ctx.rank:
                continue
            start, stop = plan[k]
            done = store.get(k)
            if done is not None:
                parts[k], nfes[k] = done["samples"].to(device=y.device, dtype=y.dtype), done["nfe"]
                bar.update(1)
                continue
            A_k, y_k = _slab_problem(A, y, start, stop, whole=not split)
            left = right = None
            if k % 2 == 1:  # odd slabs continue both neighbours, finished in the first pass
                left = parts[k - 1][:, :, :, -(plan[k - 1][1] - start):]
                if k + 1 < len(plan):
                    right = parts[k + 1][:, :, :, :stop - plan[k + 1][0]]
            n_done = len(nfes)  # slabs finished so far (by this rank), for monotone progress
            cb = None if callback is None else \
                (lambda info, n_done=n_done: callback(n_done * steps + info["i"] + 1, len(plan) * steps))
            res = _diffusion_slab(denoiser, A_k, y_k, k, method=method, steps=steps, n_samples=n_samples,
                                  sigma_y=sigma_y, seed=seed, z_coupling=z_coupling,
                                  opts=slab_options(opts, start, stop, n_slices) if split else opts, left=left,
                                  right=right, progress=progress, callback=cb)
            if callback is not None:
                callback((n_done + 1) * steps, len(plan) * steps)  # sdedit runs only part of the steps
            parts[k], nfes[k] = res.samples, res.nfe
            store.put(k, {"samples": res.samples, "nfe": res.nfe})
            bar.update(1)
        distributed.share_slabs(ctx, plan, phase, owner, parts, nfes, (n_samples, *y.shape[:2], *A.domain_shape),
                                y.dtype, y.device)
    bar.close()
    ordered = [parts[k] for k in range(len(plan))]
    out = blend(ordered, plan, n_slices) if split else ordered[0]
    distributed.close_checkpoint(store, ctx)
    return out, sum(nfes.values()), opts


def _slab_bar(total, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="slabs", disable=not enabled)


def _tensor_hash(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


class _Checkpoint:
    """Finished slabs of one run in a file (written atomically after each slab)."""

    def __init__(self, path, params: dict):
        self.path = Path(path) if path is not None else None
        self.params = json.loads(json.dumps(params, sort_keys=True, default=repr))
        self.key = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        self.slabs: dict = {}
        self.keep = False
        if self.path is not None and self.path.exists():
            try:
                saved = torch.load(self.path, map_location="cpu", weights_only=True)
            except Exception as err:
                raise ValueError(f"checkpoint {self.path} could not be read ({err}); delete it to start over") from err
            if saved.get("key") != self.key:
                old = saved.get("params") or {}
                diff = sorted(k for k in set(old) | set(self.params) if old.get(k) != self.params.get(k))
                what = f" (differs in: {', '.join(diff)})" if old and diff else ""
                raise ValueError(f"checkpoint {self.path} belongs to a run with other arguments or data{what} (the "
                                 "key covers arguments, data, prior sha256 and geometry); delete it or pass "
                                 "another checkpoint path")
            self.slabs = saved["slabs"]

    def get(self, k):
        return self.slabs.get(k)

    def put(self, k, value):
        if self.path is None:
            return
        self.slabs[k] = {"samples": value["samples"].detach().cpu(), "nfe": int(value["nfe"])}
        with atomic_path(self.path) as tmp:
            torch.save({"key": self.key, "params": self.params, "slabs": self.slabs}, tmp)

    def finish(self):
        if self.path is not None and not self.keep:
            self.path.unlink(missing_ok=True)
