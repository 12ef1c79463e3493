"""ASTRA backend: torch vs ASTRA's CPU projectors, ASTRA's own adjointness, the no-GPU guard."""

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, available_backends, cone_beam, fan_beam, parallel_beam, to_astra
from tomodiff.operators import dot_test

astra = pytest.importorskip("astra")
HAS_ASTRA_CUDA = available_backends()["astra_cuda"]
needs_astra_cuda = pytest.mark.skipif(not (HAS_ASTRA_CUDA and torch.cuda.is_available()),
                                      reason="needs a CUDA GPU usable by ASTRA")


def _angles(n, full=False):
    return np.linspace(0, (2 if full else 1) * np.pi, n, endpoint=False)


@pytest.mark.parametrize("backend", ["torch", "matrix_free"])
@pytest.mark.parametrize("offset", [0.0, 2.5])
def test_torch_equals_astra_linear_parallel_2d(blobs, rel, offset, backend):
    # Same discretisation (Joseph): they agree to float32 rounding, edges and offset included.
    g = parallel_beam((48, 40), _angles(20), det_shape=70, det_spacing=0.8, voxel_size=0.9, center_offset=offset)
    x = blobs.volume(g.volume_shape, 0.9)[None, None] + 0.1 * torch.rand(1, 1, 48, 40, dtype=torch.float64)
    ya = Projector(g, "astra")(x)
    assert rel(Projector(g, backend)(x), ya) < 1e-5  # measured ~2e-6 (float32 in ASTRA)
    y = torch.rand(1, 1, *g.sino_shape, dtype=torch.float64)
    assert rel(Projector(g, backend).T(y), Projector(g, "astra").T(y)) < 1e-5


@pytest.mark.parametrize("backend", ["torch", "matrix_free"])
@pytest.mark.parametrize("kernel, tol", [("line", 1e-2), ("strip", 1e-2)])
def test_torch_agrees_with_astra_fan_2d(blobs, rel, kernel, tol, backend):
    # ASTRA has no CPU Joseph fan projector; 'line' (intersection lengths) and 'strip' (areas) are
    # other discretisations of the same line integrals: measured 0.65% and 0.26% on this phantom.
    g = fan_beam((65, 65), _angles(40, full=True), 100, 150.0, 100.0)
    x = blobs.volume(g.volume_shape)[None, None]
    assert rel(Projector(g, backend)(x), Projector(g, "astra", kernel=kernel)(x)) < tol


def test_torch_agrees_with_astra_fan_2d_with_offset(blobs, rel):
    g = fan_beam((65, 65), _angles(40, full=True), 100, 150.0, 100.0, voxel_size=0.8, center_offset=-3.0)
    x = blobs.volume(g.volume_shape, 0.8)[None, None]
    assert rel(Projector(g, "torch")(x), Projector(g, "astra", kernel="line")(x)) < 1e-2


@pytest.mark.parametrize("make, kernel", [
    (lambda: parallel_beam((12, 10), _angles(6), center_offset=0.5), "linear"),
    (lambda: parallel_beam((12, 10), _angles(6)), "line"),
    (lambda: parallel_beam((12, 10), _angles(6)), "strip"),
    (lambda: fan_beam((12, 10), _angles(7, full=True), 20, 30.0, 10.0, center_offset=0.5), "line"),
    (lambda: fan_beam((12, 10), _angles(7, full=True), 20, 30.0, 10.0), "strip"),
])
def test_astra_cpu_operators_are_matched_batched_and_differentiable(make, kernel):
    A = Projector(make(), "astra", kernel=kernel)
    assert A.backend == "astra" and A.kernel == kernel and A.matched
    assert dot_test(A, batch=(2, 2)) < 1e-6  # exact transposes, computed in float32
    x = torch.rand(2, 3, *A.domain_shape, dtype=torch.float64, requires_grad=True)
    y = A(x)
    torch.testing.assert_close(y[1:, 2:], A(x[1:, 2:].detach()))
    g = torch.rand_like(y)
    (y * g).sum().backward()
    torch.testing.assert_close(x.grad, A.adjoint(g))


def test_astra_kernel_choices_are_checked():
    with pytest.raises(ValueError, match="no CPU linear/Joseph fan-beam projector"):
        Projector(fan_beam((8, 8), [0.0], 12, 30.0, 10.0), "astra", kernel="linear")
    with pytest.raises(ValueError, match=r"kernels for parallel beam are \['line', 'linear', 'strip'\], got 'cuda'"):
        Projector(parallel_beam((8, 8), [0.0]), "astra", kernel="cuda")
    with pytest.raises(ValueError, match="'strip' projectors do not support a detector shift"):
        Projector(parallel_beam((8, 8), [0.0], center_offset=1.0), "astra", kernel="strip")


@pytest.mark.skipif(HAS_ASTRA_CUDA, reason="checks the no-GPU guard")
@pytest.mark.parametrize("make, kernel", [(lambda: parallel_beam((4, 8, 8), [0.0, 1.0]), "cuda3d"),
                                          (lambda: cone_beam((4, 8, 8), [0.0, 1.0], (4, 12), 30.0, 10.0), None)])
def test_astra_3d_without_cuda_raises_instead_of_crashing(make, kernel):
    # (3D parallel beam with the default kernel runs ASTRA's CPU 2D projector per slice: test_astra_cpu.py)
    with pytest.raises(RuntimeError, match=r"need a CUDA GPU, but astra.use_cuda\(\) is False.*backend='torch'"):
        Projector(make(), "astra", kernel=kernel)
    assert Projector(make(), device="cuda").backend == "torch"  # auto falls back


def test_to_astra_builds_3d_vector_geometries_without_a_gpu():
    g = cone_beam((4, 8, 6), _angles(5, full=True), (3, 10), 30.0, 10.0, voxel_size=0.5, center_offset=1.0)
    vol, proj = to_astra(g)
    assert proj["type"] == "cone_vec" and proj["Vectors"].shape == (5, 12)
    assert (proj["DetectorRowCount"], proj["DetectorColCount"]) == (3, 10)
    assert (vol["GridSliceCount"], vol["GridRowCount"], vol["GridColCount"]) == (4, 8, 6)
    assert vol["option"]["WindowMaxX"] == 1.5 and vol["option"]["WindowMaxZ"] == 1.0
    _, proj = to_astra(parallel_beam((2, 4, 4), [0.0, 0.5]))
    assert proj["type"] == "parallel3d_vec" and proj["Vectors"].shape == (2, 12)
    _, proj = to_astra(fan_beam((8, 8), [0.0], 12, 30.0, 10.0))
    assert proj["type"] == "fanflat"


@pytest.mark.gpu
@needs_astra_cuda
@pytest.mark.parametrize("make", [lambda: parallel_beam((16, 32, 32), _angles(20), det_shape=(16, 48)),
                                  lambda: cone_beam((16, 32, 32), _angles(20, full=True), (24, 64), 100.0, 50.0)])
def test_astra_cuda_3d_dot_test_and_agreement_with_torch(make, blobs, rel):
    # Not run in this session (no GPU): the y-mirror in to_astra's 3D vectors is checked here.
    g = make()
    A = Projector(g, "astra")
    assert A.backend == "astra" and not A.matched
    assert dot_test(A, dtype=torch.float32, device="cuda") < 0.1  # ASTRA's own tolerance
    x = blobs.volume(g.volume_shape)[None, None].float().cuda()
    assert rel(A(x), Projector(g, "torch")(x)) < 2e-2
    assert Projector(g, device="cuda").backend == "astra"

