"""One slab runner for every path: in memory, file to file, one process or many (torchrun).

A volume is cut into slabs of axial slices (:func:`~tomodiff.recon.slabs.plan_slabs`). A slab
*source* gives each slab's problem ``(A_k, y_k)``: :class:`TensorSource` cuts an in-memory
sinogram, :class:`FileSource` reads detector rows from a file. A slab *store*
(:mod:`tomodiff.recon.slab_store`) keeps what is finished: the checkpoint a rerun resumes from,
and the hand-over between ranks. :func:`run_slabs` runs the passes of the schedule
(:func:`~tomodiff.recon.slabs.two_pass`: even slabs, then odd slabs that continue both finished
neighbours), shares each pass's slabs among the ranks, and leaves every slab in the store; the
front ends (:func:`tomodiff.recon.reconstruct`, :func:`tomodiff.recon.reconstruct_file`) join
them with :func:`~tomodiff.recon.slabs.blend_stream`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..ct import Projector
from . import distributed


@dataclass(frozen=True)
class Settings:
    """What travels with every run, whatever the method.

    seed: everything random derives from it; progress: progress bars; callback:
    ``callback(done, total)`` after every iteration or diffusion step (an exception raised in it
    aborts the run); checkpoint: the directory of finished slabs (resumed from when it exists);
    keep_checkpoint: leave it after success (the caller removes it once its output is safe);
    device: where to compute (the file path; in memory, ``y``'s device); precision: of a prior
    loaded by name (``"fp32"``, or ``"auto"`` as the CLI uses in one process and under torchrun).
    """

    seed: int = 0
    progress: bool = True
    callback: Callable | None = None
    checkpoint: Path | str | None = None
    keep_checkpoint: bool = False
    device: torch.device | str | None = None
    precision: str = "fp32"


@dataclass(frozen=True)
class SlabLayout:
    """How a volume is cut: ``slab`` slices per slab (``None``: the whole volume at once),
    ``overlap`` slices shared by neighbours, ``z_coupling`` the weight of TV along Z on every
    denoised estimate (0: off)."""

    slab: int | None = 32
    overlap: int = 4
    z_coupling: float = 0.02


class TensorSource:
    """Slab problems of an in-memory ``(A, y)``: rows ``a:b`` of ``y`` with a projector of the
    slab's geometry (same backend as ``A``), or ``(A, y)`` itself when the volume is not split."""

    def __init__(self, A, y: torch.Tensor, split: bool):
        self.A, self.y, self.split = A, y, split

    def slab(self, start: int, stop: int):
        if not self.split:
            return self.A, self.y
        kernel = self.A.kernel if self.A.backend == "astra" else None  # ASTRA CPU slices stay CPU slices
        A = Projector(self.A.geometry.rows(start, stop), backend=self.A.backend, kernel=kernel)
        return A, self.y[..., start:stop, :]


class FileSource:
    """Slab problems read from a sinogram file (:class:`~tomodiff.io.sinogram_reader.SinogramSource`),
    on ``device``, divided by the scale step's factor ``s``."""

    def __init__(self, reader, device, s: float = 1.0):
        self.reader, self.device, self.s = reader, device, s

    def slab(self, start: int, stop: int):
        A_k = Projector(self.reader.geometry.rows(start, stop), device=self.device)
        return A_k, torch.from_numpy(self.reader.read(start, stop))[None, None].to(self.device) / self.s


def neighbours(store, plan, k: int, device):
    """``(left, right)`` shared slices ``(n, B, C, s, Y, X)`` of slab ``k``'s finished neighbours:
    odd slabs continue both (``None`` where there is none), even slabs start fresh."""
    if k % 2 == 0:
        return None, None
    start, stop = plan[k]
    left = store.get(k - 1)["samples"][:, :, :, -(plan[k - 1][1] - start):].to(device)
    right = None
    if k + 1 < len(plan):
        right = store.get(k + 1)["samples"][:, :, :, :stop - plan[k + 1][0]].to(device)
    return left, right


def _slab_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm  # start-up time: tqdm pulls in its notebook detection

    return tqdm(total=total, desc="slabs", disable=not enabled)


def run_slabs(source, store, plan, phases, solve, ctx, *, hint: str, group=None, progress: bool = True,
              callback=None, steps: int = 1) -> None:
    """Solve this rank's slabs of every pass into ``store``, skipping those already there.

    solve: ``solve(A_k, y_k, k, left, right, callback) -> (samples (n, B, C, Z_k, Y, X), nfe)``.
    callback: ``callback(done, total)`` in units of ``steps`` per slab, monotone over the run.
    After each pass the store shares its slabs among the ranks (``hint`` ends a lost-rank error).
    With more than one pass (:func:`~tomodiff.recon.slabs.two_pass`) odd slabs get the shared
    slices of their neighbours (:func:`neighbours`); a single pass solves slabs independently.
    """
    bar = _slab_bar(len(plan), progress and len(plan) > 1)
    coupled = len(phases) > 1  # a two-pass schedule: odd slabs continue their finished neighbours
    done = 0  # slabs finished (or resumed) by this rank, for monotone progress
    for p, phase in enumerate(phases):
        owner = distributed.assign(plan, phase, ctx.world)
        for k in sorted(k for k in phase if owner[k] == ctx.rank):
            if not store.has(k):
                A_k, y_k = source.slab(*plan[k])
                left, right = neighbours(store, plan, k, y_k.device) if coupled else (None, None)
                cb = None if callback is None else \
                    (lambda info, n=done: callback(n * steps + info["i"] + 1, len(plan) * steps))
                samples, nfe = solve(A_k, y_k, k, left, right, cb)
                if callback is not None:
                    callback((done + 1) * steps, len(plan) * steps)  # sdedit runs only part of the steps
                store.put(k, samples, nfe)
            done += 1
            bar.update(1)
        store.share(ctx, plan, phase, owner, f"pass {p + 1} of {len(phases)}", hint, group)
    bar.close()
