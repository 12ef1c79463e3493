"""Cameras: validation, the projector's frame at elevation 0, pinhole rays, default image shapes."""

import math

import pytest
import torch

from tomodiff.ct import parallel_beam
from tomodiff.ct.rays import rays
from tomodiff.render import camera_rays, orbit
from tomodiff.render.cameras import fit_image_shape


def test_orthographic_at_elevation_zero_is_the_projectors_frame_bit_for_bit():
    angles = [0.0, 0.4, math.pi / 4, 2.0, 5.5]
    g = parallel_beam((5, 6, 7), angles, det_shape=(4, 9), det_spacing=0.8)
    points, directions = rays(g)
    p, d = camera_rays(orbit(angles, image_shape=(4, 9), pixel_size=0.8))
    assert torch.equal(p, points) and torch.equal(d, directions)


def test_pinhole_rays_meet_at_the_eye_and_point_at_it():
    cams = orbit([0.3, 2.0], elevation=[0.2, -0.4], kind="pinhole", distance=20.0, image_shape=(3, 4),
                 pixel_size=0.5)
    p, d = camera_rays(cams)
    for a, (th, el) in enumerate(zip(cams.angles, cams.elevations)):
        eye = 20.0 * torch.tensor([-math.sin(th) * math.cos(el), math.cos(th) * math.cos(el), math.sin(el)],
                                  dtype=torch.float64)
        pa, da = p[a * 12:(a + 1) * 12], d[a * 12:(a + 1) * 12]
        t = ((eye - pa) * da).sum(1, keepdim=True)  # distance along each ray to the eye
        torch.testing.assert_close(pa + t * da, eye.expand_as(pa))
        assert (t > 0).all()  # light travels towards the eye
        torch.testing.assert_close(da.norm(dim=1), torch.ones(12, dtype=torch.float64))


def test_elevation_tilts_the_view_and_keeps_the_frame_orthonormal():
    from tomodiff.render.cameras import frames

    f = frames(orbit([0.0, 1.0, 2.5], elevation=0.5, pixel_size=1.0))
    for a in range(3):
        m = torch.stack([f["u"][a], f["v"][a], f["d"][a]])
        torch.testing.assert_close(m @ m.T, torch.eye(3, dtype=torch.float64))
    assert torch.allclose(f["d"][:, 2], torch.full((3,), math.sin(0.5), dtype=torch.float64))


def test_default_image_shape_matches_parallel_beam_and_covers_the_volume():
    shape = (5, 6, 7)
    g = parallel_beam(shape, [0.0])
    assert fit_image_shape(orbit([0.0], pixel_size=1.0), shape, 1.0) == g.det_shape
    v, u = fit_image_shape(orbit([0.0], elevation=0.3, pixel_size=1.0), shape, 1.0)
    assert v == u >= math.ceil(math.sqrt(25 + 36 + 49))
    near = fit_image_shape(orbit([0.0], kind="pinhole", distance=12.0, pixel_size=1.0), shape, 1.0)
    assert near[0] > v  # a near eye magnifies the near side


@pytest.mark.parametrize("kw, match", [
    ({"angles": []}, "at least one angle"),
    ({"angles": [0.0, 1.0], "elevation": [0.1, 0.2, 0.3]}, "one elevation or one per angle"),
    ({"angles": [0.0], "elevation": 2.0}, r"\(-pi/2, pi/2\)"),
    ({"angles": [0.0], "kind": "fisheye"}, "camera kind"),
    ({"angles": [0.0], "kind": "pinhole"}, "need a distance"),
    ({"angles": [0.0], "distance": 5.0}, "orthographic cameras take no distance"),
    ({"angles": [0.0], "image_shape": (3,)}, r"image_shape must be \(V, U\)"),
    ({"angles": [0.0], "pixel_size": -1.0}, "pixel_size"),
    ({"angles": [float("nan")]}, "finite"),
])
def test_bad_cameras_fail_with_one_clear_line(kw, match):
    with pytest.raises(ValueError, match=match):
        orbit(**kw)


def test_repr_is_a_valid_call_and_to_dict_round_trips():
    from tomodiff.render import Cameras  # noqa: F401 (the names a repr may need)

    cams = orbit([0.0, 1.5], elevation=[0.1, 0.2], kind="pinhole", distance=30.0, image_shape=(4, 5), pixel_size=0.5)
    assert eval(repr(cams)) == cams
    d = cams.to_dict()
    assert orbit(**{k: v for k, v in d.items()}) == cams
    assert orbit([0.0, 90.0], angle_units="deg").angles == (0.0, math.pi / 2)


def test_subset_keeps_the_chosen_cameras_and_resolved_fills_in_the_volume_defaults():
    cams = orbit([0.0, 1.0, 2.0], elevation=[0.1, 0.2, 0.3])
    part = cams.subset([2, 0])
    assert part.angles == (2.0, 0.0) and part.elevations == (0.3, 0.1)
    with pytest.raises(ValueError, match="camera indices"):
        cams.subset([3])
    resolved = cams.resolved((4, 5, 6), 0.5)
    assert resolved.pixel_size == 0.5 and resolved.image_shape == fit_image_shape(resolved, (4, 5, 6), 0.5)
