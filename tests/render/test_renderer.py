"""EmissionAbsorption: the X-ray projection at zero absorption, Beer–Lambert at zero emission, exact
gradients, a closed-form uniform slab, and a backward pass whose memory does not grow with the march."""

import math

import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.operators import BeerLambert
from tomodiff.render import EmissionAbsorption, orbit

ANGLES = [0.0, 0.3, math.pi / 4, 1.0, 2.0, 3.5, 5.0]  # π/4: the dominant-axis tie


def _rand(*shape, dtype=torch.float64, seed=0):
    return torch.rand(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("backend", ["torch", "matrix_free"])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("grid", [
    {"volume_shape": (6, 7, 8)},                                                         # rows are slices
    {"volume_shape": (6, 7, 8), "det_shape": (9, 13), "voxel_size": 0.7, "det_spacing": 0.55},    # rows between slices
])
def test_zero_absorption_is_the_parallel_beam_projection(backend, dtype, tol, grid):
    g = parallel_beam(grid["volume_shape"], ANGLES, det_shape=grid.get("det_shape"),
                      voxel_size=grid.get("voxel_size", 1.0), det_spacing=grid.get("det_spacing", 1.0))
    R = EmissionAbsorption(g.volume_shape, orbit(ANGLES, image_shape=g.det_shape, pixel_size=g.det_spacing),
                           voxel_size=g.voxel_size)
    e = _rand(2, 1, *g.volume_shape, dtype=dtype)
    out = R(torch.cat([e, torch.zeros_like(e)], 1))
    expected = Projector(g, backend=backend)(e)
    assert out.shape == expected.shape == (2, 1, *g.sino_shape) and out.dtype == dtype
    assert _rel(out, expected) < tol


def test_default_cameras_see_what_the_default_detector_sees():
    shape = (4, 5, 6)
    g = parallel_beam(shape, ANGLES)
    R = EmissionAbsorption(shape, orbit(ANGLES))
    assert R.range_shape == g.sino_shape
    e = _rand(1, 1, *shape)
    assert _rel(R(torch.cat([e, 0 * e], 1)), Projector(g, backend="torch")(e)) < 1e-12


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_zero_emission_with_back_light_is_beer_lambert(dtype, tol):
    shape = (5, 6, 7)
    g = parallel_beam(shape, ANGLES)
    R = EmissionAbsorption(shape, orbit(ANGLES), background=250.0)
    k = 0.4 * _rand(2, 1, *shape, dtype=dtype, seed=1)
    out = R(torch.cat([torch.zeros_like(k), k], 1))
    assert _rel(out, BeerLambert(Projector(g, backend="torch"), 250.0)(k)) < tol


@pytest.mark.parametrize("cameras", [
    orbit([0.2, 2.0, 4.0], elevation=[0.3, -0.5, 0.9], image_shape=(4, 5), pixel_size=1.1),
    orbit([0.2, 4.0], elevation=0.6, kind="pinhole", distance=12.0, image_shape=(5, 4)),
], ids=["orthographic", "pinhole"])
def test_gradcheck_float64(cameras):
    shape = (3, 4, 5)
    R = EmissionAbsorption(shape, cameras, background=0.7, samples_per_chunk=40)  # several chunks, checkpointed
    x = (0.8 * _rand(1, 2, *shape)).requires_grad_(True)
    assert torch.autograd.gradcheck(R, (x,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("cameras", [
    orbit([0.0, math.pi / 2, math.pi / 4, 3 * math.pi / 4], image_shape=(9, 13)),
    orbit([0.0], elevation=0.3, image_shape=(9, 13)),
    orbit([0.0], kind="pinhole", distance=40.0, image_shape=(9, 13)),
], ids=["orthographic", "elevated", "pinhole"])
def test_uniform_slab_has_the_closed_form_radiance(cameras):
    """A uniform cube: the central ray crosses it all, chord L, and receives b·e^−κL + e/κ·(1 − e^−κL)."""
    n, voxel, e, kappa, b = 9, 0.5, 1.7, 0.9, 0.6
    R = EmissionAbsorption((n, n, n), cameras, voxel_size=voxel, background=b)
    x = torch.stack([torch.full((n, n, n), e, dtype=torch.float64), torch.full((n, n, n), kappa, dtype=torch.float64)])[None]
    out = R(x)[0, 0, :, n // 2, 6]  # the pixel whose ray passes through the origin
    for a, (th, el) in enumerate(zip(R.cameras.angles, R.cameras.elevations)):
        d = [-math.sin(th) * math.cos(el), math.cos(th) * math.cos(el), math.sin(el)]
        L = n * voxel / max(map(abs, d))  # through the faces of the dominant axis
        expected = b * math.exp(-kappa * L) + e / kappa * (1 - math.exp(-kappa * L))
        assert abs(out[a].item() - expected) < 1e-10 * expected


def test_chunked_checkpointed_backward_equals_the_plain_one_and_stores_far_less():
    shape, angles = (16, 16, 16), torch.linspace(0, 2 * math.pi, 7)[:-1]
    cams = orbit(angles, elevation=0.4)
    x = _rand(1, 2, *shape).requires_grad_(True)
    w = _rand(1, 1, *EmissionAbsorption(shape, cams).range_shape, seed=3)  # a fixed weighting of the images

    def run(**kw):
        R = EmissionAbsorption(shape, cams, background=0.5, **kw)
        # the rays the renderer holds anyway (O(rays), allocated once) are not the pass's memory
        owned = {t.untyped_storage().data_ptr() for g in R._groups for t in (g.p, g.u)}
        owned.add(R._to_image.untyped_storage().data_ptr())
        storages = {}

        def pack(t):  # bytes kept for backward, each storage counted once
            if t.untyped_storage().data_ptr() not in owned:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = R(x)
        (grad,) = torch.autograd.grad((out * w).sum(), x)
        return out.detach(), grad, sum(storages.values())

    out_plain, grad_plain, saved_plain = run(checkpoint=False, samples_per_chunk=1 << 30)  # one chunk per group
    out_ck, grad_ck, saved_ck = run(checkpoint=True, samples_per_chunk=500)  # hundreds of chunks
    torch.testing.assert_close(out_ck, out_plain, rtol=1e-13, atol=0)
    torch.testing.assert_close(grad_ck, grad_plain, rtol=1e-12, atol=1e-14)
    volume_bytes, image_bytes = x.numel() * 8, out_plain.numel() * 8
    assert saved_ck <= 3 * volume_bytes + image_bytes  # at most one plane layout per axis (+ chunk images)
    assert saved_plain > 5 * saved_ck  # the plain path keeps every sample


def test_no_grad_needed_means_no_checkpoint_and_the_same_images():
    shape = (5, 6, 7)
    x = _rand(2, 2, *shape)
    cams = orbit(ANGLES, elevation=0.2)
    a = EmissionAbsorption(shape, cams, samples_per_chunk=11)(x)
    b = EmissionAbsorption(shape, cams, checkpoint=False)(x)
    torch.testing.assert_close(a, b, rtol=1e-13, atol=0)


def test_batch_items_are_independent_and_half_precision_is_computed_in_float32():
    shape = (4, 5, 6)
    R = EmissionAbsorption(shape, orbit(ANGLES[:3], elevation=0.1))
    x = _rand(3, 2, *shape, dtype=torch.float32)
    out = R(x)
    torch.testing.assert_close(out[1:2], R(x[1:2]))
    half = R(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), R(x.to(torch.bfloat16).float()).to(torch.bfloat16).float())


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(1, 1, 4, 5, 6), r"input must have shape \(B, 2, 4, 5, 6\) \(emission, absorption\)"),
    (torch.zeros(1, 2, 4, 5, 7), r"got \(1, 2, 4, 5, 7\)"),
    (torch.zeros(2, 4, 5, 6), "got \\(2, 4, 5, 6\\)"),
])
def test_wrong_input_shapes_fail_with_one_clear_line(bad, match):
    R = EmissionAbsorption((4, 5, 6), orbit([0.0]))
    with pytest.raises(ValueError, match=match):
        R(bad)
    with pytest.raises(TypeError, match="real floating"):
        R(torch.zeros(1, 2, 4, 5, 6, dtype=torch.int64))


def test_wrong_image_shapes_fail_with_one_clear_line():
    R = EmissionAbsorption((4, 5, 6), orbit([0.0, 1.0]))
    good = torch.zeros(1, 1, *R.range_shape)
    assert R.check_images(good) is good
    with pytest.raises(ValueError, match="one channel"):
        R.check_images(torch.zeros(1, 2, *R.range_shape))
    with pytest.raises(ValueError, match="must have shape"):
        R.check_images(torch.zeros(1, 1, 3, *R.range_shape[1:]))


@pytest.mark.parametrize("kw, match", [
    ({"voxel_size": 0.0}, "voxel_size"),
    ({"background": -1.0}, "background"),
    ({"samples_per_chunk": 0}, "samples_per_chunk"),
])
def test_bad_renderer_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        EmissionAbsorption((4, 5, 6), orbit([0.0]), **kw)


def test_pinhole_eye_inside_the_volume_is_refused():
    with pytest.raises(ValueError, match="bounding radius"):
        EmissionAbsorption((8, 8, 8), orbit([0.0], kind="pinhole", distance=5.0))
    with pytest.raises(TypeError, match="orbit"):
        EmissionAbsorption((8, 8, 8), parallel_beam((8, 8, 8), [0.0]))


def test_repr_names_volume_and_cameras():
    R = EmissionAbsorption((4, 5, 6), orbit([0.0, 1.0], elevation=0.2), background=1.0)
    assert repr(R).startswith("EmissionAbsorption((4, 5, 6), orbit((0.0, 1.0), elevation=0.2")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    shape = (8, 9, 10)
    R = EmissionAbsorption(shape, orbit(ANGLES, elevation=0.3), background=0.5)
    x = _rand(2, 2, *shape, dtype=torch.float32)
    torch.testing.assert_close(R(x.cuda()).cpu(), R(x), rtol=1e-4, atol=1e-5)
    xc = x.cuda().requires_grad_(True)
    R(xc).sum().backward()
    xr = x.clone().requires_grad_(True)
    R(xr).sum().backward()
    torch.testing.assert_close(xc.grad.cpu(), xr.grad, rtol=1e-4, atol=1e-5)
