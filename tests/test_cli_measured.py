"""`tomodiff reconstruct` on measured-style inputs: numpy scans, fan/cone geometry from the shell,
the centre of rotation (auto, warnings), ring removal, and refusals before any work."""

import json

import numpy as np
import pytest
import torch

from tomodiff.cli import main
from tomodiff.ct import Geometry, Projector, fan_beam, parallel_beam
from tomodiff.io import read_project
from tomodiff.recon import reconstruct

SO, SD, PIX = 410.66, 553.74, 0.2  # HTC 2022's distances (mm); the pixel is this test's


def _disc(n, vox):
    yy, xx = (np.mgrid[:n, :n] - (n - 1) / 2) * vox
    return (((xx ** 2 + yy ** 2) < (0.4 * n * vox) ** 2) * 0.02 - ((xx - 2) ** 2 + (yy + 1) ** 2 < (0.1 * n * vox) ** 2)
            * 0.02).astype(np.float32)


def _run(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fan_limited_arc_from_the_shell_matches_python(tmp_path, capsys):
    U, vox = 120, 1.0
    n = round(U * PIX * SO / SD / vox)  # the shell's default grid for --voxel-size 1
    angles_deg = np.linspace(0, 60, 31)
    g = fan_beam((n, n), np.deg2rad(angles_deg), det_shape=(U,), source_distance=SO, detector_distance=SD - SO,
                 voxel_size=vox, det_spacing=PIX)
    A = Projector(g)
    y = A(torch.from_numpy(_disc(n, vox))[None, None])
    np.savez(tmp_path / "htc.npz", sinogram=y[0, 0].numpy(), angles_deg=angles_deg)
    _run(capsys, "reconstruct", str(tmp_path / "htc.npz"), "--method", "tv", "--lam", "0.05", "--iters", "60",
         "--geometry", "fan", "--source-origin", str(SO), "--source-detector", str(SD), "--detector-pixel", str(PIX),
         "--voxel-size", str(vox), "--out", str(tmp_path / "tv.h5"))
    shell = read_project(tmp_path / "tv.h5")
    assert Geometry.from_dict(shell.geometry) == g
    py = reconstruct(A, y, method="tv", lam=0.05, n_iter=60, progress=False).mean[0, 0].numpy()
    assert np.linalg.norm(shell.reconstruction["mean"] - py) <= 0.01 * np.linalg.norm(py)
    beam = shell.provenance["preprocessing"]["beam"]
    assert beam["kind"] == "fan" and beam["origin_detector"] == pytest.approx(SD - SO)


def test_npy_with_angles_and_auto_centre(tmp_path, capsys):
    angles = np.linspace(0, np.pi, 90, endpoint=False)
    g = parallel_beam((2, 48, 48), angles, det_shape=(2, 64), center_offset=5.0)
    vol = np.stack([_disc(48, 1.0)] * 2)
    y = Projector(g, "torch")(torch.from_numpy(vol)[None, None])[0, 0].numpy()
    np.save(tmp_path / "s.npy", y)
    assert main(["reconstruct", str(tmp_path / "s.npy"), "--angles", "0:178:90deg", "--method", "fbp",
                 "--out", str(tmp_path / "a.h5")]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "looks +5" in err  # no centre given: the cheap check warns
    out = _run(capsys, "reconstruct", str(tmp_path / "s.npy"), "--angles", "0:178:90deg", "--method", "fbp",
               "--center-offset", "auto", "--rings", "sort", "--out", str(tmp_path / "b.h5"))
    assert out["center"]["offset_px"] == pytest.approx(5.0, abs=0.3)
    pre = read_project(tmp_path / "b.h5").provenance["preprocessing"]
    assert pre["center"]["rule"] == "auto" and pre["rings"][0]["step"] == "sort"
    assert read_project(tmp_path / "b.h5").geometry["center_offset"] == pytest.approx(5.0, abs=0.3)


@pytest.mark.parametrize("extra, msg", [
    (["--geometry", "fan", "--source-origin", "400", "--source-detector", "550", "--origin-detector", "100",
      "--detector-pixel", "0.2"], "give two of the three"),
    (["--geometry", "fan", "--source-origin", "400", "--detector-pixel", "0.2"], "needs --source-detector"),
    (["--geometry", "cone", "--source-origin", "400", "--origin-detector", "100"], "needs --detector-pixel"),
    (["--source-origin", "400"], "does not apply to parallel beam"),
    (["--geometry", "fan", "--source-origin", "400", "--origin-detector", "1", "--detector-pixel", "1",
      "--center-offset", "auto"], "auto is for parallel beam"),
])
def test_beam_refusals_before_any_work(tmp_path, capsys, extra, msg):
    np.savez(tmp_path / "s.npz", sinogram=np.zeros((4, 8)), angles_deg=np.arange(4.0))
    assert main(["reconstruct", str(tmp_path / "s.npz"), "--method", "fbp", "--out", str(tmp_path / "o.h5"),
                 *extra]) == 2
    assert msg in capsys.readouterr().err and not (tmp_path / "o.h5").exists()


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    np.save(tmp_path / "bare.npy", np.zeros((4, 8)))
    (tmp_path / "junk.npz").write_text("junk")
    for argv, msg in ((["bare.npy"], "has no angles"), (["junk.npz"], "no zip signature"),
                      (["bare.npy", "--angles", "0:60:4grad"], "unknown unit"),
                      (["bare.npy", "--angles", "0:60:4", "--rings", "nope"], "unknown step")):
        code = None
        try:
            code = main(["reconstruct", str(tmp_path / argv[0]), *argv[1:], "--method", "fbp",
                         "--out", str(tmp_path / "o.h5")])
        except SystemExit as exit_:  # argparse's own refusals
            code = exit_.code
        err = capsys.readouterr().err
        assert code == 2 and msg in err, (argv, err)


def test_multi_row_fan_is_refused_with_the_way_out(tmp_path, capsys):
    np.savez(tmp_path / "s.npz", sinogram=np.zeros((4, 3, 8)), angles_deg=np.arange(4.0))
    assert main(["reconstruct", str(tmp_path / "s.npz"), "--method", "fbp", "--geometry", "fan", "--source-origin",
                 "400", "--origin-detector", "100", "--detector-pixel", "1", "--out", str(tmp_path / "o.h5")]) == 2
    assert "--rows R:R+1" in capsys.readouterr().err


def test_i13_in_one_command(shared_data, tmp_path, capsys):
    out = _run(capsys, "reconstruct", str(shared_data / "diamond_i13_24737" / "24737_raw.npz"), "--method", "fbp",
               "--center-offset", "auto", "--air-region", "0:20,0:20", "--rows", "60:64",
               "--out", str(tmp_path / "i13.h5"))
    assert abs(out["center"]["column"] - 86) <= 1.0
