import h5py
import numpy as np
import pytest

from tomodiff.io import ProjectData, ProjectFileError, read_project, require, update_project, write_project

GEOMETRY = {"kind": "parallel", "volume_shape": [4, 8, 8], "angles": [0.0, 0.5, 1.0],
            "det_shape": [4, 12], "voxel_size": 0.5, "det_spacing": 0.5, "center_offset": 1.5,
            "source_distance": None, "detector_distance": None}


def _data(rng):
    return ProjectData(
        sinogram=rng.random((3, 4, 12), dtype=np.float32), geometry=GEOMETRY,
        reference=rng.random((4, 8, 8), dtype=np.float32),
        reconstruction={"mean": rng.random((4, 8, 8)), "std": rng.random((4, 8, 8)),
                        "samples": rng.random((2, 4, 8, 8))},
        provenance={"method": "pigdm", "steps": 50, "seed": 3, "prior": {"name": "slice-64", "sha256": "ab"}})


def test_round_trip_and_plain_h5py_layout(tmp_path):
    rng = np.random.default_rng(0)
    data = _data(rng)
    path = write_project(tmp_path / "r.h5", data)
    back = read_project(path)
    np.testing.assert_array_equal(back.sinogram, data.sinogram)
    assert back.geometry == GEOMETRY and back.provenance == data.provenance
    np.testing.assert_allclose(back.reconstruction["samples"], data.reconstruction["samples"], rtol=1e-6)
    with h5py.File(path, "r") as f:  # what a user without tomodiff sees
        assert f["sinogram"].attrs["kind"] == "parallel"
        assert f["sinogram"].attrs["angles_units"] == "rad"
        np.testing.assert_allclose(f["sinogram"].attrs["angles"], GEOMETRY["angles"])
        assert f["sinogram"].compression == "gzip" and f["sinogram"].chunks is not None
        assert f["provenance"].attrs["method"] == "pigdm"
        assert f["reconstruction/mean"].shape == (4, 8, 8)


def test_failed_write_leaves_the_old_file_intact(tmp_path):
    rng = np.random.default_rng(1)
    path = write_project(tmp_path / "r.h5", _data(rng))
    before = path.read_bytes()
    bad = _data(rng)
    bad.reconstruction["mean"] = np.full((4, 8, 8), np.nan)
    with pytest.raises(ValueError, match="reconstruction/mean contains 256 NaN"):
        write_project(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]  # no temporary left behind


def test_crash_during_write_keeps_old_file(tmp_path, monkeypatch):
    import tomodiff.io.project_file as pf

    path = write_project(tmp_path / "r.h5", _data(np.random.default_rng(2)))
    before = path.read_bytes()

    def boom(group, name, arr):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pf, "_write_array", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_project(path, _data(np.random.default_rng(3)))
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_update_replaces_only_the_named_part(tmp_path):
    rng = np.random.default_rng(4)
    path = write_project(tmp_path / "r.h5", ProjectData(sinogram=rng.random((3, 12)), geometry={"angles": [0, 1, 2]}))
    update_project(path, reconstruction={"mean": np.ones((8, 8))})
    back = read_project(path)
    assert back.sinogram.shape == (3, 12) and back.reconstruction["mean"].shape == (8, 8)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="geometry has 2 angles but the sinogram has 3"):
        write_project(tmp_path / "a.h5", ProjectData(sinogram=np.ones((3, 5)), geometry={"angles": [0, 1]}))
    with pytest.raises(ValueError, match="sinogram must have 2 or 3 dims"):
        write_project(tmp_path / "a.h5", ProjectData(sinogram=np.ones(5)))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(ProjectFileError, match="not a tomodiff project file"):
        read_project(other)
    path = write_project(tmp_path / "b.h5", ProjectData(sinogram=np.ones((3, 5))))
    with pytest.raises(ProjectFileError, match=r"b.h5: dataset '/reference' is missing"):
        require(read_project(path), "reference", path)
