"""File-to-file reconstruction in slabs, on one process or many: memory bounded by the slab.

:func:`reconstruct_file` reads a sinogram file (project file, DXchange or NXtomo) a slab of
detector rows at a time, reconstructs each slab of axial slices (every method: FBP and SIRT are
exact slice by slice in parallel beam, so their slabs do not overlap; TV, CGLS and the diffusion
methods use overlapping slabs), keeps each finished slab in a :class:`~tomodiff.recon.slab_store.DirectoryStore`
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

import math
import resource
import time
from pathlib import Path

import torch

from .. import methods
from ..ct import Projector
from ..io.sinogram_reader import open_sinogram
from ..io.volume_writer import write_volume
from ..priors import load as load_prior
from . import distributed
from .calibration import lookup as calibration_for
from .engine import FileSource, Settings, SlabLayout, run_slabs
from .memory import PeakMemory
from .provenance import created, plain_options, prior_info, used_options, versions
from .scale import resolve_scale, slabwise_robust_max
from .slab_store import DirectoryStore, run_key
from .slabs import blend_stream, plan_slabs, two_pass
from .solvers import diffusion_options, solve_classical, solve_diffusion


def default_store(out) -> Path:
    """Where the slabs of a run writing ``out`` live unless told: ``.<out name>.slabs`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.slabs")


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reconstruct_file(path, out, *, method: str, prior=None, steps: int | None = None, n_samples: int = 1,
                     sigma_y: float | None = None, seed: int = 0, slab: int = methods.DEFAULT_SLAB,
                     overlap: int | None = None, z_coupling: float = methods.DEFAULT_Z_COUPLING,
                     keep_samples: bool = False, checkpoint=None, device="cpu", thin: int = 1, rows=None,
                     center_offset: float = 0.0, scale=None, progress: bool = True, precision: str = "fp32",
                     **options) -> dict | None:
    """Reconstruct the sinogram in ``path`` slab by slab into the project file ``out``.

    Parameters as in :func:`tomodiff.recon.reconstruct` (``prior``: a prior object or a shipped
    prior's name, loaded in ``precision``; ``method="auto"`` as there); ``overlap`` defaults to 0
    for methods exact slice by slice (FBP, SIRT) and 4 otherwise; ``sigma_y`` (diffusion methods) to the
    file's, else the sinogram's own estimate (:func:`~tomodiff.io.noise.estimate_sigma_y` on up to
    :data:`NOISE_ROWS` detector rows spread over the selection; the rule is printed and recorded as the
    provenance's ``noise``).
    ``checkpoint``: the slab directory (default :func:`default_store`), kept after a failure so
    that rerunning — with any number of ranks — resumes; removed after success. ``thin``, ``rows``,
    ``center_offset``: as ``tomodiff reconstruct`` (every thin-th angle; detector rows
    ``(start, stop)``; raw scans' axis offset). scale: the scale step as in ``reconstruct``
    (``None``: none; a number: the value that maps to 1; ``"auto"``: the file's recorded
    ``mu_max`` where a simulated scan has one, else the 99.9% quantile of a non-negative Hann
    FBP, computed slab by slab and shared among the ranks). Slabs are solved for ``y / s`` and
    the joined result is multiplied by ``s``.

    Returns on rank 0 a summary dict (method, seconds, nfe, residual, psnr against a reference
    when the file has one, per-rank peak RSS in MiB, slabs, world size, out); ``None`` on other ranks.
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    m, steps, options = methods.resolve(method, steps, options)
    steps = methods.DEFAULT_STEPS if steps is None else steps
    settings = Settings(seed=seed, progress=progress, checkpoint=checkpoint, device=device, precision=precision)
    ctx, dev = distributed.setup(device)
    with open_sinogram(path, thin=thin, rows=rows, center_offset=center_offset) as src:
        if not src.geometry.rows_are_slices:
            g = src.geometry
            raise ValueError(f"{path}: slab-wise reconstruction needs a 3D parallel-beam geometry with one detector "
                             f"row per slice (got {g.kind}, volume {g.volume_shape}, detector {g.det_shape})")
        noise = _noise_level(sigma_y, src, ctx) if m.diffusion else None
        sigma_y = noise["sigma_y"] if noise else sigma_y
        layout = SlabLayout(slab, (0 if m.separable else methods.DEFAULT_OVERLAP) if overlap is None else overlap,
                            z_coupling)
        run = _FileRun(ctx, dev, src, m, _load(prior, m, dev, settings.precision), steps,
                       n_samples if m.diffusion else 1, sigma_y, layout, settings, scale, options)
        run.noise = noise
        return run.execute(path, out, keep_samples and m.diffusion, t0, cpu0)


#: the sinogram-only noise estimate of the streaming path reads at most this many detector rows
NOISE_ROWS = 16


def _noise_level(sigma_y, src, ctx) -> dict:
    """The provenance's ``noise``: ``{"rule", "sigma_y"}`` (and the rows read for an estimate):
    ``sigma_y`` given, else the file's, else :func:`~tomodiff.io.noise.estimate_sigma_y` of up to
    :data:`NOISE_ROWS` detector rows evenly spread over the selection (one row read at a time:
    memory stays bounded; every rank reads the same rows and gets the same number)."""
    if sigma_y is not None:
        return {"rule": "given", "sigma_y": float(sigma_y)}
    if src.sigma_y is not None:
        return {"rule": "the file's provenance", "sigma_y": float(src.sigma_y)}
    import numpy as np

    from ..io.noise import estimate_sigma_y  # start-up time: scipy on demand

    n_rows = src.shape[1]
    rows = sorted({int(r) for r in np.linspace(0, n_rows - 1, min(n_rows, NOISE_ROWS)).round()})
    sino = np.concatenate([src.read(r, r + 1) for r in rows], axis=1)  # (A, len(rows), U)
    sigma_y = estimate_sigma_y(sino)
    if ctx.rank == 0:
        ctx.say(f"sigma_y from the sinogram: MAD of its third difference along the detector ({len(rows)} of "
                f"{n_rows} rows) = {sigma_y:.4g}")
    return {"rule": "sinogram MAD", "sigma_y": sigma_y, "rows": rows}


def _load(prior, m, dev, precision: str):
    """The prior object of a diffusion run (a shipped prior's name is loaded on ``dev``)."""
    if not m.diffusion:
        return prior
    if prior is None:
        raise ValueError("diffusion methods need a prior (e.g. prior='ct-slice')")
    return load_prior(prior, device=dev, precision=precision) if isinstance(prior, str) else prior


class _FileRun:
    """One file-to-file run: plan, key and store, this rank's slabs, and rank 0's merge."""

    def __init__(self, ctx, dev, src, m, prior, steps, n_samples, sigma_y, layout, settings, scale, options):
        self.ctx, self.dev, self.src, self.m, self.prior = ctx, dev, src, m, prior
        self.steps, self.n_samples, self.sigma_y = steps, n_samples, sigma_y
        self.layout, self.settings = layout, settings
        self.options = options
        n_slices = src.geometry.volume_shape[0]
        self.plan = plan_slabs(n_slices, layout.slab, layout.overlap)
        self.phases = two_pass(self.plan) if m.diffusion else [list(range(len(self.plan)))]
        self.s, self.scale_rule = _resolve_scale(scale, m, ctx, src, layout.slab, dev)
        self.params = {"method": m.name, "steps": steps, "n_samples": n_samples, "sigma_y": sigma_y,
                       "seed": settings.seed, "slab": layout.slab, "overlap": layout.overlap,
                       "z_coupling": layout.z_coupling, "plan": self.plan, "scale": self.s,
                       "schedule": "two-pass" if m.diffusion else "independent", **plain_options(options)}
        self.used = diffusion_options(m.name, prior, options) if m.diffusion else dict(options)
        self.calibration = None  # the std's calibration record, once the merge wrote it
        self.noise = None  # how σ_y was found (diffusion methods): the provenance's and the summary's "noise"

    def _solve(self, A_k, y_k, k, left, right, cb):
        if not self.m.diffusion:
            x, self.used, _ = solve_classical(A_k, y_k, self.m.name, self.options)  # TV: the old weight rule
            return x[None], 0
        res = solve_diffusion(self.prior, A_k, y_k, k, method=self.m.name,
                              steps=self.steps, n_samples=self.n_samples, sigma_y=self.sigma_y / self.s,
                              seed=self.settings.seed, z_coupling=self.layout.z_coupling, opts=self.used, left=left,
                              right=right, progress=self.settings.progress)
        return res.samples, res.nfe

    def _store(self, out):
        ctx = self.ctx
        params = {**self.params, "data": self.src.identity, "prior": prior_info(self.prior) if self.m.diffusion else {}}
        keys = distributed.gather_objects(ctx, run_key(params), "the start of the run")
        if len(set(keys)) > 1:
            raise ValueError(f"rank {ctx.rank}/{ctx.world}: the ranks were started with different arguments or files "
                             f"(ranks {[r for r, k in enumerate(keys) if k != keys[0]]} differ from rank 0)")
        checkpoint = self.settings.checkpoint
        return DirectoryStore(Path(checkpoint) if checkpoint is not None else default_store(out), params)

    def execute(self, path, out, keep_samples: bool, t0: float, cpu0: float) -> dict | None:
        ctx, plan = self.ctx, self.plan
        store = self._store(out)
        owners = [distributed.assign(plan, phase, ctx.world) for phase in self.phases]
        busy = sorted({r for o in owners for r in o.values()})
        group = distributed.active_group(ctx, busy)
        if ctx.rank not in busy:
            ctx.say(f"idle: {len(plan)} slab(s) for {ctx.world} ranks, none left for this rank; exiting")
            return None
        hint = f"finished slabs are kept in {store.dir}; rerun the same command (any number of ranks) to resume"
        with PeakMemory(self.dev) as mem:
            run_slabs(FileSource(self.src, self.dev, self.s), store, plan, self.phases, self._solve, ctx, hint=hint,
                      group=group, progress=False)
        ranks = distributed.gather_objects(ctx, {"rank": ctx.rank, "peak_rss_mb": _rss_peak_mb(),
                                                 "cpu_s": time.process_time() - cpu0,
                                                 "peak_above_start_mb": mem.peak_mb,
                                                 "slabs": sorted(k for o in owners for k, r in o.items()
                                                                 if r == ctx.rank)},
                                           "the end of the run", group)
        if ctx.rank != 0:
            return None
        stats = self._merge(path, out, store, ranks, keep_samples, t0)
        store.remove()
        return {"method": self.m.name, "seconds": time.perf_counter() - t0, "nfe": stats.nfe,
                "residual": stats.residual, "psnr": stats.psnr, "ssim": None, "data_range": stats.data_range,
                "scale": self.s, "slabs": len(plan), "world_size": ctx.world, "ranks": ranks, "out": str(out),
                "std_samples": self.n_samples if self.calibration else None, "std_calibration": self.calibration,
                "noise": self.noise}

    def _merge(self, path, out, store, ranks, keep_samples: bool, t0: float):
        """Rank 0: join the stored slabs in order and write the project file, with statistics."""
        stats = _Stats(self.src, self.src.geometry, self.dev)
        nfes = {}

        def part(k):
            saved = store.get(k)
            nfes[k] = saved["nfe"]
            return saved["samples"][:, 0, 0]  # (n, Z_k, Y, X)

        chunks = ((z0, z1, joined, nfes[k]) for k, (z0, z1, joined) in enumerate(blend_stream(self.plan, part)))
        provenance = lambda: {**self.params,  # noqa: E731 (called last, once the statistics are in)
                              "scale_rule": self.scale_rule,
                              **({"noise": self.noise} if self.noise else {}),
                              "options": used_options(self.used),
                              "prior": prior_info(self.prior) if self.m.diffusion else {},
                              "geometry": self.src.geometry.to_dict(), "versions": versions(), "input": str(path),
                              "world_size": self.ctx.world, "ranks": ranks, "nfe": stats.nfe,
                              "residual": stats.residual, "psnr": stats.psnr,
                              "metrics": {"data_range": stats.data_range, "data_range_rule": "reference max - min"},
                              "seconds": time.perf_counter() - t0, "created": created()}
        n = store.get(0)["samples"].shape[0]
        # the file's std is the calibrated one (k·std_raw, k = 1 where never fitted), as reconstruct()'s
        k, calibration = (calibration_for(self.m.name, self.prior, geometry=self.src.geometry, n_samples=n,
                                          steps=self.steps, options=self.options) if n > 1 else (1.0, None))
        self.calibration = calibration
        with_calibration = (lambda: {**provenance(), "calibration": calibration}) if n > 1 else provenance  # noqa: E731
        write_volume(out, source=self.src, chunks=chunks, n_samples=n, keep_samples=keep_samples,
                     provenance_fn=with_calibration, step=max(1, self.plan[0][1] - self.plan[0][0]),
                     on_chunk=stats.add, scale=self.s, std_scale=k, kept=f"the finished slabs stay in {store.dir}")
        return stats


class _Stats:
    """Residual ``‖A·mean − y‖/‖y‖`` and PSNR against the reference (data range: the reference's
    max − min), accumulated slice block by slice block."""

    def __init__(self, src, geometry, dev):
        self.src, self.geometry, self.dev = src, geometry, dev
        self.r2 = self.y2 = self.se = 0.0
        self.count = self.nfe = 0
        self.lo, self.hi = float("inf"), float("-inf")

    def add(self, z0, z1, mean, nfe):
        self.nfe += nfe
        A = Projector(self.geometry.rows(z0, z1), device=self.dev)
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
        if self.data_range is None:
            return None
        mse = self.se / self.count
        return float("inf") if mse == 0 else 10 * math.log10(self.data_range ** 2 / mse)


def _resolve_scale(scale, m, ctx, src, slab, dev) -> tuple[float, str]:
    """``(s, rule)``: the factor of the scale step and how it was chosen. ``"auto"`` takes a
    simulated file's recorded ``mu_max`` (as the CLI's in-memory path does), else the estimate of
    :func:`~tomodiff.recon.scale.slabwise_robust_max` over the file's rows, shared among the ranks
    (the very number the in-memory path computes)."""
    if scale == "auto" and src.mu_max is not None:
        return src.mu_max, "auto: the file's recorded mu_max (the simulated volume's maximum)"
    blocks = plan_slabs(src.geometry.volume_shape[0], slab, 0)
    read = lambda a, b: torch.from_numpy(src.read(a, b))[None, None]  # noqa: E731
    s, record = resolve_scale(None, None, scale, linear=m.linear,
                              estimate=lambda: slabwise_robust_max(src.geometry, read, blocks, device=dev, ctx=ctx))
    return s, record["rule"]
