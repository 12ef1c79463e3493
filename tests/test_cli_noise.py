"""`tomodiff reconstruct` without --sigma-y: σ_y from the counts of a simulated Poisson TIFF scan (the
issue's target: the default diffusion method's χ²/m in [0.5, 2]), from the sinogram's MAD for line
integrals and project files (in memory and on the streaming path), the rule printed and recorded, and
the --weights refusals."""

import json

import numpy as np
import pytest
import torch

from benchmarks.noise_from_counts import angle_spec, chest_volume, simulate_tiff_scan
from tomodiff.cli import main
from tomodiff.ct import Projector, parallel_beam
from tomodiff.io import ProjectData, read_project, write_project
from tomodiff.io.noise import estimate_sigma_y

GAIN, READ_NOISE = 2.0, 3.0  # ADU per photon; ADU (the simulator's defaults)


@pytest.fixture(scope="module")
def poisson_scan(tmp_path_factory):
    """ct_chest_64 slices 30–33 (×0.15 per pixel), 8 views, I0 1e4 photons, gain 2, 10 flats and darks."""
    return simulate_tiff_scan(tmp_path_factory.mktemp("poisson"), chest_volume(), views=8, I0=1e4, seed=0)


@pytest.fixture(scope="module")
def line_integrals(tmp_path_factory):
    """A noisy line-integral sinogram ``(A, V, U)`` (σ 0.01) as ``.npy`` and as a project file that
    records no noise level."""
    root = tmp_path_factory.mktemp("lines")
    vol = chest_volume(slice(30, 32))
    g = parallel_beam(vol.shape, np.deg2rad(np.linspace(0, 180, 8, endpoint=False)), det_shape=vol.shape[:2])
    y = Projector(g, backend="torch")(torch.from_numpy(np.ascontiguousarray(vol, np.float32))[None, None])[0, 0]
    y = (y.numpy() + 0.01 * np.random.default_rng(1).standard_normal(y.shape)).astype(np.float32)
    np.save(root / "s.npy", y)
    write_project(root / "p.h5", ProjectData(sinogram=y, geometry=g.to_dict()))  # no provenance: no sigma_y
    return root, 0.01


def _tiff_args(scan):
    return [str(scan["proj"]), "--flats", str(scan["flats"]), "--darks", str(scan["darks"]), "--angles", scan["angles"]]


def _run(capsys, *argv):
    rc = main(["reconstruct", *map(str, argv), "--threads", "1", "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return json.loads(cap.out), cap.err


def test_sigma_from_the_counts_gives_the_default_diffusion_method_chi2_near_1(poisson_scan, tmp_path, capsys):
    """The issue's target, with the truth's own χ²/m as the check that the noise model is right."""
    from tomodiff.io.problem import load_problem

    scan = poisson_scan
    problem = load_problem(scan["proj"], flats=str(scan["flats"]), darks=str(scan["darks"]), angles=scan["angles"])
    truth = float(((problem.y[0, 0].double().numpy() - scan["p"]) ** 2).mean()) / scan["sigma"] ** 2
    assert 0.85 < truth < 1.15, truth  # the delta-method variance describes the simulated noise

    out, err = _run(capsys, *_tiff_args(scan), "--method", "auto", "--out", tmp_path / "auto.h5")
    assert "sigma_y from the counts" in err
    noise = out["noise"]
    assert noise["rule"] == "counts" and noise["weights"] == "none"
    assert noise["sigma_y"] == pytest.approx(scan["sigma"], rel=0.15)
    assert 0.5 <= noise["chi2_per_m"] <= 2.0, noise
    prov = read_project(tmp_path / "auto.h5").provenance
    assert prov["noise"]["rule"] == "counts" and prov["noise"]["chi2_per_m"] == pytest.approx(noise["chi2_per_m"])
    model = prov["preprocessing"]["noise_model"]  # the fitted gain and its rule, with the frames it came from
    assert model["gain_rule"] == "flats" and model["gain"] == pytest.approx(GAIN, rel=0.15)
    assert (model["n_flats"], model["n_darks"]) == (10, 10)
    assert model["dark_variance"] == pytest.approx(READ_NOISE ** 2 + 1 / 12, rel=0.25)


def test_tv_and_sirt_take_pwls_weights_from_the_counts(poisson_scan, tmp_path, capsys):
    for method in ("tv", "sirt"):
        out, _ = _run(capsys, *_tiff_args(poisson_scan), "--method", method, "--out", tmp_path / f"{method}.h5")
        assert out["noise"]["rule"] == "counts" and out["noise"]["weights"] == "pwls"
        assert 0.3 < out["noise"]["chi2_per_m"] < 3, out["noise"]
        assert read_project(tmp_path / f"{method}.h5").provenance["noise"]["weights"] == "pwls"


@pytest.mark.parametrize("name, extra", [("s.npy", ["--angles", angle_spec(8)]), ("p.h5", [])])
def test_without_counts_sigma_comes_from_the_sinogram_mad(line_integrals, tmp_path, capsys, name, extra):
    root, sigma = line_integrals
    out, err = _run(capsys, root / name, *extra, "--method", "tv", "--iters", "30", "--out", tmp_path / "tv.h5")
    line = next(ln for ln in err.splitlines() if "sigma_y" in ln)
    assert "from the sinogram" in line and "MAD" in line
    value = float(line.rsplit("=", 1)[1])
    # the estimator's number (its accuracy: tests/io/test_noise.py); here it is high, 0.026 for σ 0.01:
    # a 64-column real-CT sinogram has fine structure of its own (0.024 without noise)
    assert value == pytest.approx(estimate_sigma_y(np.load(root / "s.npy")), rel=1e-3) and value > sigma
    prov = read_project(tmp_path / "tv.h5").provenance
    if name == "s.npy":  # measured data: the noise record (project files keep their provenance as it was)
        assert out["noise"]["rule"] == prov["noise"]["rule"] == "sinogram MAD"
        assert out["noise"]["weights"] == "none" and "noise_model" not in prov["preprocessing"]


def test_weights_pwls_without_counts_is_refused_in_one_line(line_integrals, tmp_path, capsys):
    root, _ = line_integrals
    rc = main(["reconstruct", str(root / "s.npy"), "--angles", angle_spec(8), "--method", "sirt", "--weights", "pwls",
               "--out", str(tmp_path / "o.h5")])
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert rc == 2 and len(errors) == 1 and "--weights pwls needs the counts" in errors[0]
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("method", ["auto", "dds"])
def test_weights_are_refused_for_diffusion_methods(poisson_scan, tmp_path, capsys, method):
    rc = main(["reconstruct", *_tiff_args(poisson_scan), "--method", method, "--weights", "none",
               "--out", str(tmp_path / "o.h5")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "--weights does not apply" in err and "sirt, cgls and tv only" in err
    assert not (tmp_path / "o.h5").exists()


def test_streaming_estimates_sigma_from_the_sinogram_and_records_it(line_integrals, tmp_path, capsys):
    """--stream used to assume 1% of max|y|; now the sinogram's MAD on a subsample of rows."""
    root, _ = line_integrals
    out, err = _run(capsys, root / "p.h5", "--stream", "--method", "auto", "--samples", "1", "--steps", "4",
                    "--out", tmp_path / "s.h5")
    assert "sigma_y from the sinogram: MAD" in err and "1% of max" not in err
    noise = read_project(tmp_path / "s.h5").provenance["noise"]
    assert noise["rule"] == out["noise"]["rule"] == "sinogram MAD" and noise["rows"] == [0, 1]
    assert noise["sigma_y"] == pytest.approx(estimate_sigma_y(np.load(root / "s.npy")))  # both rows: all of them
    given, _ = _run(capsys, root / "p.h5", "--stream", "--method", "auto", "--samples", "1", "--steps", "4",
                    "--sigma-y", "0.02", "--out", tmp_path / "g.h5")
    assert given["noise"] == {"rule": "given", "sigma_y": 0.02}
