"""The matrix-free projector: same numbers as the cached matrix, batching, auto choice, limits.

Dot tests, autograd, batching over (B, C) and gradcheck run in the operator suite
(tests/operator_cases.py, the ``*-matrix_free`` cases); cross-checks against exact line integrals,
skimage and ASTRA are parametrised over both torch backends in test_projector.py and
test_astra_backend.py.
"""

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, available_backends, cone_beam, fan_beam, parallel_beam
from tomodiff.ct.backends import matrix_free_backend, torch_backend
from tomodiff.ct.backends.matrix_cache import CACHE, DEFAULT_LIMIT
from tomodiff.operators import dot_test


def _angles(n, full=False):
    return np.linspace(0, (2 if full else 1) * np.pi, n, endpoint=False)


GEOMETRIES = {
    "parallel2d": lambda: parallel_beam((20, 17), _angles(9), det_shape=30, det_spacing=0.8, center_offset=1.5),
    "fan": lambda: fan_beam((18, 20), _angles(9, full=True), 40, 40.0, 20.0, voxel_size=0.9, center_offset=-1.0),
    "parallel3d-rows": lambda: parallel_beam((5, 14, 12), _angles(7), det_shape=(7, 20), det_spacing=0.7),
    # a short source distance and a tall detector: some rays are steepest along z
    "cone-steep": lambda: cone_beam((12, 10, 11), _angles(6, full=True), (40, 16), 12.0, 12.0, center_offset=0.5),
}


@pytest.mark.parametrize("name", GEOMETRIES)
def test_equals_the_cached_matrix(name, rel):
    g = GEOMETRIES[name]()
    M, F = Projector(g, "torch"), Projector(g, "matrix_free")
    assert F.backend == "matrix_free" and F.matched and F.kernel == "joseph"
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, *g.volume_shape, dtype=torch.float64, generator=gen)
    y = torch.rand(2, 1, *g.sino_shape, dtype=torch.float64, generator=gen)
    assert rel(F(x), M(x)) < 1e-12  # measured ~1e-15: the same weights, summed in another order
    assert rel(F.T(y), M.T(y)) < 1e-12
    assert rel(F(x.float()), M(x.float())) < 1e-5  # float32 sample positions: measured ~1e-6
    assert dot_test(F, batch=(2, 1)) < 1e-12


def test_cone_steep_really_has_rays_dominant_along_z():
    g = GEOMETRIES["cone-steep"]()
    _, u = matrix_free_backend._index_rays(g, 0, g.n_angles)
    assert set(u.abs().argmax(dim=1).tolist()) == {0, 1, 2}


@pytest.mark.parametrize("name", ["fan", "cone-steep"])
def test_batches_of_one_angle_give_the_same_result(name, monkeypatch):
    g = GEOMETRIES[name]()
    F = Projector(g, "matrix_free")
    x = torch.rand(1, 2, *g.volume_shape, dtype=torch.float64)
    y = torch.rand(1, 2, *g.sino_shape, dtype=torch.float64)
    ref_fwd, ref_adj = F(x), F.T(y)
    monkeypatch.setattr(matrix_free_backend, "SAMPLES_PER_BATCH", {"cpu": (1, 1)})
    assert len(list(F._kernel._batches("cpu", torch.float64, 2))) >= g.n_angles
    torch.testing.assert_close(F(x), ref_fwd, rtol=0, atol=1e-12)
    torch.testing.assert_close(F.T(y), ref_adj, rtol=0, atol=1e-12)


def test_half_precision_keeps_its_dtype():
    g = parallel_beam((12, 12), _angles(6))
    F = Projector(g, "matrix_free")
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    y = F(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    assert ((y.double() - F(x)).norm() / F(x).norm()).item() < 1e-2


def test_stores_nothing_between_calls():
    CACHE.clear()
    g = cone_beam((6, 10, 10), _angles(5, full=True), (8, 14), 30.0, 15.0)
    F = Projector(g, "matrix_free")
    F.T(F(torch.rand(1, 1, *g.volume_shape)))
    assert CACHE.nbytes == 0 and not vars(F._kernel).keys() - {"geometry", "_plane", "_z_interp"}


def test_auto_picks_by_the_matrix_memory_budget():
    small = parallel_beam((16, 16), _angles(8))
    # where the matrix does not fit, parallel beam on the CPU goes to ASTRA's CPU Joseph projector when
    # astra is importable (test_astra_cpu.py), everything else to the matrix-free one
    no_matrix = "astra" if available_backends()["astra"] else "matrix_free"
    assert Projector(small).backend == "torch"
    assert Projector(small, memory_budget=0).backend == no_matrix
    bound = torch_backend.matrix_bytes(small)
    assert Projector(small, memory_budget=bound).backend == "torch"
    assert Projector(small, memory_budget=bound - 1).backend == no_matrix
    # the bound is an upper bound: the built matrices are smaller
    A, AT = torch_backend.build_matrices(small, torch.float32)
    built = sum(t.col_indices().numel() * 4 + t.values().numel() * 4 + t.crow_indices().numel() * 4 for t in (A, AT))
    assert 0.5 * bound < built <= bound
    # real sizes choose a projector without a matrix under the default 2 GiB: the APS tooth scan at its
    # native size and cone beam at 128^3 / 180 views (nothing is built to decide)
    tooth = parallel_beam((2, 640, 640), np.radians(np.linspace(0, 179.0055, 181)), det_shape=(2, 640))
    cone = cone_beam((128,) * 3, _angles(180, full=True), (128, 192), 384.0, 192.0, det_spacing=1.5)
    for g, backend in ((tooth, no_matrix), (cone, "matrix_free")):
        assert torch_backend.matrix_bytes(g) > DEFAULT_LIMIT
        assert Projector(g).backend == backend
    with pytest.raises(ValueError, match="memory_budget must be a number of bytes >= 0, got -1"):
        Projector(small, memory_budget=-1)
    with pytest.raises(ValueError, match="backend 'matrix_free' takes no kernel option"):
        Projector(small, "matrix_free", kernel="strip")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_matrix_free_on_cuda_matches_cpu(rel):
    for name in ("parallel3d-rows", "cone-steep"):
        F = Projector(GEOMETRIES[name](), "matrix_free")
        x = torch.rand(2, 1, *F.domain_shape)
        y = torch.rand(2, 1, *F.range_shape)
        assert rel(F(x.cuda()).cpu(), F(x)) < 1e-5
        assert rel(F.T(y.cuda()).cpu(), F.T(y)) < 1e-5
        assert dot_test(F, device="cuda") < 1e-10
