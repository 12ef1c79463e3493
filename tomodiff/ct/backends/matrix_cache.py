"""A byte-bounded LRU cache of sparse system matrices, keyed by (geometry part, dtype, device).

Building a Joseph matrix costs seconds; applying it costs milliseconds. Samplers call the same
projector thousands of times, so matrices are built once per (geometry, dtype, device) and kept
while they fit in the budget (least recently used evicted first).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch

_DEFAULT_LIMIT = 1 << 30  # bytes


class MatrixCache:
    def __init__(self, limit_bytes: int = _DEFAULT_LIMIT):
        self.limit_bytes = int(limit_bytes)
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key, build: Callable[[], tuple]) -> tuple:
        """Cached value for ``key``, else ``build()`` (stored if it fits the budget)."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = build()
        size = sum(_nbytes(t) for t in value)
        if size <= self.limit_bytes:
            while self._bytes + size > self.limit_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self._bytes -= sum(_nbytes(t) for t in old)
            self._items[key] = value
            self._bytes += size
        return value

    def would_fit(self, size: int) -> bool:
        return size <= self.limit_bytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


def _nbytes(t) -> int:
    if isinstance(t, torch.Tensor) and t.layout == torch.sparse_csr:
        return sum(x.numel() * x.element_size() for x in (t.crow_indices(), t.col_indices(), t.values()))
    if isinstance(t, torch.Tensor):
        return t.numel() * t.element_size()
    return 0


#: The process-wide cache used by the torch backend; ``CACHE.limit_bytes`` can be changed.
CACHE = MatrixCache()
