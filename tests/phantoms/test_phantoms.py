"""Phantom generators: shape, dtype, range, determinism, diversity, slices, speed."""

import time

import numpy as np
import pytest
import torch

from tomodiff import phantoms as P


@pytest.mark.parametrize("family", P.FAMILIES)
def test_shape_dtype_range(family):
    for shape in [(32, 32, 32), (20, 40, 28)]:
        v = P.generate(family, shape, seed=5)
        assert v.shape == shape and v.dtype == torch.float32
        assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
        assert float(v.max()) > 0.3, "phantom is (nearly) empty"


@pytest.mark.parametrize("family", P.FAMILIES)
def test_deterministic_by_seed(family):
    a, b = P.generate(family, (24, 24, 24), 11), P.generate(family, (24, 24, 24), 11)
    c = P.generate(family, (24, 24, 24), 12)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-3, "different seeds gave the same phantom"


@pytest.mark.parametrize("family", P.FAMILIES)
def test_slices_are_exact_slices_of_the_volume(family):
    v = P.generate(family, (32, 32, 32), 3)
    z = (torch.arange(32, dtype=torch.float32) - 15.5) / 16.0
    idx = [4, 16, 27]
    s = P.generate_slices(family, (32, 32), 3, z[idx].numpy())
    torch.testing.assert_close(s, v[idx], atol=1e-5, rtol=0)


def test_family_diversity():
    """Families differ in simple statistics: foam is mostly solid, texture has graded values,
    Shepp-Logan has its dense skull; and volumes of different families are far apart."""
    vols = {f: P.generate(f, (48, 48, 48), 1).numpy() for f in P.FAMILIES}
    for i, f in enumerate(P.FAMILIES):
        for g in P.FAMILIES[i + 1:]:
            assert np.abs(vols[f] - vols[g]).mean() > 0.03, (f, g)
    n_levels = {f: len(np.unique(np.round(v[v > 0], 3))) for f, v in vols.items()}
    assert n_levels["texture"] > 200 > n_levels["shepp_logan"]
    assert (vols["foam"] > 0).mean() > 0.3
    assert n_levels["foam"] <= 2  # material and background only


def test_unknown_family_and_bad_shape():
    with pytest.raises(ValueError, match="unknown phantom family"):
        P.generate("nope", (8, 8, 8), 0)
    with pytest.raises(ValueError, match="shape"):
        P.generate("foam", (8, 8), 0)


def test_64_cube_is_fast():
    """CPU time (not wall time: the test machines are shared) of one 64³ volume per family."""
    for f in P.FAMILIES:
        P.generate(f, (64, 64, 64), 0)  # warm-up
        t = time.process_time()
        P.generate(f, (64, 64, 64), 1)
        assert time.process_time() - t < 1.0, f"{f}: 64³ took too long"


def test_training_slices_batch():
    b = P.training_slices(6, 32, run_seed=1, step=2)
    assert b.shape == (6, 1, 32, 32) and b.dtype == torch.float32
    assert torch.equal(b, P.training_slices(6, 32, run_seed=1, step=2))
    assert not torch.equal(b, P.training_slices(6, 32, run_seed=1, step=3))


def test_thin_volume_is_the_central_slab():
    """The in-plane field of view fixes the scale: a (16, 32, 32) volume is the middle of the 32³ one."""
    full, slab = P.generate("texture", (32, 32, 32), 4), P.generate("texture", (16, 32, 32), 4)
    torch.testing.assert_close(slab, full[8:24], atol=1e-5, rtol=0)
