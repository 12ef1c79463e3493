"""Slab-parallel runs on ``torch.distributed``: which process am I, and which slabs are mine.

Launched by ``torchrun`` (which sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/
``MASTER_PORT``), every process reconstructs its own slabs of the volume: gloo on the CPU, NCCL on
GPUs with one device per process (``cuda:LOCAL_RANK``). Without ``WORLD_SIZE`` (or with 1) nothing
is initialised and the run is a plain single-process one.

Slab coupling across ranks is kept by *scheduling*, not by exchanging slices during sampling:
slabs run in two passes (:func:`~tomodiff.recon.slabs.two_pass`), even slabs first, then odd slabs
that continue both neighbours' shared slices. Every slab draws its own random numbers from
``(seed, slab index, sample index)``, so the result depends on the plan only and a run on N ranks
equals a run on one (bitwise on the CPU in fp32 when each process uses the same number of threads).

A lost rank shows up as a failed collective (gloo notices a closed connection at once, a hung
rank after ``timeout_s``); it is turned into :class:`RankLostError` with one clear line.
"""

from __future__ import annotations

import atexit
import datetime
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

#: seconds a rank waits for the others at a barrier (env ``TOMODIFF_DIST_TIMEOUT`` overrides): the
#: longest a healthy rank may lag behind, e.g. one slab of a slow diffusion run
DEFAULT_TIMEOUT_S = 1800.0


class RankLostError(RuntimeError):
    """Another rank died or hung: a collective operation failed or timed out."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` (``local_rank`` on its node)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def active(self) -> bool:
        """True when more than one process shares the work."""
        return self.world > 1

    def say(self, msg: str) -> None:
        """One line on stderr, prefixed with the rank when distributed."""
        prefix = f"[rank {self.rank}/{self.world}] " if self.active else ""
        print(f"{prefix}{msg}", file=sys.stderr, flush=True)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def _timeout() -> float:
    raw = os.environ.get("TOMODIFF_DIST_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"TOMODIFF_DIST_TIMEOUT={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"TOMODIFF_DIST_TIMEOUT must be > 0 seconds, got {raw}")
    return value


def detect() -> Dist:
    """The job as the launcher describes it (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); world 1 if unset."""
    if dist.is_available() and dist.is_initialized():  # a process group set up by the caller
        return Dist(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", dist.get_rank()), _timeout())
    world, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of the job")
    return Dist(rank, world, _env_int("LOCAL_RANK", rank), _timeout())


def launched() -> bool:
    """True when started by torchrun (any world size, 1 included) or inside a process group."""
    return "WORLD_SIZE" in os.environ or (dist.is_available() and dist.is_initialized())


def device_for(ctx: Dist, device) -> torch.device:
    """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK``; a clear error when a node has
    more ranks than GPUs (``--device cuda`` with 4 processes on a 2-GPU node)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return dev
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        raise RuntimeError(f"--device {device}: torch sees no CUDA GPU on this machine")
    if not ctx.active:
        return dev
    local_world = _env_int("LOCAL_WORLD_SIZE", ctx.local_rank + 1)
    if ctx.local_rank >= n or local_world > n:
        raise RuntimeError(f"--device {device}: {max(local_world, ctx.local_rank + 1)} ranks on this node but only "
                           f"{n} GPU(s); start at most {n} processes per node (torchrun --nproc-per-node {n})")
    return torch.device("cuda", ctx.local_rank)


def setup(device="cpu") -> tuple[Dist, torch.device]:
    """Join the process group when launched with ``WORLD_SIZE > 1`` (gloo on the CPU, NCCL on CUDA)
    and return ``(Dist, this rank's device)``. Idempotent; a single process initialises nothing."""
    ctx = detect()
    dev = device_for(ctx, device)
    if ctx.active and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=ctx.timeout_s),
                                    **({"device_id": dev} if dev.type == "cuda" else {}))
        except Exception as err:
            raise RankLostError(f"rank {ctx.rank}/{ctx.world}: could not join the process group at "
                                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
                                f"({_first_line(err)})") from err
        # A process that exits with its gloo group still alive can abort in the group's destructor
        # (std::terminate, exit -6: seen in 1 of about 14 two-rank runs here, with an fp32 prior too,
        # on the rank that finished first); leaving the group first: 0 aborts in 20 runs since.
        atexit.register(teardown)
    return ctx, dev


def teardown() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def assign(plan: list[tuple[int, int]], phase: list[int], world: int) -> dict[int, int]:
    """``{slab index: rank}`` for the slabs of one phase: longest slab first to the least-loaded rank
    (ties to the lower rank), so work is balanced and the assignment is the same on every rank."""
    load = [0] * world
    owner = {}
    for k in sorted(phase, key=lambda k: (-(plan[k][1] - plan[k][0]), k)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[k] = r
        load[r] += plan[k][1] - plan[k][0]
    return owner


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _lost(ctx: Dist, what: str, err: BaseException, hint: str) -> RankLostError:
    return RankLostError(f"rank {ctx.rank}/{ctx.world}: another rank died or hung during {what} "
                         f"({_first_line(err)}; a hung rank is waited for TOMODIFF_DIST_TIMEOUT={ctx.timeout_s:g} s); "
                         f"{hint}")


def barrier(ctx: Dist, what: str, group=None, hint: str = "rerun to resume") -> None:
    """Wait for every rank of ``group`` (gloo: ``monitored_barrier``, which names a missing rank)."""
    if not ctx.active:
        return
    try:
        if dist.get_backend(group) == "gloo":
            dist.monitored_barrier(group=group, timeout=datetime.timedelta(seconds=ctx.timeout_s),
                                   wait_all_ranks=True)
        else:
            dist.barrier(group=group)
    except Exception as err:
        raise _lost(ctx, what, err, hint) from err


def broadcast(ctx: Dist, tensor: torch.Tensor, src: int, what: str, hint: str = "rerun to resume") -> torch.Tensor:
    """``tensor`` of rank ``src`` on every rank (the others pass a buffer of the same shape)."""
    if not ctx.active:
        return tensor
    try:
        dist.broadcast(tensor, src=src)
    except Exception as err:
        raise _lost(ctx, what, err, hint) from err
    return tensor


def gather_objects(ctx: Dist, obj, what: str, group=None) -> list:
    """``obj`` of every rank of ``group``, as a list (``[obj]`` in a single process)."""
    if not ctx.active:
        return [obj]
    out = [None] * dist.get_world_size(group)
    try:
        dist.all_gather_object(out, obj, group=group)
    except Exception as err:
        raise _lost(ctx, what, err, "rerun to resume") from err
    return out


def active_group(ctx: Dist, busy: list[int]):
    """A process group of the ranks in ``busy`` (every rank must call this), so idle ranks can leave."""
    if not ctx.active or len(busy) == ctx.world:
        return None
    try:
        return dist.new_group(sorted(busy))
    except Exception as err:
        raise _lost(ctx, "set-up of the working ranks", err, "rerun") from err
