"""File-type detection (tomodiff.io.kind) and the one thinning rule (tomodiff.io.thin_indices)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from tomodiff.ct import parallel_beam
from tomodiff.io import ProjectData, thin_indices, write_project
from tomodiff.io.kind import FileKindError, check_hdf5, file_kind, probe


@pytest.fixture
def files(tmp_path):
    project = write_project(tmp_path / "p.h5", ProjectData(sinogram=np.ones((3, 5)), geometry={"angles": [0, 1, 2]}))
    with h5py.File(tmp_path / "dx.h5", "w") as f:
        f["exchange/data"] = np.ones((2, 1, 4))
    with h5py.File(tmp_path / "nx.nxs", "w") as f:
        f["entry/instrument/detector/data"] = np.ones((2, 1, 4))
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    (tmp_path / "text.h5").write_text("hello")
    (tmp_path / "trunc.h5").write_bytes(project.read_bytes()[:2000])
    return tmp_path


def test_kinds_and_one_line_reasons(files):
    assert probe(files / "p.h5") == "project"
    assert probe(files / "dx.h5") == "scan" and probe(files / "nx.nxs") == "scan"
    for name, why in [("other.h5", "neither a tomodiff project"), ("text.h5", "not an HDF5 file"),
                      ("trunc.h5", "truncated"), (".", "is a directory")]:
        with pytest.raises(FileKindError, match=why) as err:
            probe(files / name)
        assert "\n" not in str(err.value)
        assert file_kind(files / name) is None  # the never-raising form (napari's reader)
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_hdf5(files / "missing.h5")
    assert file_kind(files / "missing.h5") is None


def test_one_thinning_rule_for_scans_and_geometries():
    g = parallel_beam((4, 4), np.linspace(0, np.pi, 10, endpoint=False))
    assert list(thin_indices(10, step=3)) == [0, 3, 6, 9]
    assert g.thin(step=3).angles == tuple(g.angles[i] for i in thin_indices(10, step=3))
    for kwargs in ({"step": 0}, {"step": -2}, {"step": 1.5}, {"indices": [-1]}, {"indices": [10]}, {"indices": []},
                   {}, {"step": 2, "indices": [1]}):
        with pytest.raises(ValueError):
            thin_indices(10, **kwargs)
        with pytest.raises(ValueError):
            g.thin(**kwargs)
