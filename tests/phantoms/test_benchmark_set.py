"""The benchmark set the package ships (``tomodiff.phantoms.BENCHMARK_SET``): checksums,
regeneration, seeds disjoint from training, and the same files as the checkout's ``phantoms/``."""

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import make_benchmark_set as M
from tomodiff import phantoms as P
from tomodiff.training import train as T

BENCH = P.BENCHMARK_SET
CHECKOUT = Path(__file__).resolve().parents[2] / "phantoms"  # where the generator writes the set
MANIFEST = json.loads((BENCH / "manifest.json").read_text())
ENTRIES = MANIFEST["entries"]


def test_manifest_covers_the_families_and_sizes():
    fams = {e["family"] for e in ENTRIES}
    assert set(P.FAMILIES) <= fams
    assert sum(tuple(e["shape"]) == (64, 64, 64) for e in ENTRIES) >= 8
    assert sum(tuple(e["shape"]) == (128, 128, 128) for e in ENTRIES) >= 2
    assert sum((BENCH / e["file"]).stat().st_size for e in ENTRIES) < 5e6


def test_the_checkout_copy_is_the_shipped_set():
    """phantoms/ (the generator's output, named by training runs) and the package's copy hold the same bytes."""
    names = ["manifest.json"] + [e["file"] for e in ENTRIES]
    differ = [n for n in names if (CHECKOUT / n).read_bytes() != (BENCH / n).read_bytes()]
    assert not differ, f"{differ} differ: copy phantoms/ into {BENCH} (python -m benchmarks.make_benchmark_set --ship)"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_files_match_manifest_checksums(entry):
    path = BENCH / entry["file"]
    assert M.file_sha256(path) == entry["file_sha256"]
    vol = M.load(path)
    assert vol.dtype == np.float32 and list(vol.shape) == entry["shape"]
    assert M.array_sha256(vol) == entry["sha256"]
    assert vol.min() >= 0 and vol.max() <= 1


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["generator"] not in ("real", "real_ct")][:8:3],
                         ids=lambda e: e["file"])
def test_files_are_what_the_generator_makes(entry):
    vol = M.load(BENCH / entry["file"])
    fresh = P.generate(entry["family"], entry["shape"], entry["seed"]).numpy()
    # stored = fresh rounded to QUANT, so they differ by QUANT/2 at most, plus float32 rounding in the
    # generator that differs between CPUs (measured 2e-6 on one here, at 8 of 262,144 voxels)
    np.testing.assert_allclose(vol, fresh, atol=M.QUANT / 2 + 1e-5, rtol=0)


def test_seed_ranges_are_disjoint():
    a, b = P.TRAIN_SEEDS, P.BENCHMARK_SEEDS
    assert a.stop <= b.start or b.stop <= a.start
    seeds = [e["seed"] for e in ENTRIES if e["generator"] not in ("real", "real_ct")]
    assert seeds and all(s in b for s in seeds)
    assert MANIFEST["seed_range"] == [b.start, b.stop]


@pytest.mark.parametrize("dims", [2, 3])
def test_training_draws_only_training_seeds(monkeypatch, dims):
    """Record every phantom seed the training batches use; none may be a benchmark seed."""
    seen = []
    real = P.draw_params
    monkeypatch.setattr(P, "draw_params", lambda family, seed: (seen.append(seed), real(family, seed))[1])
    cfg = T.TrainConfig(dims=dims, size=16, source_size=16, channels=(8, 16), batch=4, run_seed=123)
    for step in (0, 1, 10**6):
        T.make_batch(cfg, step)
    bench = {e["seed"] for e in ENTRIES}
    assert len(seen) >= 3
    assert all(s in P.TRAIN_SEEDS and s not in bench for s in seen)
    assert all(P.training_seed(r, s, i) in P.TRAIN_SEEDS for r in range(3) for s in range(50) for i in range(8))


REAL_CT = [e for e in ENTRIES if e["family"] == "real_ct"]


def test_real_ct_group_comes_from_held_out_volumes_only():
    assert {tuple(e["shape"]) for e in REAL_CT} == {(64, 64, 64), (128, 128, 128)}
    assert {e["parameters"]["source"].split("/")[1].split(".")[0] for e in REAL_CT} == set(M.HELD_OUT_CT)


def test_real_ct_files_are_what_the_corpus_gives(shared_data):
    name, source, factors, edge = M.REAL_CT[0]
    vol, _ = M.real_ct_volume(source, factors, edge, shared_data / M.CT_CORPUS)
    entry = next(e for e in REAL_CT if e["file"] == f"{name}.h5")
    assert M.array_sha256(vol) == entry["sha256"]
