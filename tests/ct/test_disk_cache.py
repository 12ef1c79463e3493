"""The on-disk matrix cache: exact round trip, exact keys, bad files are misses, LRU size bound, off
switch, never a reason to fail; and a second process reads what the first one stored."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, fan_beam, parallel_beam
from tomodiff.ct import disk_cache
from tomodiff.ct.backends import torch_backend


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder; every build is stored (small test geometries build in milliseconds)."""
    monkeypatch.setenv("TOMODIFF_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("TOMODIFF_CACHE_MIN_SECONDS", "0")
    monkeypatch.delenv("TOMODIFF_CACHE_MAX", raising=False)
    return tmp_path / "c" / "matrices"


def _fan(offset=0.0, n=24):
    return fan_beam((n, n), np.linspace(0, np.pi, 9), det_shape=(n + 11,), source_distance=60.0,
                    detector_distance=30.0, voxel_size=1.0, det_spacing=1.5, center_offset=offset)


def _same_csr(a, b):
    return all(x.dtype == y.dtype and torch.equal(x, y) for x, y in
               ((a.crow_indices(), b.crow_indices()), (a.col_indices(), b.col_indices()), (a.values(), b.values())))


def test_round_trip_equals_a_fresh_build_exactly(cache):
    g = _fan()
    built = torch_backend.cached_build(g, torch.float32)  # miss: built and stored
    assert len(list(cache.glob("*.pt"))) == 1
    loaded = disk_cache.load(disk_cache.key(g, torch.float32, (0, g.n_angles)))
    fresh = torch_backend.build_matrices(g, torch.float32)
    assert loaded is not None
    for a, b, c in zip(built, loaded, fresh):
        assert _same_csr(a, c) and _same_csr(b, c) and a.shape == b.shape == c.shape
    again = torch_backend.cached_build(g, torch.float32)  # hit
    x = torch.rand(g.volume_shape[0] * g.volume_shape[1], 2)
    assert torch.equal(again[0] @ x, fresh[0] @ x)


def test_blockwise_build_is_identical_to_one_block(monkeypatch):
    """build_matrices assembles A from blocks of angles and sorts Aᵀ out of A: same bits as one block."""
    g = _fan()
    whole = torch_backend.build_matrices(g, torch.float64)
    monkeypatch.setattr(torch_backend, "_BUILD_ENTRIES", 1)  # one angle per block
    blocks = torch_backend.build_matrices(g, torch.float64)
    assert all(_same_csr(a, b) for a, b in zip(whole, blocks))
    assert torch.equal(whole[1].to_dense(), whole[0].to_dense().T)


def test_key_separates_geometries_differing_in_one_float():
    g = _fan(0.25)
    other = _fan(0.25 + 1e-12)
    assert disk_cache.key(g, torch.float32) == disk_cache.key(_fan(0.25), torch.float32)
    keys = {disk_cache.key(g, torch.float32), disk_cache.key(other, torch.float32),
            disk_cache.key(g, torch.float64), disk_cache.key(g, torch.float32, (0, 4)),
            disk_cache.key(parallel_beam((24, 24), g.angles, det_shape=(35,)), torch.float32)}
    assert len(keys) == 5


def test_a_corrupt_file_is_a_miss_removed_with_a_warning(cache):
    g = _fan()
    torch_backend.cached_build(g, torch.float32)
    (path,) = cache.glob("*.pt")
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as by a full disk or a crash elsewhere
    name = disk_cache.key(g, torch.float32, (0, g.n_angles))
    with pytest.warns(RuntimeWarning, match="ignoring unreadable cached matrix"):
        assert disk_cache.load(name) is None
    assert not path.exists()
    # the next build stores a whole file again, and it reads back without a warning
    torch_backend.cached_build(g, torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert disk_cache.load(name) is not None


def test_a_file_under_another_key_is_not_used(cache):
    g, other = _fan(), _fan(1.0)
    torch_backend.cached_build(g, torch.float32)
    (path,) = cache.glob("*.pt")
    wrong = cache / (disk_cache.key(other, torch.float32, (0, other.n_angles)) + ".pt")
    path.rename(wrong)  # a file whose content belongs to another geometry
    with pytest.warns(RuntimeWarning, match="mismatch"):
        assert disk_cache.load(wrong.stem) is None
    assert not wrong.exists()


def test_size_bound_evicts_least_recently_used(cache, monkeypatch):
    geoms = [_fan(float(k)) for k in range(3)]
    torch_backend.cached_build(geoms[0], torch.float32)
    (first,) = cache.glob("*.pt")
    size = first.stat().st_size
    monkeypatch.setenv("TOMODIFF_CACHE_MAX", str(int(2.5 * size)))  # room for two
    torch_backend.cached_build(geoms[1], torch.float32)
    os.utime(first, (1, 1))
    second = next(p for p in cache.glob("*.pt") if p != first)
    os.utime(second, (2, 2))
    disk_cache.load(first.stem)  # a read makes geometry 0 the most recently used
    torch_backend.cached_build(geoms[2], torch.float32)
    left = set(cache.glob("*.pt"))
    assert first in left and second not in left and len(left) == 2
    assert disk_cache.total_bytes() <= 2.5 * size


def test_blocks_of_one_matrix_never_evict_each_other(cache, monkeypatch):
    """Blocks are read in order on every call: evicting block 0 to store block 2 would miss every time."""
    g, other = _fan(), _fan(3.0)
    blocks = [(0, 3), (3, 6), (6, 9)]
    torch_backend.cached_build(g, torch.float32, "cpu", *blocks[0])
    (first,) = cache.glob("*.pt")
    size = first.stat().st_size  # each block of 3 angles is about this size
    monkeypatch.setenv("TOMODIFF_CACHE_MAX", str(int(2.5 * size)))
    for block in blocks[1:]:
        torch_backend.cached_build(g, torch.float32, "cpu", *block)
    names = {p.stem for p in cache.glob("*.pt")}
    assert names == {disk_cache.key(g, torch.float32, b) for b in blocks[:2]}  # the first two stay
    torch_backend.cached_build(other, torch.float32, "cpu", 0, 3)  # another matrix may evict them
    assert disk_cache.key(other, torch.float32, (0, 3)) in {p.stem for p in cache.glob("*.pt")}
    assert disk_cache.total_bytes() <= 2.5 * size


def test_a_matrix_larger_than_the_bound_is_not_stored(cache, monkeypatch):
    monkeypatch.setenv("TOMODIFF_CACHE_MAX", "1K")
    torch_backend.cached_build(_fan(), torch.float32)
    assert not (cache.exists() and list(cache.glob("*.pt")))


def test_switched_off(tmp_path, monkeypatch):
    for value in ("off", "none", "0", ""):
        monkeypatch.setenv("TOMODIFF_CACHE", value)
        assert disk_cache.cache_dir() is None
        assert disk_cache.store("x", torch_backend.build_matrices(_fan(), torch.float32)) is None
        assert disk_cache.load("x") is None and disk_cache.entries() == [] and disk_cache.clear() == (0, 0)
    monkeypatch.setenv("TOMODIFF_CACHE_MIN_SECONDS", "0")
    monkeypatch.setenv("TOMODIFF_CACHE", "off")
    A, _ = torch_backend.cached_build(_fan(), torch.float32)
    assert A.shape[1] == 24 * 24 and not any(tmp_path.iterdir())


def test_an_unwritable_folder_warns_and_does_not_fail(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")  # mkdir under a file fails even for root
    monkeypatch.setenv("TOMODIFF_CACHE", str(blocker))
    monkeypatch.setenv("TOMODIFF_CACHE_MIN_SECONDS", "0")
    g = _fan()
    with pytest.warns(RuntimeWarning, match="could not write the matrix cache"):
        A, AT = torch_backend.cached_build(g, torch.float32)
    assert _same_csr(A, torch_backend.build_matrices(g, torch.float32)[0])
    assert disk_cache.load(disk_cache.key(g, torch.float32, (0, g.n_angles))) is None


def test_bad_settings_are_one_line_errors(monkeypatch):
    monkeypatch.setenv("TOMODIFF_CACHE_MAX", "lots")
    with pytest.raises(ValueError, match="TOMODIFF_CACHE_MAX must be a number of bytes"):
        disk_cache.max_bytes()
    monkeypatch.setenv("TOMODIFF_CACHE_MAX", "500M")
    assert disk_cache.max_bytes() == 500 << 20
    monkeypatch.setenv("TOMODIFF_CACHE_MIN_SECONDS", "soon")
    with pytest.raises(ValueError, match="TOMODIFF_CACHE_MIN_SECONDS must be a number"):
        disk_cache.min_seconds()


def test_clear_removes_everything(cache):
    for k in range(2):
        torch_backend.cached_build(_fan(float(k)), torch.float32)
    total = disk_cache.total_bytes()
    assert disk_cache.clear() == (2, total) and disk_cache.entries() == []


_CHILD = """
import sys, numpy as np, torch
from tomodiff.ct import Projector, fan_beam
from tomodiff.ct.backends import torch_backend
if sys.argv[1] == "second":
    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt although the first process stored the matrix")
    torch_backend.build_matrices = refuse
g = fan_beam((24, 24), np.linspace(0, np.pi, 9), det_shape=(35,), source_distance=60.0, detector_distance=30.0,
             voxel_size=1.0, det_spacing=1.5)
x = torch.arange(576, dtype=torch.float32).reshape(1, 1, 24, 24) / 576
y = Projector(g, backend="torch")(x)
torch.save(y, sys.argv[2])
"""


def test_a_second_process_reads_the_matrix_from_the_cache(tmp_path):
    env = {**os.environ, "TOMODIFF_CACHE": str(tmp_path / "c"), "TOMODIFF_CACHE_MIN_SECONDS": "0",
           "OMP_NUM_THREADS": "1"}
    outs = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.pt"
        proc = subprocess.run([sys.executable, "-c", _CHILD, run, str(out)], env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(torch.load(out))
    assert len(list((tmp_path / "c" / "matrices").glob("*.pt"))) == 1
    assert torch.equal(outs[0], outs[1])
    # and it is the projector's result, not something the cache made up
    x = torch.arange(576, dtype=torch.float32).reshape(1, 1, 24, 24) / 576
    assert torch.allclose(outs[0], Projector(_fan(), backend="matrix_free")(x), rtol=1e-4, atol=1e-4)
