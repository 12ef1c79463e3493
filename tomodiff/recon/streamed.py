"""File-to-file reconstruction in slabs, on one process or many: memory bounded by the slab.

:func:`reconstruct_file` reads a sinogram file (project file, DXchange or NXtomo) a slab of
detector rows at a time, reconstructs each slab of axial slices (every method: FBP and SIRT are
exact slice by slice in parallel beam, so their slabs do not overlap; TV, CGLS and the diffusion
methods use overlapping slabs), keeps each finished slab in a :class:`~tomodiff.io.streaming.SlabStore`
(the checkpoint), and merges the slabs into the output file (rank 0, atomically).

Under ``torchrun`` the slabs of each pass are shared among the ranks
(:func:`~tomodiff.recon.distributed.assign`). Diffusion slabs run in two passes
(:func:`~tomodiff.recon.slabs.two_pass`): odd slabs read the shared slices of their finished
even neighbours from the store, so coupling across ranks needs no exchange during sampling, and
the result is the same for any number of ranks (and equals ``reconstruct()`` on the whole array).

Peak memory per process, with s slices per slab, A angles, U detector columns, Y×X slices and n
samples: ``M0 + P(slab geometry) + 4·A·s·U + b·n·s·Y·X`` bytes, where M0 ≈ 0.3 GB is Python and
torch, P the projector (the torch backend caches one sparse matrix per slab geometry: about 0.2 GB
at 128²–256² and 2.5 GB at 512² with 64 angles, measured), and b the bytes per slab voxel of the
method: tens of bytes for FBP/SIRT/TV, and 3.5–4.5 KB for ΠGDM with ``slice-64`` (the network's
activations kept for the vector–Jacobian product; measured at 64² and 128²). Rank 0 adds
``12·n·s·Y·X`` for the merge. Nothing grows with the number of slices Z
(``benchmarks/results/scaling.md``).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import torch

from . import distributed
from .memory import PeakMemory
from .reconstruct import (CLASSICAL, DIFFUSION, METHODS, _classical, _denoiser_of, _diffusion_options,
                          _diffusion_slab, _prior_info, _versions)
from .slabs import can_split, plan_slabs, slab_geometry, two_pass

#: methods whose slabs need no overlap: exact slice by slice in parallel beam
SEPARABLE = ("fbp", "sirt")


def default_store(out) -> Path:
    """Where the slabs of a run writing ``out`` live unless told: ``.<out name>.slabs`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.slabs")


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reconstruct_file(path, out, *, method: str, prior=None, steps: int = 50, n_samples: int = 1,
                     sigma_y: float | None = None, seed: int = 0, slab: int = 32, overlap: int | None = None,
                     z_coupling: float = 0.02, keep_samples: bool = False, checkpoint=None, device="cpu",
                     thin: int = 1, rows=None, center_offset: float = 0.0, scale=None, progress: bool = True,
                     **options) -> dict | None:
    """Reconstruct the sinogram in ``path`` slab by slab into the project file ``out``.

    Parameters as in :func:`tomodiff.recon.reconstruct` (``prior``: a prior object or a shipped
    prior's name); ``overlap`` defaults to 0 for FBP/SIRT and 4 otherwise; ``sigma_y`` to the
    file's, else 1% of ``max|y|``. ``checkpoint``: the slab directory (default
    :func:`default_store`), kept after a failure so that rerunning — with any number of ranks —
    resumes; removed after success. ``thin``, ``rows``, ``center_offset``: as ``tomodiff
    reconstruct`` (every thin-th angle; detector rows ``(start, stop)``; raw scans' axis offset).
    scale: the scale step as in ``reconstruct`` (``None``: none; a number: the value that maps to
    1; ``"auto"``: the 99.9% quantile of a non-negative Hann FBP, computed slab by slab and shared
    among the ranks). Slabs are solved for ``y / s`` and the joined result is multiplied by ``s``.

    Returns on rank 0 a summary dict (method, seconds, nfe, residual, psnr against a reference
    when the file has one, per-rank peak RSS in MiB, slabs, world size, out); ``None`` on other ranks.
    """
    from ..io.streaming import SlabStore, open_sinogram, run_key, write_volume

    t0, cpu0 = time.perf_counter(), time.process_time()
    if method not in METHODS or method == "auto":
        raise ValueError(f"method must be one of {tuple(m for m in METHODS if m != 'auto')}, got {method!r}")
    ctx, dev = distributed.setup(device)
    with open_sinogram(path, thin=thin, rows=rows, center_offset=center_offset) as src:
        geometry = src.geometry
        if not can_split(geometry):
            raise ValueError(f"{path}: slab-wise reconstruction needs a 3D parallel-beam geometry with one detector "
                             f"row per slice (got {geometry.kind}, volume {geometry.volume_shape}, detector "
                             f"{geometry.det_shape})")
        if sigma_y is None:
            sigma_y = src.sigma_y
        if sigma_y is None:
            sigma_y = 0.01 * src.abs_max()
            if ctx.rank == 0:
                ctx.say(f"sigma_y not given nor in the file: assuming 1% of max|y| = {sigma_y:.4g}")
        if overlap is None:
            overlap = 0 if method in SEPARABLE else 4
        n_slices = geometry.volume_shape[0]
        plan = plan_slabs(n_slices, slab, overlap)
        phases = two_pass(plan) if method in DIFFUSION else [list(range(len(plan)))]
        if method in CLASSICAL:
            n_samples = 1
        s = _resolve_scale(scale, ctx, src, geometry, slab, dev)
        if isinstance(prior, str) or (prior is None and method in DIFFUSION):
            if prior is None:
                raise ValueError("diffusion methods need a prior (e.g. prior='ct-slice')")
            from ..priors import load

            prior = load(prior, device=dev)
        params = {"method": method, "steps": steps, "n_samples": n_samples, "sigma_y": sigma_y, "seed": seed,
                  "slab": slab, "overlap": overlap, "z_coupling": z_coupling, "plan": plan, "scale": s,
                  "schedule": "two-pass" if method in DIFFUSION else "independent",
                  **{k: v for k, v in options.items() if isinstance(v, (int, float, str, bool, type(None)))}}
        key = run_key({**params, "data": src.identity, "prior": _prior_info(prior) if method in DIFFUSION else {}})
        keys = distributed.gather_objects(ctx, key, "the start of the run")
        if len(set(keys)) > 1:
            raise ValueError(f"rank {ctx.rank}/{ctx.world}: the ranks were started with different arguments or files "
                             f"(ranks {[r for r, k in enumerate(keys) if k != keys[0]]} differ from rank 0)")
        store_dir = Path(checkpoint) if checkpoint is not None else default_store(out)
        store = SlabStore(store_dir, key)
        owners = [distributed.assign(plan, phase, ctx.world) for phase in phases]
        busy = sorted({r for o in owners for r in o.values()})
        group = distributed.active_group(ctx, busy)
        if ctx.rank not in busy:
            ctx.say(f"idle: {len(plan)} slab(s) for {ctx.world} ranks, none left for this rank; exiting")
            return None
        hint = f"finished slabs are kept in {store.dir}; rerun the same command (any number of ranks) to resume"
        with PeakMemory(dev) as mem:
            used = _run_slabs(ctx, src, geometry, plan, phases, owners, store, group, hint, dev, s, method=method,
                              prior=prior, steps=steps, n_samples=n_samples, sigma_y=sigma_y / s, seed=seed,
                              z_coupling=z_coupling, progress=progress, options=options)
        ranks = distributed.gather_objects(ctx, {"rank": ctx.rank, "peak_rss_mb": _rss_peak_mb(),
                                                 "cpu_s": time.process_time() - cpu0,
                                                 "peak_above_start_mb": mem.peak_mb,
                                                 "slabs": sorted(k for o in owners for k, r in o.items()
                                                                 if r == ctx.rank)},
                                           "the end of the run", group)
        if ctx.rank != 0:
            return None
        stats = _Stats(src, geometry, dev)
        provenance = lambda: {**params,  # noqa: E731
                              "options": {k: repr(v) for k, v in used.items() if k != "callback"},
                              "prior": _prior_info(prior) if method in DIFFUSION else {},
                              "geometry": geometry.to_dict(), "versions": _versions(), "input": str(path),
                              "world_size": ctx.world, "ranks": ranks, "nfe": stats.nfe, "residual": stats.residual,
                              "psnr": stats.psnr, "metrics": {"data_range": stats.data_range,
                                                              "data_range_rule": "reference max - min"},
                              "seconds": time.perf_counter() - t0,
                              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_volume(out, source=src, plan=plan, store=store, keep_samples=keep_samples and method in DIFFUSION,
                     provenance_fn=provenance, on_chunk=stats.add, scale=s)
        store.remove()
        return {"method": method, "seconds": time.perf_counter() - t0, "nfe": stats.nfe, "residual": stats.residual,
                "psnr": stats.psnr, "ssim": None, "data_range": stats.data_range, "scale": s, "slabs": len(plan),
                "world_size": ctx.world, "ranks": ranks, "out": str(out)}


def _run_slabs(ctx, src, geometry, plan, phases, owners, store, group, hint, dev, s, *, method, prior, steps, n_samples,
               sigma_y, seed, z_coupling, progress, options) -> dict:
    """This rank's slabs of every pass, each stored when done; a barrier after each pass."""
    from ..ct import Projector

    denoiser = _denoiser_of(prior) if method in DIFFUSION else None
    used = _diffusion_options(method, prior, options) if method in DIFFUSION else dict(options)
    for p, (phase, owner) in enumerate(zip(phases, owners)):
        for k in sorted(k for k in phase if owner[k] == ctx.rank):
            if store.has(k):
                continue
            start, stop = plan[k]
            A_k = Projector(slab_geometry(geometry, start, stop), device=dev)
            y_k = torch.from_numpy(src.read(start, stop))[None, None].to(dev) / s
            if method in CLASSICAL:
                opts = dict(options)
                if method == "tv" and "op_norm" not in opts:  # ‖A‖ by power iteration from a fixed start, so
                    # that a slab's result does not depend on what its rank drew before (the same on any rank)
                    opts["op_norm"] = A_k.norm(generator=torch.Generator(device=dev).manual_seed(0),
                                               dtype=y_k.dtype, device=dev)
                x, used = _classical(A_k, y_k, method, opts, False, None)
                store.put(k, x[:, 0].cpu(), 0)  # (1, Z_k, Y, X)
                continue
            left = right = None
            if k % 2 == 1:  # continue both neighbours, finished in the first pass (read from the store)
                left = store.get(k - 1)["samples"][:, -(plan[k - 1][1] - start):][:, None, None].to(dev)
                if k + 1 < len(plan):
                    right = store.get(k + 1)["samples"][:, :stop - plan[k + 1][0]][:, None, None].to(dev)
            res = _diffusion_slab(denoiser, A_k, y_k, k, method=method, steps=steps, n_samples=n_samples,
                                  sigma_y=sigma_y, seed=seed, z_coupling=z_coupling, opts=used, left=left,
                                  right=right, progress=progress)
            store.put(k, res.samples[:, 0, 0].cpu(), res.nfe)  # (n, Z_k, Y, X)
        distributed.barrier(ctx, f"pass {p + 1} of {len(phases)}", group, hint)
    return used


class _Stats:
    """Residual ``‖A·mean − y‖/‖y‖`` and PSNR against the reference (data range: the reference's
    max − min), accumulated slice block by slice block."""

    def __init__(self, src, geometry, dev):
        self.src, self.geometry, self.dev = src, geometry, dev
        self.r2 = self.y2 = self.se = 0.0
        self.count = self.nfe = 0
        self.lo, self.hi = float("inf"), float("-inf")

    def add(self, z0, z1, mean, nfe):
        from ..ct import Projector

        self.nfe += nfe
        A = Projector(slab_geometry(self.geometry, z0, z1), device=self.dev)
        y = torch.from_numpy(self.src.read(z0, z1)).to(self.dev, torch.float64)
        r = A(mean[None, None].to(self.dev))[0, 0].double() - y
        self.r2 += float((r * r).sum())
        self.y2 += float((y * y).sum())
        if self.src.has_reference:
            ref = torch.from_numpy(self.src.reference(z0, z1)).double()
            d = mean.double() - ref
            self.se += float((d * d).sum())
            self.count += d.numel()
            self.lo, self.hi = min(self.lo, float(ref.min())), max(self.hi, float(ref.max()))

    @property
    def residual(self):
        return (self.r2 / self.y2) ** 0.5 if self.y2 > 0 else None

    @property
    def data_range(self):
        return self.hi - self.lo if self.count and self.hi > self.lo else None

    @property
    def psnr(self):
        import math

        if self.data_range is None:
            return None
        mse = self.se / self.count
        return float("inf") if mse == 0 else 10 * math.log10(self.data_range ** 2 / mse)


#: the scale step's quantile and subsample size (as in tomodiff.recon.scale.robust_max)
SCALE_QUANTILE, SCALE_MAX_VALUES = 0.999, 1 << 22


def _resolve_scale(scale, ctx, src, geometry, slab, dev) -> float:
    """The factor ``s`` of the scale step; ``"auto"`` FBPs the slabs (shared among the ranks) and
    takes the quantile of every ``stride``-th voxel, the same voxels for any number of ranks."""
    import math

    if scale is None or scale == "none":
        return 1.0
    if scale != "auto":
        s = float(scale)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"scale must be a finite number > 0 (the value that maps to 1), got {scale!r}")
        return s
    from ..ct import Projector
    from .fbp import fbp

    Z, Y, X = geometry.volume_shape
    stride = max(1, math.ceil(Z * Y * X / SCALE_MAX_VALUES))
    blocks = plan_slabs(Z, slab, 0)
    mine = {}
    for k, (a, b) in enumerate(blocks):
        if k % ctx.world != ctx.rank:
            continue
        A_k = Projector(slab_geometry(geometry, a, b), device=dev)
        x = fbp(A_k, torch.from_numpy(src.read(a, b))[None, None].to(dev), filter="hann", nonneg=True)
        flat = x.detach().flatten().float().cpu()
        first = (-a * Y * X) % stride  # first index of this block on the global grid of every stride-th voxel
        mine[k] = flat[first::stride].numpy()
    gathered = {}
    for part in distributed.gather_objects(ctx, mine, "the scale step"):
        gathered.update(part)
    values = torch.cat([torch.from_numpy(gathered[k]) for k in range(len(blocks))])
    s = float(torch.quantile(values, SCALE_QUANTILE))
    if not (math.isfinite(s) and s > 0):
        raise ValueError("scale='auto': the quick FBP of y is zero or negative everywhere (is y empty or of the "
                         "wrong sign?); pass the attenuation range as a number instead")
    return s
