"""Geometry values: factories, validation, repr/dict round trips, thinning."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import tomodiff.ct as ct
from tomodiff.ct import Geometry, cone_beam, fan_beam, parallel_beam, thin_sinogram

ANGLES = np.linspace(0, np.pi, 12, endpoint=False)

GEOMETRIES = {
    "parallel2d": lambda: parallel_beam((16, 12), ANGLES, center_offset=1.5),
    "parallel3d": lambda: parallel_beam((4, 16, 12), ANGLES, det_shape=(6, 25), voxel_size=0.5,
                                        det_spacing=0.4),
    "fan": lambda: fan_beam((16, 12), ANGLES, 30, 40.0, 25.5, det_spacing=1.2, center_offset=-2.0),
    "cone": lambda: cone_beam((4, 16, 12), ANGLES, (8, 30), 40.0, 25.5, voxel_size=0.7),
}


@pytest.mark.parametrize("name", GEOMETRIES)
def test_repr_is_a_valid_call_and_dict_round_trip_is_lossless(name):
    g = GEOMETRIES[name]()
    assert eval(repr(g), vars(ct)) == g
    d = g.to_dict()
    assert Geometry.from_dict(d) == g
    assert all(isinstance(v, (str, int, float, list)) for v in d.values())
    assert d["angles"] == list(g.angles)  # exact floats, no rounding


@pytest.mark.parametrize("name", GEOMETRIES)
def test_dict_survives_hdf5_attributes(name, tmp_path):
    h5py = pytest.importorskip("h5py")
    g = GEOMETRIES[name]()
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.attrs.update(g.to_dict())
    with h5py.File(tmp_path / "g.h5", "r") as f:
        back = Geometry.from_dict(dict(f.attrs))
    assert back == g


def test_fields_and_derived_properties():
    g = GEOMETRIES["cone"]()
    assert (g.kind, g.volume_shape, g.det_shape, g.ndim, g.n_angles) == ("cone", (4, 16, 12), (8, 30), 3, 12)
    assert g.sino_shape == (12, 8, 30)
    assert isinstance(g.angles, tuple) and isinstance(g.angles[0], float)
    assert g.source_distance == 40.0 and g.detector_distance == 25.5 and g.voxel_size == 0.7
    p = GEOMETRIES["parallel2d"]()
    assert p.ndim == 2 and p.sino_shape == (12, p.det_shape[0]) and p.source_distance is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.voxel_size = 2.0
    assert hash(p) == hash(GEOMETRIES["parallel2d"]())


def test_default_detector_covers_the_volume():
    g = parallel_beam((10, 30, 40), [0.0], voxel_size=0.5, det_spacing=0.25)
    assert g.det_shape == (20, math.ceil(50 * 2))  # hypot(30, 40) = 50 voxels of 0.5 -> 100 pixels of 0.25
    assert parallel_beam((8, 6), [0.0]).det_shape == (10,)


def test_degrees_in_dicts_are_converted():
    g = parallel_beam((8, 8), [0.0, math.pi / 2])
    d = g.to_dict() | {"angles": [0.0, 90.0], "angle_units": "deg"}
    assert Geometry.from_dict(d).angles == pytest.approx(g.angles, abs=1e-15)


def test_thin_by_step_and_indices():
    g = GEOMETRIES["parallel3d"]()
    assert g.thin(step=4).angles == g.angles[::4]
    assert g.thin(indices=[5, 1]).angles == (g.angles[5], g.angles[1])
    assert g.thin(step=1) == g
    y = torch.arange(2 * 3 * math.prod(g.sino_shape), dtype=torch.float32).reshape(2, 3, *g.sino_shape)
    y_thin, g_thin = thin_sinogram(y, g, step=3)
    assert g_thin == g.thin(step=3) and y_thin.shape == (2, 3, 4, *g.det_shape)
    torch.testing.assert_close(y_thin, y[:, :, ::3])
    y_np, g_np = thin_sinogram(y.numpy()[0, 0], g, indices=[0, 7])
    np.testing.assert_array_equal(y_np, y.numpy()[0, 0, [0, 7]])
    assert g_np.angles == (g.angles[0], g.angles[7])


@pytest.mark.parametrize("kwargs, match", [
    (dict(step=0), "step must be a positive int"),
    (dict(step=2, indices=[1]), "exactly one of step"),
    (dict(), "exactly one of step"),
    (dict(indices=[12]), r"in \[0, 12\)"),
    (dict(indices=[]), "at least one angle"),
])
def test_thin_rejects_bad_selections(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GEOMETRIES["parallel2d"]().thin(**kwargs)


def test_thin_sinogram_rejects_wrong_shape():
    g = GEOMETRIES["parallel2d"]()
    with pytest.raises(ValueError, match=r"sino_shape \(12, 20\).*got shape \(1, 11, 20\)"):
        thin_sinogram(torch.zeros(1, 11, 20), g, step=2)


@pytest.mark.parametrize("make, match", [
    (lambda: parallel_beam((8, 8), []), "at least one angle"),
    (lambda: parallel_beam((8, 8), [0.0, float("nan")]), "finite"),
    (lambda: parallel_beam((8, 8), [0.0, float("inf")]), "finite"),
    (lambda: parallel_beam((8, 0), [0.0]), "positive ints"),
    (lambda: parallel_beam((8, 8.5), [0.0]), "positive ints"),
    (lambda: parallel_beam((8,), [0.0]), r"\(Y, X\) or \(Z, Y, X\)"),
    (lambda: parallel_beam((8, 8), [0.0], voxel_size=0), "voxel_size must be > 0"),
    (lambda: parallel_beam((8, 8), [0.0], det_spacing=-1.0), "det_spacing must be > 0"),
    (lambda: parallel_beam((8, 8), [0.0], det_shape=(4, 4)), r"det_shape must be \(U,\)"),
    (lambda: parallel_beam((2, 8, 8), [0.0], det_shape=4), r"det_shape must be \(V, U\)"),
    (lambda: parallel_beam((8, 8), [0.0], center_offset=float("nan")), "center_offset must be finite"),
    (lambda: fan_beam((2, 8, 8), [0.0], 10, 50.0, 10.0), r"fan-beam volume_shape must be \(Y, X\)"),
    (lambda: cone_beam((8, 8), [0.0], (4, 10), 50.0, 10.0), r"cone-beam volume_shape must be \(Z, Y, X\)"),
    (lambda: fan_beam((8, 6), [0.0], 10, 5.0, 10.0), r"exceed the volume's radius in the rotation plane \(5 world units.*got 5"),
    (lambda: cone_beam((4, 8, 6), [0.0], (4, 10), 2.0, 10.0, voxel_size=0.5), r"rotation plane \(2.5 world units.*got 2"),
    (lambda: fan_beam((8, 6), [0.0], 10, 50.0, -1.0), "detector_distance must be >= 0"),
    (lambda: Geometry(kind="helical", volume_shape=(8, 8), angles=[0.0], det_shape=(8,)), "kind must be one of"),
    (lambda: Geometry(kind="parallel", volume_shape=(8, 8), angles=[0.0], det_shape=(8,), source_distance=3.0),
     "parallel beam takes no source_distance"),
])
def test_invalid_geometries_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_from_dict_rejects_unknown_keys_and_units():
    d = parallel_beam((8, 8), [0.0]).to_dict()
    with pytest.raises(ValueError, match="unknown geometry keys"):
        Geometry.from_dict(d | {"pitch": 1.0})
    with pytest.raises(ValueError, match="angle_units must be"):
        Geometry.from_dict(d | {"angle_units": "grad"})
