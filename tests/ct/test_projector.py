"""The torch projector: accuracy against exact line integrals and skimage, world units, limits.

Dot tests, autograd, batching and gradcheck for every geometry run in the operator suite
(tests/operator_cases.py); these tests check that the numbers are the right line integrals.
"""

import warnings

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, cone_beam, fan_beam, parallel_beam
from tomodiff.ct.backends import torch_backend
from tomodiff.ct.backends.matrix_cache import CACHE
from tomodiff.operators import dot_test


def _angles(n, full=False):
    return np.linspace(0, (2 if full else 1) * np.pi, n, endpoint=False)


TORCH_BACKENDS = ["torch", "matrix_free"]


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_parallel_matches_exact_line_integrals(blobs, rel, backend):
    # Gaussians have closed-form projections: this checks weights, units, axes and angle sign.
    g = parallel_beam((64, 64), _angles(24), det_shape=70, det_spacing=0.9, center_offset=2.5)
    y = Projector(g, backend)(blobs.volume(g.volume_shape)[None, None])[0, 0]
    # measured 2.6e-3: Joseph's linear interpolation of a sampled 2.5-voxel-wide Gaussian
    assert rel(y, blobs.parallel_sinogram(g)) < 5e-3


def test_line_integrals_are_in_world_units(blobs, rel):
    # Halving the voxel size and doubling the shape images the same object: same sinogram.
    angles = _angles(20)
    coarse = parallel_beam((3, 48, 48), angles, det_shape=(3, 60), voxel_size=1.0, det_spacing=1.0)
    fine = parallel_beam((6, 96, 96), angles, det_shape=(3, 60), voxel_size=0.5, det_spacing=1.0)
    y_coarse = Projector(coarse, "torch")(blobs.volume(coarse.volume_shape, 1.0)[None, None])
    y_fine = Projector(fine, "torch")(blobs.volume(fine.volume_shape, 0.5)[None, None])
    assert rel(y_fine, y_coarse) < 2e-3  # a voxel-size bug would be a factor 2 (100%)
    # the same in cone beam, where the magnification also enters
    # (the volume is tall enough for the blobs to vanish at its z faces: truncation there would
    # be discretised differently on the two grids)
    kw = dict(angles=_angles(12, full=True), det_shape=(24, 60), source_distance=120.0, detector_distance=60.0)
    c_coarse = cone_beam((24, 40, 40), voxel_size=1.0, det_spacing=1.5, **kw)
    c_fine = cone_beam((48, 80, 80), voxel_size=0.5, det_spacing=1.5, **kw)
    y_coarse = Projector(c_coarse, "torch")(blobs.volume(c_coarse.volume_shape, 1.0)[None, None])
    y_fine = Projector(c_fine, "torch")(blobs.volume(c_fine.volume_shape, 0.5)[None, None])
    assert rel(y_fine, y_coarse) < 5e-3


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_parallel_agrees_with_skimage_radon(blobs, rel, backend):
    skimage = pytest.importorskip("skimage.transform")
    # skimage rotates about pixel N//2 (odd N makes that our centre (N-1)/2), takes degrees, returns
    # (U, A), and with circle=True its detector has N pixels of the pixel size; its angle runs the
    # same way as ours (checked: -θ or a flipped detector give 25-60% errors).
    n = 65
    g = parallel_beam((n, n), _angles(30), det_shape=n)
    img = blobs.volume(g.volume_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the Gaussians' tails reach the corners
        ref = skimage.radon(img.numpy(), theta=np.degrees(g.angles), circle=True).T
    y = Projector(g, backend)(img[None, None])[0, 0]
    assert rel(y, torch.from_numpy(ref)) < 3e-3  # measured 1.0e-3: bilinear rotation vs Joseph


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_cone_tends_to_parallel_3d_at_large_source_distance(blobs, rel, backend):
    vol = blobs.volume((10, 40, 40))[None, None]
    angles, det = _angles(16, full=True), (10, 58)
    par = Projector(parallel_beam((10, 40, 40), angles, det_shape=det), backend)(vol)
    near = Projector(cone_beam((10, 40, 40), angles, det, 80.0, 0.0), backend)(vol)
    far = Projector(cone_beam((10, 40, 40), angles, det, 1e6, 0.0), backend)(vol)
    assert rel(far, par) < 1e-4
    assert rel(near, par) > 1e-2  # the test can tell a cone from parallel rays


def test_fan_tends_to_parallel_2d_at_large_source_distance(blobs, rel):
    img = blobs.volume((40, 40))[None, None]
    angles = _angles(16, full=True)
    par = Projector(parallel_beam((40, 40), angles, det_shape=58, center_offset=1.5), "torch")(img)
    far = Projector(fan_beam((40, 40), angles, 58, 1e6, 0.0, center_offset=1.5), "torch")(img)
    assert rel(far, par) < 1e-4


def test_parallel_3d_is_the_slice_projector_on_each_slice(blobs):
    g3 = parallel_beam((5, 20, 16), _angles(9), center_offset=-0.5)
    g2 = parallel_beam((20, 16), _angles(9), det_shape=g3.det_shape[1], center_offset=-0.5)
    vol = torch.randn(2, 1, *g3.volume_shape, dtype=torch.float64)
    y3 = Projector(g3, "torch")(vol)
    y2 = Projector(g2, "torch")(vol.transpose(1, 2).reshape(10, 1, 20, 16))
    torch.testing.assert_close(y3, y2.reshape(2, 5, 1, 9, -1).permute(0, 2, 3, 1, 4), rtol=0, atol=1e-12)


def test_factored_parallel_3d_equals_the_full_3d_joseph_matrix():
    # rows != slices and det_spacing != voxel_size: the slice->row interpolation is exercised.
    g = parallel_beam((4, 9, 7), _angles(5), det_shape=(6, 13), det_spacing=0.7, center_offset=0.4)
    A3, _ = torch_backend.build_matrices(g)
    x = torch.randn(1, 1, *g.volume_shape, dtype=torch.float64)
    torch.testing.assert_close(Projector(g, "torch")(x).flatten(), A3 @ x.flatten(), rtol=0, atol=1e-12)


def test_cone_angle_blocks_and_uncached_rebuilds_give_the_same_result(monkeypatch):
    g = cone_beam((6, 12, 10), _angles(7, full=True), (8, 16), 30.0, 15.0, center_offset=0.3)
    x = torch.randn(2, 1, *g.volume_shape, dtype=torch.float64)
    y = torch.randn(2, 1, *g.sino_shape, dtype=torch.float64)
    one_block = Projector(g, "torch")
    ref_fwd, ref_adj = one_block.forward(x), one_block.adjoint(y)
    monkeypatch.setattr(torch_backend, "_CONE_BLOCK_ENTRIES", 1)  # one angle per block
    monkeypatch.setattr(CACHE, "limit_bytes", 0)  # nothing cached: rebuilt per call
    CACHE.clear()
    blocked = Projector(g, "torch")
    assert len(blocked._kernel._cone_blocks()) == 7
    with pytest.warns(RuntimeWarning, match="does not fit the matrix cache"):
        torch.testing.assert_close(blocked.forward(x), ref_fwd, rtol=0, atol=1e-12)
    torch.testing.assert_close(blocked.adjoint(y), ref_adj, rtol=0, atol=1e-12)
    assert CACHE.nbytes == 0
    assert dot_test(blocked) < 1e-12


def test_matrices_are_cached_per_geometry_dtype_device():
    g = parallel_beam((12, 12), _angles(5))
    CACHE.clear()
    A = Projector(g, "torch")
    A.forward(torch.zeros(1, 1, 12, 12))
    n = len(CACHE._items)
    Projector(g, "torch").forward(torch.zeros(1, 1, 12, 12))  # equal geometry: reused
    assert len(CACHE._items) == n == 1
    A.forward(torch.zeros(1, 1, 12, 12, dtype=torch.float64))
    assert len(CACHE._items) == 2


def test_float32_and_half_inputs_keep_their_dtype():
    g = parallel_beam((8, 8), _angles(4))
    A = Projector(g, "torch")
    x64 = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 1e-2)):
        y = A(x64.to(dtype))
        assert y.dtype == dtype
        assert ((y.double() - A(x64)).norm() / A(x64).norm()).item() < tol


def test_auto_backend_is_torch_without_astra_cuda():
    from tomodiff.ct import available_backends
    g = parallel_beam((4, 8, 8), _angles(3))
    assert Projector(g).backend == "torch"
    if not available_backends()["astra_cuda"]:
        assert Projector(g, device="cuda").backend == "torch"
    assert Projector(g).matched and "backend='torch'" in repr(Projector(g))


def test_bad_inputs_raise_clear_errors():
    g = parallel_beam((4, 8, 8), _angles(3))
    A = Projector(g, "torch")
    with pytest.raises(ValueError, match=r"must have shape \(B, C, 4, 8, 8\), got \(1, 1, 4, 8, 9\)"):
        A(torch.zeros(1, 1, 4, 8, 9))
    with pytest.raises(ValueError, match=r"must have 5 dims"):
        A(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match=r"measurement must have shape \(B, C, 3, 4, 12\)"):
        A.adjoint(torch.zeros(1, 1, 3, 4, 11))
    with pytest.raises(ValueError, match=r"unknown projector backend 'tigre'; expected 'auto' or one of "
                                         r"\('torch', 'matrix_free', 'astra'\)"):
        Projector(g, "tigre")
    with pytest.raises(ValueError, match="takes no kernel option"):
        Projector(g, "torch", kernel="strip")
    with pytest.raises(TypeError, match="must be a tomodiff.ct.Geometry"):
        Projector({"kind": "parallel"})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_backend_on_cuda_matches_cpu(rel):
    for g in (parallel_beam((6, 32, 32), _angles(10)),
              cone_beam((6, 32, 32), _angles(10, full=True), (8, 48), 80.0, 40.0)):
        A = Projector(g, "torch")
        x = torch.rand(2, 1, *g.volume_shape)
        y = torch.rand(2, 1, *g.sino_shape)
        assert rel(A(x.cuda()).cpu(), A(x)) < 1e-5
        assert rel(A.T(y.cuda()).cpu(), A.T(y)) < 1e-5
        assert dot_test(A, device="cuda") < 1e-12


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_projection_ignores_an_enclosing_autocast(backend, rel):
    # a bf16 autocast around a sampler must not reach the projector (sparse products have no bf16
    # kernel; line integrals need fp32): results equal those outside autocast
    g = parallel_beam((3, 10, 10), _angles(6))
    A = Projector(g, backend)
    x = torch.rand(1, 1, *g.volume_shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, back = A(x), A.T(torch.ones(1, 1, *g.sino_shape))
    assert y.dtype == torch.float32 and rel(y, A(x)) == 0.0
    assert rel(back, A.T(torch.ones(1, 1, *g.sino_shape))) == 0.0
