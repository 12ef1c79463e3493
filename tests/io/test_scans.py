"""Readers for measured scans, on the real files in shared/data."""

import h5py
import numpy as np
import pytest

from tomodiff.io import ScanFormatError, normalize, read_dxchange, read_nxtomo, read_scan


def test_dxchange_tooth(shared_data):
    scan = read_scan(shared_data / "aps_tooth" / "tooth.h5")
    assert scan.projections.shape == (181, 2, 640)
    assert scan.flats.shape == (10, 2, 640) and scan.darks.shape == (10, 2, 640)
    assert scan.angles[0] == 0.0 and abs(scan.angles[-1] - np.deg2rad(179.0055)) < 1e-4
    p = normalize(scan)
    assert p.shape == (181, 2, 640) and p.dtype == np.float32 and np.isfinite(p).all()
    # the tooth absorbs: the centre of the detector sees more attenuation than the edge (air)
    assert p[:, :, 250:350].mean() > 5 * abs(p[:, :, :50].mean())
    sparse = scan.thin(step=8)
    assert sparse.n_angles == 23 and np.allclose(sparse.angles, scan.angles[::8])


def _write_nxtomo(path, proj, flat, dark, angles_deg, entry="entry"):
    data = np.concatenate([dark[None], flat[None], proj]).astype(np.uint16)
    key = np.concatenate([[2], [1], np.zeros(len(proj), int)])
    rot = np.concatenate([[0.0, 0.0], angles_deg])
    with h5py.File(path, "w") as f:
        f[f"{entry}/instrument/detector/data"] = data
        f[f"{entry}/instrument/detector/image_key"] = key
        f[f"{entry}/sample/rotation_angle"] = rot
        f[f"{entry}/sample/rotation_angle"].attrs["units"] = "degree"


def test_nxtomo_from_the_diamond_i13_scan(shared_data, tmp_path):
    z = np.load(shared_data / "diamond_i13_24737" / "24737_raw.npz")
    path = tmp_path / "i13.nxs"
    _write_nxtomo(path, z["proj"], z["flat"], z["dark"], z["angles_deg"])
    scan = read_scan(path)
    assert scan.projections.shape == (91, 135, 160) and "NXtomo" in scan.source
    np.testing.assert_allclose(np.rad2deg(scan.angles), z["angles_deg"], atol=1e-9)
    with pytest.raises(ScanFormatError, match="non-positive at 1 pixel"):  # a real dead pixel at (0, 0)
        normalize(scan)
    p = normalize(scan, air_region=(slice(0, 20), slice(0, 20)), clamp_gain=1e-3)
    # the documented recipe, computed independently from the npz
    t = (z["proj"] - z["dark"]) / np.maximum(z["flat"] - z["dark"], 1e-3)
    t /= np.median(t[:, :20, :20], axis=(1, 2), keepdims=True)
    expected = -np.log(np.clip(t, 1e-4, None))
    np.testing.assert_allclose(p, expected, rtol=1e-4, atol=1e-4)


def test_missing_dataset_names_file_and_dataset(tmp_path):
    path = tmp_path / "broken.h5"
    with h5py.File(path, "w") as f:
        f["exchange/data"] = np.ones((3, 2, 4), np.float32)
    with pytest.raises(ScanFormatError, match=r"broken.h5: dataset 'exchange/theta' is missing"):
        read_dxchange(path)


def test_angle_count_mismatch(tmp_path):
    path = tmp_path / "mismatch.h5"
    with h5py.File(path, "w") as f:
        f["exchange/data"] = np.ones((3, 2, 4), np.float32)
        f["exchange/theta"] = np.arange(4.0)
    with pytest.raises(ScanFormatError, match="3 projections but 4 angles"):
        read_dxchange(path)


def test_nan_and_wrong_dtype(tmp_path):
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        d = np.ones((3, 2, 4), np.float32)
        d[1, 1, 1] = np.nan
        f["exchange/data"] = d
        f["exchange/theta"] = np.arange(3.0)
    with pytest.raises(ScanFormatError, match="exchange/data' contains 1 NaN"):
        read_dxchange(path)
    path2 = tmp_path / "str.h5"
    with h5py.File(path2, "w") as f:
        f["exchange/data"] = np.ones((3, 2, 4), np.float32)
        f["exchange/theta"] = np.array([b"a", b"b", b"c"])
    with pytest.raises(ScanFormatError, match="theta' has dtype"):
        read_dxchange(path2)


def test_non_positive_flat_minus_dark(tmp_path):
    path = tmp_path / "dead.nxs"
    flat = np.full((2, 4), 100.0)
    flat[1, 2] = 5.0
    _write_nxtomo(path, np.full((3, 2, 4), 50.0), flat, np.full((2, 4), 10.0), np.arange(3.0))
    with pytest.raises(ScanFormatError, match=r"flat − dark is non-positive at 1 pixel\(s\) \(first at row 1, col 2\); pass clamp_gain"):
        normalize(read_nxtomo(path))


def test_nxtomo_frame_count_mismatch_and_missing_file(tmp_path):
    path = tmp_path / "bad.nxs"
    with h5py.File(path, "w") as f:
        f["entry/instrument/detector/data"] = np.ones((4, 2, 2))
        f["entry/instrument/detector/image_key"] = np.zeros(3, int)
        f["entry/sample/rotation_angle"] = np.zeros(4)
    with pytest.raises(ScanFormatError, match="data has 4 frames, image_key 3"):
        read_nxtomo(path)
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        read_scan(tmp_path / "nope.h5")
