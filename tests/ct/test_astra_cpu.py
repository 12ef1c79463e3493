"""ASTRA's CPU projectors as ``auto``'s choice where the Joseph matrix does not fit (issue 22 item 4).

``auto`` on the CPU: the cached matrix where it fits the budget; otherwise, for parallel beam (2D, or
3D per z-slice), ASTRA's CPU ``linear`` kernel, which is Joseph's discretisation (exact adjoint,
float32 arithmetic); fan beam stays Joseph (matrix-free), since ASTRA's CPU fan kernels are other
discretisations. Speed and memory: benchmarks/results/projector_startup.md.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, available_backends, cone_beam, fan_beam, parallel_beam
from tomodiff.operators import dot_test

pytest.importorskip("astra")
HAS_ASTRA_CUDA = available_backends()["astra_cuda"]


def _angles(n, full=False):
    return np.linspace(0, (2 if full else 1) * np.pi, n, endpoint=False)


TOOTH = dict(volume_shape=(2, 640, 640), angles=np.radians(np.linspace(0, 179.0055, 181)), det_shape=(2, 640),
             center_offset=-23.5)


def test_auto_picks_astra_linear_for_parallel_beam_only_where_the_matrix_does_not_fit():
    small = parallel_beam((3, 16, 16), _angles(8), center_offset=0.5)
    assert Projector(small).backend == "torch"  # the matrix fits: fastest per call, cached on disk
    A = Projector(small, memory_budget=0)
    assert (A.backend, A.kernel, A.matched) == ("astra", "linear", True)
    two_d = Projector(parallel_beam((16, 16), _angles(8)), memory_budget=0)
    assert (two_d.backend, two_d.kernel) == ("astra", "linear")
    tooth = Projector(parallel_beam(**TOOTH))  # the APS tooth under the default 2 GiB budget
    assert (tooth.backend, tooth.kernel) == ("astra", "linear")
    # fan beam: ASTRA has no CPU Joseph fan projector, so auto stays Joseph
    fan = Projector(fan_beam((16, 16), _angles(8, full=True), 24, 40.0, 20.0), memory_budget=0)
    assert fan.backend == "matrix_free"
    cone = Projector(cone_beam((4, 8, 8), _angles(4, full=True), (4, 12), 30.0, 10.0), memory_budget=0)
    assert cone.backend == "matrix_free"
    if not HAS_ASTRA_CUDA:  # a CUDA device never gets the CPU projector (it would copy every call)
        assert Projector(small, device="cuda", memory_budget=0).backend == "matrix_free"


@pytest.mark.parametrize("make", [
    lambda: parallel_beam((3, 30, 28), _angles(11), det_shape=(3, 40), center_offset=0.3),
    # rows != slices and det_spacing != voxel_size: the slice -> row interpolation is exercised
    lambda: parallel_beam((4, 21, 19), _angles(9), det_shape=(6, 33), det_spacing=0.7, center_offset=-1.2),
])
def test_astra_per_slice_3d_parallel_equals_joseph(make, rel):
    g = make()
    A, J = Projector(g, "astra", kernel="linear"), Projector(g, "torch")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, *g.volume_shape, dtype=torch.float64, generator=gen)
    y = torch.rand(2, 3, *g.sino_shape, dtype=torch.float64, generator=gen)
    assert rel(A(x), J(x)) < 1e-5  # measured ~1e-6: ASTRA's float32 arithmetic
    assert rel(A.T(y), J.T(y)) < 1e-5
    assert A(x).dtype == torch.float64
    torch.testing.assert_close(A(x[1:, 2:]), A(x)[1:, 2:])  # batching


@pytest.mark.parametrize("make", [
    lambda: parallel_beam((3, 12, 10), _angles(6), center_offset=0.5),
    lambda: parallel_beam((4, 12, 10), _angles(6), det_shape=(5, 18), det_spacing=0.8),
    lambda: parallel_beam((12, 10), _angles(6), det_shape=17, center_offset=-0.5),
])
def test_astra_cpu_dot_test_is_at_float32_rounding(make):
    A = Projector(make(), memory_budget=0)
    assert A.backend == "astra" and A.matched
    assert dot_test(A, dtype=torch.float32, batch=(2, 2)) < 1e-6
    assert dot_test(A, dtype=torch.float64, batch=(2, 2)) < 1e-6  # computed in float32 all the same
    x = torch.rand(1, 2, *A.domain_shape, dtype=torch.float64, requires_grad=True)
    g = torch.rand_like(A(x))
    (A(x) * g).sum().backward()
    torch.testing.assert_close(x.grad, A.adjoint(g))


def test_explicit_astra_3d_kernels():
    g = parallel_beam((2, 8, 8), _angles(3))
    if not HAS_ASTRA_CUDA:
        assert Projector(g, "astra").kernel == "linear"  # no GPU: the CPU slices, never ASTRA 3D
        with pytest.raises(RuntimeError, match=r"need a CUDA GPU, but astra.use_cuda\(\) is False"):
            Projector(g, "astra", kernel="cuda3d")
    assert Projector(g, "astra", kernel="strip").kernel == "strip"
    with pytest.raises(ValueError, match="cone beam supports only kernel 'cuda3d'"):
        Projector(cone_beam((2, 8, 8), [0.0], (2, 12), 30.0, 10.0), "astra", kernel="linear")


def test_slabs_and_column_weights_keep_the_astra_kernel(rel):
    from tomodiff.recon.engine import TensorSource
    from tomodiff.recon.fbp import z_column_weights

    g = parallel_beam((4, 12, 12), _angles(5), det_shape=(6, 20), det_spacing=0.8)
    A = Projector(g, memory_budget=0)
    assert rel(z_column_weights(A, g), z_column_weights(Projector(g, "torch"), g)) < 1e-5
    g1 = parallel_beam((4, 12, 12), _angles(5))
    one = TensorSource(Projector(g1, memory_budget=0), torch.zeros(1, 1, *g1.sino_shape), split=True).slab(1, 3)[0]
    assert (one.backend, one.kernel, one.geometry.volume_shape) == ("astra", "linear", (2, 12, 12))


def test_sirt_with_auto_astra_matches_joseph(rel):
    from tomodiff.recon import reconstruct

    g = parallel_beam((2, 32, 32), _angles(24), center_offset=1.5)
    x = torch.zeros(1, 1, *g.volume_shape)
    x[..., 8:24, 10:20] = 1.0
    y = Projector(g, "torch")(x)
    a = reconstruct(Projector(g, memory_budget=0), y, method="sirt", n_iter=30, progress=False)
    b = reconstruct(Projector(g, "matrix_free"), y, method="sirt", n_iter=30, progress=False)
    assert rel(a.mean, b.mean) < 1e-4


def test_choosing_astra_imports_nothing_until_it_projects():
    code = ("import json, sys, numpy as np; from tomodiff.ct import Projector, parallel_beam; "
            f"g = parallel_beam((2, 640, 640), np.radians(np.linspace(0, 179.0055, 181)), det_shape=(2, 640)); "
            "A = Projector(g); print(json.dumps([A.backend, A.kernel, 'astra' in sys.modules]))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out) == ["astra", "linear", False]
