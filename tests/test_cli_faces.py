"""What a user sees (issue 22 item 7): no Qt abort without a display, the prior's hash in the provenance
of a diffusion result, and shape errors that summarise a geometry's angles instead of listing them."""

import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from tomodiff.cli import main
from tomodiff.ct import fan_beam
from tomodiff.io import ProjectData, write_project

FAN_121 = dict(volume_shape=(32, 32), angles=np.radians(np.arange(121) * 0.5), det_shape=(60,),
               source_distance=100.0, detector_distance=50.0)


def _fan_file(path, sinogram_shape=None):
    """A fan-beam project file of 121 views; with ``sinogram_shape``, its sinogram replaced by one of
    that shape (the file's geometry kept), as a damaged or hand-made file would be."""
    g = fan_beam(**FAN_121)
    write_project(path, ProjectData(sinogram=np.zeros(g.sino_shape, np.float32), geometry=g.to_dict()))
    if sinogram_shape is not None:
        with h5py.File(path, "a") as f:
            attrs = dict(f["sinogram"].attrs)
            del f["sinogram"]
            f["sinogram"] = np.zeros(sinogram_shape, np.float32)
            f["sinogram"].attrs.update(attrs)
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is Linux's")
def test_view_without_a_display_is_one_line_and_exit_2_in_a_real_process(tmp_path):
    # in a fresh process, as a user runs it: Qt used to abort it (exit 134, a core dump)
    path = _fan_file(tmp_path / "scan.h5")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    p = subprocess.run([sys.executable, "-m", "tomodiff", "view", str(path)], capture_output=True, text=True,
                       env={**env, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "xvfb-run -a tomodiff view" in err[0] and "Traceback" not in p.stderr


def test_a_diffusion_result_records_the_priors_sha256(tmp_path, capsys):
    from tomodiff.priors.registry import card

    scan, out = tmp_path / "scan.h5", tmp_path / "out.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(scan)]) == 0
    assert main(["reconstruct", str(scan), "--method", "auto", "--steps", "2", "--samples", "2", "--threads", "1",
                 "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    with h5py.File(out) as f:  # what a user reads with h5py: the provenance group's attributes
        prov = json.loads(f["provenance"].attrs["json"])
    prior = prov["prior"]
    assert prior["name"] == "ct-slice" and re.fullmatch(r"[0-9a-f]{64}", prior["sha256"] or "")
    assert prior["sha256"] == card("ct-slice")["sha256"]


def test_a_sinogram_that_does_not_fit_its_geometry_is_one_short_line(tmp_path, capsys):
    path = _fan_file(tmp_path / "bad.h5", sinogram_shape=(120, 60))
    assert main(["reconstruct", str(path), "--method", "fbp", "--out", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(120, 60)" in err[0] and "(121, 60)" in err[0] and len(err[0]) < 300


def test_operator_shape_errors_summarise_the_angles():
    from tomodiff.ct import Projector
    from tomodiff.recon import reconstruct

    A = Projector(fan_beam(**FAN_121))
    with pytest.raises(ValueError) as exc:
        reconstruct(A, torch.zeros(1, 1, 120, 60), method="fbp", progress=False)
    text = str(exc.value)
    assert "<121 angles, 0–60°, 0.5° steps>" in text and "got (1, 1, 120, 60)" in text
    assert len(text) < 400 and text.count(",") < 20  # not 121 numbers
