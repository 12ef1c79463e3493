"""Physical units through the command line: a raw scan with --pixel-size/--voxel-size comes back in
attenuation per length unit; metrics use the reference's own range and say so."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from tomodiff.cli import main
from tomodiff.ct import Projector, parallel_beam
from tomodiff.io import read_project

MU = 0.02  # per mm, soft tissue
PIXEL = 0.5  # mm


@pytest.fixture(scope="module")
def raw_scan(tmp_path_factory):
    """A DXchange scan of a cylinder (μ = 0.02/mm, radius 9 mm) on a 0.5 mm detector, noise-free counts."""
    d = tmp_path_factory.mktemp("units")
    angles = np.linspace(0, np.pi, 90, endpoint=False)
    g = parallel_beam((4, 48, 48), angles, det_shape=(4, 64), voxel_size=PIXEL, det_spacing=PIXEL)
    yy, xx = torch.meshgrid(*(torch.arange(48, dtype=torch.float64) - 23.5,) * 2, indexing="ij")
    vol = (MU * ((yy**2 + xx**2) * PIXEL**2 < 9.0**2).double()).expand(4, 48, 48)
    p = Projector(g, backend="torch")(vol[None, None].contiguous())[0, 0].numpy()  # line integrals, mm · 1/mm
    with h5py.File(d / "scan.h5", "w") as f:
        f["exchange/data"] = (1000.0 * np.exp(-p)).astype(np.float32)
        f["exchange/data_white"] = np.full((2, 4, 64), 1000.0, np.float32)
        f["exchange/data_dark"] = np.zeros((2, 4, 64), np.float32)
        f["exchange/theta"] = np.rad2deg(angles)
    return d / "scan.h5"


def _centre(path) -> float:
    mean = read_project(path).reconstruction["mean"]
    z, n = mean.shape[0] // 2, mean.shape[1]
    c = slice(n // 2 - n // 8, n // 2 + n // 8)
    return float(mean[z, c, c].mean())


def test_pixel_size_gives_attenuation_per_length(raw_scan, tmp_path, capsys):
    per_pixel, per_mm, coarse = tmp_path / "px.h5", tmp_path / "mm.h5", tmp_path / "coarse.h5"
    assert main(["reconstruct", str(raw_scan), "--method", "fbp", "--out", str(per_pixel), "--json"]) == 0
    assert main(["reconstruct", str(raw_scan), "--method", "fbp", "--pixel-size", str(PIXEL), "--out", str(per_mm),
                 "--json"]) == 0
    assert main(["reconstruct", str(raw_scan), "--method", "fbp", "--pixel-size", str(PIXEL), "--voxel-size", "1.0",
                 "--out", str(coarse), "--json"]) == 0
    capsys.readouterr()
    assert _centre(per_pixel) == pytest.approx(MU * PIXEL, rel=0.03)  # per pixel
    assert _centre(per_mm) == pytest.approx(MU, rel=0.03)             # per mm
    assert _centre(coarse) == pytest.approx(MU, rel=0.03)             # 1 mm voxels: still per mm
    assert read_project(coarse).reconstruction["mean"].shape == (2, 32, 32)
    units = read_project(per_mm).provenance["units"]
    assert units["pixel_size"] == PIXEL and units["voxel_size"] == PIXEL


def test_metrics_use_the_references_range_in_any_units(tmp_path, capsys):
    """The same phantom in [0, 1] and in 1/mm-like units (×0.02) scores the same PSNR, and the
    output records the range used (the issue: 53.3 dB instead of 22.8 dB with a fixed range of 1)."""
    scores = {}
    for k in (1.0, 0.02):
        vol = np.load(_phantom(tmp_path, k))
        sim, rec = tmp_path / f"sim{k}.h5", tmp_path / f"rec{k}.h5"
        assert main(["simulate", "--volume", str(tmp_path / f"vol{k}.npy"), "--views", "8", "--out", str(sim)]) == 0
        capsys.readouterr()
        assert main(["reconstruct", str(sim), "--method", "sirt", "--out", str(rec), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["data_range"] == pytest.approx(float(vol.max() - vol.min()), rel=1e-6)
        metrics = read_project(rec).provenance["metrics"]
        assert metrics["data_range"] == pytest.approx(summary["data_range"])
        assert "reference" in metrics["data_range_rule"]
        scores[k] = summary["psnr"]
    assert scores[0.02] == pytest.approx(scores[1.0], abs=0.05)


def _phantom(tmp_path, k):
    from tomodiff.io.volumes import load_volume

    vol, _ = load_volume("shepp_logan:3:16")
    path = tmp_path / f"vol{k}.npy"
    np.save(path, vol.numpy() * k)
    return path


def test_diffusion_output_says_how_many_samples_the_std_has(tmp_path, capsys):
    sim, rec = tmp_path / "sim.h5", tmp_path / "rec.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(sim)]) == 0
    capsys.readouterr()
    assert main(["reconstruct", str(sim), "--method", "pigdm", "--prior", "slice-64", "--steps", "2",
                 "--out", str(rec)]) == 0
    out = capsys.readouterr().out
    # the default is 4 samples; 2 steps of slice-64 were never calibrated, and the line says so
    assert "std: raw sample spread, not calibrated for pigdm (steps=2) with slice-64; 4 samples" in out
    data = read_project(rec)
    assert data.provenance["std_samples"] == 4 and data.provenance["n_samples"] == 4
    assert data.reconstruction["std"].shape == (16, 16, 16)
    np.testing.assert_array_equal(data.reconstruction["std"], data.reconstruction["std_raw"])
    assert data.calibration["calibrated"] is False


def test_a_calibrated_std_is_written_and_printed_as_such(tmp_path, capsys, monkeypatch):
    """A table entry for this run (pigdm, 2 steps, slice-64, 6 views): the file's std is k·std_raw."""
    from tomodiff.recon import calibration

    monkeypatch.setitem(calibration.RUNS, "pigdm", {**calibration.RUNS["pigdm"], "steps": 2})
    monkeypatch.setitem(calibration.TABLE, ("pigdm", "slice-64", 8), 2.5)
    monkeypatch.setitem(calibration.PRIOR_WEIGHTS, "slice-64", None)
    sim, rec = tmp_path / "sim.h5", tmp_path / "rec.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(sim)]) == 0
    capsys.readouterr()
    assert main(["reconstruct", str(sim), "--method", "pigdm", "--prior", "slice-64", "--steps", "2",
                 "--out", str(rec), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    k = summary["std_calibration"]["k"]
    assert k == pytest.approx(2.5) and summary["std_calibration"]["views_fitted"] == 8
    assert summary["std_calibration"]["note"].startswith("calibrated, k 2.50 × the spread of 4 samples")
    data = read_project(rec)
    np.testing.assert_allclose(data.reconstruction["std"], k * data.reconstruction["std_raw"], rtol=1e-5)
    with h5py.File(rec, "r") as f:
        assert f["reconstruction/std"].attrs["k"] == pytest.approx(k) and f["reconstruction/std"].attrs["calibrated"]


def test_a_simulated_scan_is_scaled_by_its_recorded_mu_max(tmp_path, capsys):
    sim, rec = tmp_path / "sim.h5", tmp_path / "rec.h5"
    np.save(tmp_path / "v.npy", np.load(_phantom(tmp_path, 0.02)))
    assert main(["simulate", "--volume", str(tmp_path / "v.npy"), "--views", "6", "--out", str(sim)]) == 0
    assert read_project(sim).provenance["mu_max"] == pytest.approx(0.02)
    assert main(["reconstruct", str(sim), "--method", "tv", "--iters", "5", "--out", str(rec), "--json"]) == 0
    capsys.readouterr()
    scale = read_project(rec).provenance["scale"]
    assert scale["value"] == pytest.approx(0.02) and "mu_max" in scale["rule"]
