import json
import subprocess
import sys

import pytest

from tomodiff import __version__
from tomodiff.cli import main


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "demo2d" in capsys.readouterr().out


def test_console_script_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "tomodiff", "--help"], capture_output=True, text=True, check=True)
    assert "info" in out.stdout


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tomodiff"] == __version__
    assert info["versions"]["torch"] and info["torch_threads"] >= 1
    assert isinstance(info["astra_cuda"], bool) and isinstance(info["torch_cuda"], bool)


def test_demo2d_writes_png_and_json(tmp_path, capsys):
    out = tmp_path / "demo.png"
    # the pseudo-inverse alone needs no prior (diffusion methods: tests/test_demo2d.py)
    assert main(["demo2d", "--size", "32", "--methods", "pinv", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.stat().st_size > 1000
    assert len(summary["tasks"]) == 5
    for task in summary["tasks"].values():
        assert 5.0 < task["pinv"]["psnr"] < 60.0


def test_demo2d_bad_size_is_a_clear_error(capsys):
    assert main(["demo2d", "--size", "30"]) == 2
    assert "--size must be a multiple of 4" in capsys.readouterr().err


def test_info_describes_a_project_file(tmp_path, capsys):
    import numpy as np

    from tomodiff.io import ProjectData, write_project

    path = write_project(tmp_path / "p.h5", ProjectData(sinogram=np.ones((3, 5)), geometry={"angles": [0, 1, 2]},
                                                        provenance={"method": "fbp"}))
    assert main(["info", str(path), "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["datasets"]["sinogram"]["shape"] == [3, 5]
    assert desc["geometry"]["angles"] == [0, 1, 2] and desc["provenance"]["method"] == "fbp"
    assert main(["info", str(tmp_path / "missing.h5")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_view_without_a_display_says_what_to_do(tmp_path, capsys, monkeypatch):
    """Qt aborted the process (exit 134) without a screen; now one line naming xvfb-run, exit 2."""
    scan = tmp_path / "scan.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "4", "--out", str(scan)]) == 0
    capsys.readouterr()
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["view", str(scan)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "xvfb-run -a tomodiff view" in err[0]
