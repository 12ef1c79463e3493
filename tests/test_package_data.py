"""The package stands alone: what it reads at run time is package data, found through
``importlib.resources`` and carried by the wheel that ``pip install .`` builds."""

import json
import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from tomodiff import phantoms
from tomodiff.demos.ct_demo import run_demo
from tomodiff.io.volumes import load_volume
from tomodiff.napari import sample_data

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_set_is_package_data():
    shipped = files("tomodiff.phantoms") / "benchmark_set"
    assert Path(str(shipped)) == phantoms.BENCHMARK_SET  # what the code reads is what resources find
    entries = json.loads((shipped / "manifest.json").read_text())["entries"]
    missing = [e["file"] for e in entries if not (shipped / e["file"]).is_file()]
    assert not missing, f"benchmark files listed in the manifest but not in the package: {missing}"


@pytest.mark.parametrize("name", [run_demo.__kwdefaults__["phantom"], sample_data.PHANTOM, "foam_128"],
                         ids=["demo", "napari sample", "selftest"])
def test_named_volumes_come_from_their_files(name):
    """The demo's default volume, the napari sample's and the self-test's are read, not regenerated."""
    _, desc = load_volume(name)
    assert desc["name"] == name and not desc["source"].startswith("regenerated"), desc


def test_the_wheel_carries_every_file_of_the_package(tmp_path):
    """Build the wheel from a copy of the sources (about 5 s) and list what it leaves out."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    shutil.copytree(ROOT / "tomodiff", src / "tomodiff", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("tomodiff-*.whl")
    carried = set(zipfile.ZipFile(wheel).namelist())
    package = {p.relative_to(src).as_posix() for p in (src / "tomodiff").rglob("*") if p.is_file()}
    assert not package - carried, f"not in the wheel (add them to package-data): {sorted(package - carried)}"
