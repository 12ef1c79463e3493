"""Reading a sinogram by detector rows: project files and raw scans (DXchange, NXtomo)."""


import h5py
import numpy as np
import pytest

from tomodiff.ct import parallel_beam, thin_sinogram
from tomodiff.io import ProjectData, normalize, read_scan, write_project
from tomodiff.io.sinogram_reader import open_sinogram


def _raw(rng, A=10, V=9, U=12):
    proj = rng.integers(200, 3000, size=(A, V, U)).astype(np.uint16)
    flats = rng.integers(3500, 4000, size=(3, V, U)).astype(np.uint16)
    darks = rng.integers(50, 100, size=(2, V, U)).astype(np.uint16)
    return proj, flats, darks, np.linspace(0, 180, A, endpoint=False)


def _write_dxchange(path, proj, flats, darks, theta):
    with h5py.File(path, "w") as f:
        f.create_dataset("exchange/data", data=proj, chunks=(1, *proj.shape[1:]))  # chunked by projection
        f["exchange/data_white"], f["exchange/data_dark"], f["exchange/theta"] = flats, darks, theta


def _write_nxtomo(path, proj, flats, darks, theta):
    # darks, flats, projections and one more flat at the end, as scanners interleave them
    data = np.concatenate([darks, flats[:2], proj, flats[2:]])
    key = np.array([2] * len(darks) + [1] * 2 + [0] * len(proj) + [1] * (len(flats) - 2))
    rot = np.concatenate([np.zeros(len(darks) + 2), theta, np.zeros(len(flats) - 2)])
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/instrument/detector/data", data=data, chunks=(1, *data.shape[1:]))
        f["entry/instrument/detector/image_key"] = key
        f["entry/sample/rotation_angle"] = rot
        f["entry/sample/rotation_angle"].attrs["units"] = "degree"


@pytest.mark.parametrize("layout", ["dxchange", "nxtomo"])
def test_rows_of_a_raw_scan_equal_the_whole_file_reader(tmp_path, layout):
    proj, flats, darks, theta = _raw(np.random.default_rng(1))
    path = tmp_path / f"scan.{layout}.h5"
    (_write_dxchange if layout == "dxchange" else _write_nxtomo)(path, proj, flats, darks, theta)
    whole = normalize(read_scan(path).thin(step=2), clamp_gain=1e-3)  # (5, 9, 12)
    with open_sinogram(path, thin=2, rows=(2, 8)) as src:
        assert src.shape == (5, 6, 12) and src.kind == layout
        assert src.geometry.volume_shape == (6, 12, 12) and src.geometry.det_shape == (6, 12)
        np.testing.assert_allclose(src.geometry.angles, np.deg2rad(theta[::2]), atol=1e-12)
        assert np.array_equal(src.read(0, 3), whole[:, 2:5]) and np.array_equal(src.read(3, 6), whole[:, 5:8])
        with pytest.raises(ValueError, match="rows 4:7 out of range for 6 detector rows"):
            src.read(4, 7)


def test_rows_of_a_project_file(tmp_path):
    geom = parallel_beam((8, 10, 10), np.linspace(0, np.pi, 12, endpoint=False))
    y = np.random.default_rng(2).random(geom.sino_shape).astype(np.float32)
    ref = np.random.default_rng(3).random((8, 10, 10)).astype(np.float32)
    write_project(tmp_path / "p.h5", ProjectData(sinogram=y, geometry=geom, reference=ref,
                                                 provenance={"sigma_y": 0.02}))
    y_thin, g_thin = thin_sinogram(y, geom, step=3)
    with open_sinogram(tmp_path / "p.h5", thin=3) as src:
        assert src.geometry == g_thin and src.sigma_y == 0.02 and src.has_reference
        assert np.array_equal(src.read(2, 5), y_thin[:, 2:5]) and np.array_equal(src.reference(2, 5), ref[2:5])
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_sinogram(tmp_path / "missing.h5")
