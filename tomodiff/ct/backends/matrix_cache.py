"""A byte-bounded, thread-safe LRU cache of sparse system matrices.

Building a Joseph matrix costs seconds; applying it costs milliseconds. Samplers call the same
projector thousands of times, so matrices are built once per (geometry, dtype, device) and kept
while they fit in the budget (least recently used evicted first).

Two rules keep it useful and safe:

- *No self-eviction in a scan.* A projector whose matrix comes in blocks (cone beam) reads its
  blocks in the same order on every call. Plain LRU would evict the block needed next each time and
  never hit. Entries carry a ``group`` (the projector they belong to); a new entry may evict only
  entries of other groups, and is not stored when it would have to evict its own group's. So the
  first blocks that fit stay cached and hit on every later call; the rest are rebuilt.
- *One lock.* The napari widget runs reconstructions in a worker thread while the main thread may
  project too; lookups, builds and insertions happen under one re-entrant lock, so two threads never
  build the same matrix twice or corrupt the byte count.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from typing import Callable, Hashable

import torch

#: Default byte budget of the process-wide cache (2 GiB), also the default memory budget with which
#: ``Projector(backend="auto")`` decides between a cached matrix and the matrix-free projector.
DEFAULT_LIMIT = 2 << 30


class MatrixCache:
    def __init__(self, limit_bytes: int = DEFAULT_LIMIT):
        self.limit_bytes = int(limit_bytes)
        self._items: OrderedDict = OrderedDict()  # key -> (group, value, nbytes)
        self._bytes = 0
        self._lock = threading.RLock()
        self.builds = 0  # how many times a value was built (misses), for tests and benchmarks
        self._warned: set = set()  # groups already warned about being rebuilt

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable, build: Callable[[], tuple], group: Hashable = None) -> tuple:
        """Cached value for ``key``, else ``build()`` (stored if it fits, see the module notes).

        ``group``: entries that belong together (default: the key itself); a new entry never evicts
        an entry of its own group.
        """
        group = key if group is None else group
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][1]
            value = build()
            self.builds += 1
            size = sum(_nbytes(t) for t in value)
            if self._make_room(size, group):
                self._items[key] = (group, value, size)
                self._bytes += size
            elif group not in self._warned:
                self._warned.add(group)
                warnings.warn(f"a system matrix ({size / 2**20:.0f} MiB, or one block of it) does not fit the "
                              f"matrix cache ({self.limit_bytes / 2**20:.0f} MiB limit, "
                              f"{self._bytes / 2**20:.0f} MiB held by this matrix and others): it is rebuilt on "
                              f"every call. Use backend='matrix_free' or 'auto', or raise CACHE.limit_bytes.",
                              RuntimeWarning, stacklevel=2)
            return value

    def _make_room(self, size: int, group) -> bool:
        """Evict least recently used entries of other groups until ``size`` fits; False if it cannot."""
        if size > self.limit_bytes:
            return False
        others = sum(s for g, _, s in self._items.values() if g != group)
        if self._bytes - others + size > self.limit_bytes:  # only evicting its own group would do
            return False
        for key in list(self._items):
            if self._bytes + size <= self.limit_bytes:
                break
            g, _, s = self._items[key]
            if g != group:
                del self._items[key]
                self._bytes -= s
        return True

    def would_fit(self, size: int) -> bool:
        return size <= self.limit_bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self._warned.clear()


def _nbytes(t) -> int:
    if isinstance(t, torch.Tensor) and t.layout == torch.sparse_csr:
        return sum(x.numel() * x.element_size() for x in (t.crow_indices(), t.col_indices(), t.values()))
    if isinstance(t, torch.Tensor):
        return t.numel() * t.element_size()
    return 0


#: The process-wide cache used by the torch backend; ``CACHE.limit_bytes`` can be changed.
CACHE = MatrixCache()
