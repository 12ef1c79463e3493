"""The matrix cache: blocks of one matrix never evict each other; one lock for all threads."""

import threading
import time
import warnings

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, cone_beam
from tomodiff.ct.backends import torch_backend
from tomodiff.ct.backends.matrix_cache import CACHE, MatrixCache


def _value(nbytes):
    return (torch.zeros(nbytes, dtype=torch.uint8),)


def test_a_scan_keeps_its_first_blocks_instead_of_evicting_the_next_one():
    cache = MatrixCache(limit_bytes=300)
    with pytest.warns(RuntimeWarning, match="rebuilt on every call"):
        for _ in range(3):  # read blocks 0..6 in order, three times
            for k in range(7):
                cache.get(("g", k), lambda: _value(100), group="g")
    # plain LRU would have rebuilt all 7 blocks on every pass (21 builds); now blocks 0-2 stay cached
    assert cache.builds == 7 + 4 + 4
    assert sorted(k for _, k in cache._items) == [0, 1, 2] and cache.nbytes == 300


def test_other_groups_are_still_evicted_least_recently_used_first():
    cache = MatrixCache(limit_bytes=250)
    cache.get("a", lambda: _value(100))
    cache.get("b", lambda: _value(100))
    cache.get("a", lambda: _value(100))  # a is now the most recent
    cache.get("c", lambda: _value(100))  # evicts b
    assert list(cache._items) == ["a", "c"] and cache.nbytes == 200
    with pytest.warns(RuntimeWarning, match="rebuilt on every call"):
        cache.get("huge", lambda: _value(1000))  # larger than the limit: returned, not stored
    assert list(cache._items) == ["a", "c"] and cache.builds == 4


def test_cone_blocks_hit_on_the_second_call(monkeypatch):
    g = cone_beam((6, 12, 10), np.linspace(0, 2 * np.pi, 7, endpoint=False), (8, 16), 30.0, 15.0)
    monkeypatch.setattr(torch_backend, "_CONE_BLOCK_ENTRIES", 1)  # one angle per block
    A = Projector(g, "torch")
    x = torch.rand(1, 1, *g.volume_shape)
    CACHE.clear()
    A.forward(x)
    one_block = CACHE.nbytes // 7
    monkeypatch.setattr(CACHE, "limit_bytes", int(3.5 * one_block))
    CACHE.clear()
    builds = CACHE.builds
    with pytest.warns(RuntimeWarning, match="rebuilt on every call"):
        y1 = A.forward(x)
    assert CACHE.builds - builds == 7
    y2 = A.forward(x)
    assert CACHE.builds - builds == 7 + 4  # 3 of the 7 blocks hit (before the fix: none)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    CACHE.clear()


def test_threads_share_one_build_and_a_consistent_byte_count():
    cache = MatrixCache(limit_bytes=10_000)
    calls = []

    def slow_build():
        calls.append(1)
        time.sleep(0.05)
        return _value(100)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("same", slow_build))) for _ in range(6)]
    threads += [threading.Thread(target=lambda k=k: cache.get(("other", k), lambda: _value(10))) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(r is results[0] for r in results)
    assert cache.nbytes == 100 + 20 * 10 == sum(s for _, _, s in cache._items.values())


def test_a_matrix_that_does_not_fit_warns_once_that_it_is_rebuilt():
    cache = MatrixCache(limit_bytes=50)
    with pytest.warns(RuntimeWarning, match="does not fit the matrix cache .* rebuilt on every call"):
        cache.get("big", lambda: _value(100))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.get("big", lambda: _value(100))  # warned once per matrix
    assert cache.builds == 2 and cache.nbytes == 0


def test_auto_under_a_larger_budget_raises_the_cache_limit(monkeypatch):
    g = cone_beam((6, 12, 10), np.linspace(0, 2 * np.pi, 7, endpoint=False), (8, 16), 30.0, 15.0)
    need = torch_backend.matrix_bytes(g)
    monkeypatch.setattr(CACHE, "limit_bytes", need // 2)
    assert Projector(g, memory_budget=need // 4).backend == "matrix_free"
    assert CACHE.limit_bytes == need // 2  # untouched when the matrix is not chosen
    assert Projector(g, memory_budget=need).backend == "torch"
    assert CACHE.limit_bytes == need
