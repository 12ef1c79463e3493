"""Numpy scans: the .npz/.npy layouts, their angles and units, and one-line refusals."""

import numpy as np
import pytest

from tomodiff.io.angle_spec import parse_angle_spec
from tomodiff.io.array_scan import LineIntegrals, read_array_scan
from tomodiff.io.kind import FileKindError, probe_array
from tomodiff.io.scans import RawScan, ScanFormatError


def test_angle_spec_units(tmp_path):
    assert np.allclose(parse_angle_spec("0:60:61deg"), np.deg2rad(np.linspace(0, 60, 61)))
    assert np.allclose(parse_angle_spec("0:180:181"), np.deg2rad(np.linspace(0, 180, 181)))  # default degrees
    assert np.allclose(parse_angle_spec("0:3.14159:5rad"), np.linspace(0, 3.14159, 5))
    with pytest.raises(ValueError, match="unknown unit 'grad'"):
        parse_angle_spec("0:60:61grad")
    with pytest.warns(UserWarning, match="look like radians"):
        parse_angle_spec("0:3.14:181")
    with pytest.warns(UserWarning, match="look like degrees"):
        parse_angle_spec("0:180:181rad")
    (tmp_path / "a.txt").write_text("0, 1\n2 # c\n")
    assert np.allclose(parse_angle_spec(tmp_path / "a.txt"), np.deg2rad([0, 1, 2]))


def test_npz_layouts(tmp_path):
    sino = np.random.default_rng(0).random((7, 3, 10)).astype(np.float32)
    np.savez(tmp_path / "s.npz", sinogram=sino[:, 0], angles_deg=np.arange(7.0) * 30)
    li = read_array_scan(tmp_path / "s.npz")
    assert isinstance(li, LineIntegrals) and li.lines.shape == (7, 1, 10) and np.allclose(li.angles[1], np.pi / 6)
    np.savez(tmp_path / "c.npz", proj=(sino * 100).astype(np.uint16), flat=np.full((3, 10), 200.0),
             dark=np.zeros((2, 3, 10)), angles_rad=np.linspace(0, np.pi, 7))
    raw = read_array_scan(tmp_path / "c.npz")
    assert isinstance(raw, RawScan) and raw.flats.shape == (1, 3, 10) and raw.darks.shape == (2, 3, 10)
    np.save(tmp_path / "b.npy", sino)
    assert read_array_scan(tmp_path / "b.npy", angles="0:180:7").lines.shape == (7, 3, 10)
    assert probe_array(tmp_path / "b.npy") == "array"


@pytest.mark.parametrize("content, angles, msg", [
    (dict(sinogram=np.zeros((4, 5))), None, "no angles"),
    (dict(sinogram=np.zeros((4, 5)), angles=np.zeros(4)), None, "'angles' has no units"),
    (dict(sinogram=np.zeros((4, 5)), angles_deg=np.arange(3.0)), None, "4 projections but 3 angles"),
    (dict(sinogram=np.zeros((4, 5)), angles_deg=np.arange(4.0)), "0:3:4", "--angles does not apply"),
    (dict(sinogram=np.zeros((4, 5)), proj=np.zeros((4, 5)), angles_deg=np.arange(4.0)), None, "keep one"),
    (dict(proj=np.zeros((4, 2, 5)), flat=np.zeros((3, 5)), angles_deg=np.arange(4.0)), None, "'flat' has shape"),
    (dict(other=np.zeros(3)), None, "expected 'sinogram'"),
    (dict(sinogram=np.full((4, 5), np.nan), angles_deg=np.arange(4.0)), None, "NaN/Inf"),
])
def test_npz_refusals_name_the_file(tmp_path, content, angles, msg):
    np.savez(tmp_path / "bad.npz", **content)
    with pytest.raises(ScanFormatError, match=msg) as err:
        read_array_scan(tmp_path / "bad.npz", angles=angles)
    assert "bad.npz" in str(err.value) and "\n" not in str(err.value)


def test_bad_files(tmp_path):
    (tmp_path / "x.npz").write_text("not a zip")
    with pytest.raises(FileKindError, match="no zip signature"):
        probe_array(tmp_path / "x.npz")
    np.save(tmp_path / "bare.npy", np.zeros((4, 5)))
    with pytest.raises(ScanFormatError, match="needs|has no angles"):
        read_array_scan(tmp_path / "bare.npy")


def test_i13_layout(shared_data):
    scan = read_array_scan(shared_data / "diamond_i13_24737" / "24737_raw.npz")
    assert scan.projections.shape == (91, 135, 160) and scan.flats.shape == (1, 135, 160)
    assert np.degrees(scan.angles[[0, -1]]) == pytest.approx([-88.2, 91.8], abs=1e-3)
