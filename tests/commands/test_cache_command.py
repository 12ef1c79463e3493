"""``tomodiff cache info|clear``: the folder, its files and bound; clear removes and says what."""

import json
import os
import subprocess
import sys

import numpy as np
import torch

from tomodiff.cli import main
from tomodiff.ct import fan_beam
from tomodiff.ct.backends import torch_backend


def _fill(n):
    for k in range(n):
        g = fan_beam((16, 16), np.linspace(0, np.pi, 5), det_shape=(25,), source_distance=50.0,
                     detector_distance=20.0, center_offset=float(k))
        torch_backend.cached_build(g, torch.float32)


def test_info_and_clear_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOMODIFF_CACHE", str(tmp_path))
    monkeypatch.setenv("TOMODIFF_CACHE_MIN_SECONDS", "0")
    monkeypatch.setenv("TOMODIFF_CACHE_MAX", "1G")
    assert main(["cache", "info", "--json"]) == 0
    empty = json.loads(capsys.readouterr().out)
    assert empty == {"folder": str(tmp_path / "matrices"), "enabled": True, "files": 0, "bytes": 0,
                     "max_bytes": 1 << 30, "min_seconds": 0.0}
    _fill(2)
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    size = sum(p.stat().st_size for p in (tmp_path / "matrices").glob("*.pt"))
    assert info["files"] == 2 and info["bytes"] == size > 0
    assert main(["cache", "clear", "--json"]) == 0
    cleared = json.loads(capsys.readouterr().out)
    assert cleared["removed_files"] == 2 and cleared["removed_bytes"] == size
    assert not list((tmp_path / "matrices").glob("*.pt"))


def test_text_output_and_off(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOMODIFF_CACHE", str(tmp_path))
    monkeypatch.setenv("TOMODIFF_CACHE_MIN_SECONDS", "0")
    _fill(1)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "matrices") in out and "1 file," in out and "at most" in out
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 file (")
    monkeypatch.setenv("TOMODIFF_CACHE", "off")
    assert main(["cache", "info"]) == 0 and "off" in capsys.readouterr().out
    assert main(["cache", "clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["enabled"] is False


def test_cli_subprocess_and_bad_input(tmp_path):
    env = {**os.environ, "TOMODIFF_CACHE": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "tomodiff", "cache", "info", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and json.loads(run.stdout)["folder"] == str(tmp_path / "matrices")
    bad = subprocess.run([sys.executable, "-m", "tomodiff", "cache", "purge"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "invalid choice" in bad.stderr
    env["TOMODIFF_CACHE_MAX"] = "lots"
    bad = subprocess.run([sys.executable, "-m", "tomodiff", "cache", "info"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "TOMODIFF_CACHE_MAX must be a number of bytes" in bad.stderr
    assert "Traceback" not in bad.stderr
