"""The benchmark-set generator (benchmarks/make_benchmark_set.py): its data folder and its copy into the package."""

import json

import pytest

from benchmarks import make_benchmark_set as M


def test_real_volumes_need_the_data_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TOMODIFF_SHARED_DATA", raising=False)
    with pytest.raises(SystemExit, match="pass --data-dir or set TOMODIFF_SHARED_DATA"):
        M.main([str(tmp_path / "set")])
    with pytest.raises(SystemExit):  # a folder without the head CT: argparse's one line, exit 2
        M.main([str(tmp_path / "set"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert "vtk_headsq/head.mha: not found" in err[-1]
    assert not (tmp_path / "set").exists()


def test_make_then_ship(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "SET", [("foam_16", "foam", (16, 16, 16), 4)])
    out, package = tmp_path / "set", tmp_path / "package"
    package.mkdir()
    manifest = M.make(out)
    assert manifest["regenerate"] == "python -m benchmarks.make_benchmark_set"
    (entry,) = manifest["entries"]
    assert entry["file"] == "foam_16.h5" and entry["seed"] == 2_000_000_004
    assert M.file_sha256(out / "foam_16.h5") == entry["file_sha256"]
    M.ship(out, package)
    assert sorted(p.name for p in package.iterdir()) == ["foam_16.h5", "manifest.json"]
    assert json.loads((package / "manifest.json").read_text()) == manifest
