"""Where finished slabs live during a run: in memory, in a checkpoint directory, or both.

Every slab is ``{"samples": (n, B, C, Z_k, Y, X) tensor, "nfe": int}``. One checkpoint format
serves every path (in memory, streaming, torchrun): a directory with ``key.json`` and one
``slab_00007.pt`` file per finished slab, each written atomically and tagged with the run's key
(:func:`run_key`: a hash of everything the slabs depend on), so a crash loses at most the slab
being written and a directory of another run is refused with a clear error. Any rank can read any
slab file (a shared filesystem across nodes).

:class:`MemoryStore` keeps the slabs in memory (optionally also in a checkpoint directory, from
which a rerun resumes) and shares each pass's slabs among the ranks by broadcast, so every rank
ends with the whole result. :class:`DirectoryStore` keeps them only on disk, for the streaming
path, where the ranks hand slabs over through the files and rank 0 merges them.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from ..io.atomic import atomic_path, write_bytes, write_error
from ..io.project_file import _jsonable
from . import distributed


def run_key(params: dict) -> str:
    """A stable hash of a run's parameters (JSON with sorted keys; other values by ``repr``)."""
    return hashlib.sha256(json.dumps(_jsonable(params), sort_keys=True, default=repr).encode()).hexdigest()


def remove_checkpoint(directory) -> None:
    """Delete a checkpoint directory's slab files and key (and the directory, if nothing else is in it)."""
    directory = Path(directory)
    for p in directory.glob("slab_*.pt"):
        p.unlink(missing_ok=True)
    (directory / "key.json").unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        pass  # missing, or something else lives there: leave it


class DirectoryStore:
    """Finished slabs of one run as files in ``directory`` (see the module docstring)."""

    def __init__(self, directory, params: dict):
        self.dir = Path(directory)
        self.params = json.loads(json.dumps(_jsonable(params), sort_keys=True, default=repr))
        self.key = run_key(params)
        if self.dir.exists() and not self.dir.is_dir():
            raise ValueError(f"checkpoint {self.dir} is a file; checkpoints are directories (delete the file or pass "
                             f"another path)")
        self.dir.mkdir(parents=True, exist_ok=True)
        keyfile = self.dir / "key.json"
        if keyfile.exists():
            saved = json.loads(keyfile.read_text())
            if saved.get("key") != self.key:
                old = saved.get("params") or {}
                diff = sorted(k for k in set(old) | set(self.params) if old.get(k) != self.params.get(k))
                what = f" (differs in: {', '.join(diff)})" if old and diff else ""
                raise ValueError(f"checkpoint {self.dir} belongs to a run with other arguments or data{what} (the key "
                                 f"covers arguments, data, prior sha256 and geometry); delete it or pass another "
                                 f"checkpoint")
        else:
            with atomic_path(keyfile) as tmp:
                tmp.write_text(json.dumps({"key": self.key, "params": self.params}))

    def _file(self, k: int) -> Path:
        return self.dir / f"slab_{k:05d}.pt"

    def has(self, k: int) -> bool:
        return self._file(k).exists()

    def get(self, k: int) -> dict:
        try:
            saved = torch.load(self._file(k), map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"checkpoint slab {self._file(k)} could not be read ({err}); delete it to redo "
                             f"that slab") from err
        if saved.get("key") != self.key:
            raise ValueError(f"checkpoint slab {self._file(k)} belongs to another run; delete {self.dir}")
        return saved

    def put(self, k: int, samples: torch.Tensor, nfe: int) -> None:
        # serialised in memory first (one slab): torch.save to a full disk says "enforce fail ... unexpected pos"
        buf = io.BytesIO()
        torch.save({"key": self.key, "samples": samples.detach().cpu().contiguous(), "nfe": int(nfe)}, buf)
        try:
            write_bytes(self._file(k), buf.getbuffer())
        except OSError as err:
            raise write_error(err, self._file(k), f"the slabs finished before it (if any) stay in {self.dir}") from err

    def share(self, ctx, plan, phase, owner, what: str, hint: str, group=None) -> None:
        """After a pass (``what``, for errors): the files are the hand-over, so the ranks only wait
        for each other."""
        distributed.barrier(ctx, what, group, hint)

    def remove(self) -> None:
        remove_checkpoint(self.dir)


class MemoryStore:
    """Finished slabs in memory, mirrored to a :class:`DirectoryStore` when ``directory`` is given
    (a rerun then resumes from it); ``full_shape`` ``(n, B, C, Z, Y, X)`` of the whole result,
    ``dtype`` and ``device`` are what slabs received from other ranks are allocated as."""

    def __init__(self, directory, params: dict, full_shape: tuple, dtype, device):
        self.disk = None if directory is None else DirectoryStore(directory, params)
        self.slabs: dict[int, dict] = {}
        self.full_shape, self.dtype, self.device = full_shape, dtype, device

    def has(self, k: int) -> bool:
        return k in self.slabs or (self.disk is not None and self.disk.has(k))

    def get(self, k: int) -> dict:
        if k not in self.slabs:
            saved = self.disk.get(k)
            self.slabs[k] = {"samples": saved["samples"].to(device=self.device, dtype=self.dtype),
                             "nfe": int(saved["nfe"])}
        return self.slabs[k]

    def put(self, k: int, samples: torch.Tensor, nfe: int) -> None:
        self.slabs[k] = {"samples": samples, "nfe": int(nfe)}
        if self.disk is not None:
            self.disk.put(k, samples, nfe)

    def share(self, ctx, plan, phase, owner, what: str, hint: str, group=None) -> None:
        """After a pass: every rank receives the slabs of ``phase`` it did not compute, from their owners."""
        if not ctx.active:
            return
        for k in sorted(phase):
            start, stop = plan[k]
            mine = owner[k] == ctx.rank
            shape = (*self.full_shape[:3], stop - start, *self.full_shape[4:])
            buf = self.get(k)["samples"].contiguous() if mine else torch.empty(shape, dtype=self.dtype,
                                                                                device=self.device)
            samples = distributed.broadcast(ctx, buf, owner[k], f"the exchange of slab {k}", hint)
            n = torch.tensor([self.slabs[k]["nfe"] if mine else 0], dtype=torch.int64, device=self.device)
            nfe = int(distributed.broadcast(ctx, n, owner[k], f"the exchange of slab {k}", hint).item())
            self.slabs[k] = {"samples": samples, "nfe": nfe}

    def remove(self) -> None:
        if self.disk is not None:
            self.disk.remove()
