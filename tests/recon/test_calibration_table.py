"""The calibration table: which runs it covers, what a run's std becomes (k·std_raw), and the label of a
run it does not cover — in the library, the in-memory project file and the streamed file."""

import h5py
import numpy as np
import pytest
import torch

from tomodiff import methods
from tomodiff.ct import Projector, parallel_beam
from tomodiff.io import ProjectData, read_project, write_project
from tomodiff.io.problem import Problem
from tomodiff.operators import GaussianNoise, simulate
from tomodiff.recon import calibration, reconstruct
from tomodiff.recon.calibration import (N_SAMPLES_FITTED, RUNS, TABLE, fit_scale, lookup, sample_count_factor,
                                        spearman)
from tomodiff.recon.report import project_data


class GaussPrior:
    """An exact Gaussian denoiser N(0.3, 0.05·I) with a prior's name, as shipped priors carry it."""

    info = {"name": "gauss-test", "sha256": None}

    def denoiser(self, x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return 0.3 + 0.05 / (0.05 + s * s) * (x - 0.3)


@pytest.fixture
def fitted(monkeypatch):
    """The table with one more entry: auto with the Gaussian test prior at 8 views, k 3.0."""
    monkeypatch.setitem(TABLE, ("auto", "gauss-test", 8), 3.0)
    return 3.0


@pytest.fixture(scope="module")
def problem():
    Z, N = 4, 16
    geom = parallel_beam((Z, N, N), np.linspace(0, np.pi, 8, endpoint=False), det_shape=(Z, 24))
    A = Projector(geom, backend="torch")
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, N), torch.linspace(-1, 1, N), indexing="ij")
    x = ((xx**2 + yy**2) < 0.6).float().expand(Z, N, N)[None, None].contiguous()
    y = simulate(A, x, GaussianNoise(0.05), generator=torch.Generator().manual_seed(0))
    return A, x, y


def _auto(A, y, prior, **kw):
    # auto's own 20 steps: other steps would be another configuration, not calibrated
    return reconstruct(A, y, method="auto", prior=prior, n_samples=3, sigma_y=0.05, slab=None, progress=False, **kw)


def test_the_registry_defaults_are_what_the_table_was_fitted_with():
    """If a default changes (as pigdm's Jacobian did), this fails: refit (benchmarks/calibration.py)."""
    for label in ("auto", "pigdm", "cfg"):
        k, record = lookup(label, methods.get(label).prior or "ct-slice", views=8)
        assert record["calibrated"] and k == TABLE[(label, record["prior"], 8)] > 1, record
    for views in (4, 8, 16):
        assert lookup("auto", "ct-slice", views=views)[1]["views_fitted"] == views
    assert set(RUNS) == {"auto", "pigdm", "cfg"}


def test_lookup_nearest_views_samples_and_what_is_not_calibrated():
    k8 = TABLE[("auto", "ct-slice", 8)]
    k, r = lookup("auto", "ct-slice", views=6)
    assert k == k8 and r["views_fitted"] == 8 and not r["validated"] and "k of 8 views" in r["note"]
    k, r = lookup("auto", "ct-slice", views=8, n_samples=8)
    assert k == pytest.approx(k8 * sample_count_factor(8)) and k < k8 and r["n_samples_fitted"] == N_SAMPLES_FITTED
    for args, kw, why in ((("pigdm", "slice-64"), {"views": 8}, "not calibrated for pigdm with slice-64"),
                          (("auto", "ct-slice"), {"views": 60}, "60 views; fitted at 4, 8, 16"),
                          (("auto", "ct-slice"), {"views": 8, "options": {"sigma_start": 0.5}}, "dds (auto with sigma_start=0.5)"),
                          (("auto", "ct-slice"), {"views": 8, "steps": 50}, "steps=50"),
                          (("dps", "ct-slice"), {"views": 8}, "not calibrated for dps with ct-slice"),
                          (("auto", None), {"views": 8}, "not calibrated for auto with this prior")):
        k, r = lookup(*args, **kw)
        assert k == 1.0 and r["calibrated"] is False and r["note"].startswith("raw sample spread, not calibrated")
        assert why in r["note"], r["note"]


def test_retrained_weights_are_not_calibrated():
    prior = type("P", (), {"info": {"name": "ct-slice", "sha256": "0" * 64}})()
    k, r = lookup("auto", prior, views=8)
    assert k == 1.0 and "other weights" in r["note"]


def test_sample_count_factor_matches_monte_carlo():
    """Errors c·σ·z, n samples of spread σ: the k fitted at n follows the Student-t ratio."""
    g = np.random.default_rng(0)
    m = 200_000
    truth = np.zeros(m)
    ks = {}
    for n in (3, 4, 8):
        samples = 0.5 * g.standard_normal((n, m))          # the sampler's spread σ = 0.5
        mean = samples.mean(0) + 2.0 * g.standard_normal(m)  # an error 4σ the sampler does not see
        ks[n] = fit_scale(mean, samples.std(0, ddof=1), truth)
    for n in (3, 8):
        assert ks[n] / ks[4] == pytest.approx(sample_count_factor(n), rel=0.03)


def test_spearman_is_invariant_to_k():
    g = np.random.default_rng(1)
    s = g.random(1000)
    e = s * g.standard_normal(1000)
    assert spearman(s, e) == pytest.approx(spearman(5 * s, e)) and spearman(s, e) > 0.3


def test_reconstruct_std_is_k_times_std_raw(problem, fitted):
    A, _, y = problem
    r = _auto(A, y, GaussPrior())
    rec = r.calibration
    assert rec["calibrated"] and rec["k"] == pytest.approx(fitted * sample_count_factor(3))
    assert torch.allclose(r.std, rec["k"] * r.std_raw) and (r.std_raw > 0).all()
    assert r.provenance["calibration"] is rec and "gauss-test" in rec["note"]


def test_uncalibrated_run_keeps_the_raw_spread_and_says_so(problem):
    A, _, y = problem
    r = _auto(A, y, GaussPrior())  # no table entry for this prior
    assert torch.equal(r.std, r.std_raw)
    assert r.calibration["calibrated"] is False and r.calibration["k"] == 1.0
    assert r.calibration["note"] == "raw sample spread, not calibrated for auto with gauss-test"
    plain = reconstruct(A, y, method="pigdm", prior=GaussPrior().denoiser, steps=2, n_samples=2, sigma_y=0.05,
                        slab=None, progress=False)
    assert plain.calibration["note"] == "raw sample spread, not calibrated for pigdm (steps=2) with this prior"
    assert reconstruct(A, y, method="fbp", progress=False).calibration is None


def test_project_file_std_is_k_times_std_raw_with_attributes(problem, fitted, tmp_path):
    """What `tomodiff reconstruct` writes (recon/report.py): std = k·std_raw, both stored, k in the attributes."""
    A, x, y = problem
    r = _auto(A, y, GaussPrior())
    data, _ = project_data(r, Problem(y=y, geometry=A.geometry), source="test")
    write_project(tmp_path / "r.h5", data)
    back = read_project(tmp_path / "r.h5")
    std, raw = back.reconstruction["std"], back.reconstruction["std_raw"]
    k = fitted * sample_count_factor(3)
    np.testing.assert_allclose(std, k * raw, rtol=1e-5)
    assert back.calibration["k"] == pytest.approx(k) and back.calibration["calibrated"]
    with h5py.File(tmp_path / "r.h5", "r") as f:
        attrs = f["reconstruction/std"].attrs
        assert attrs["calibrated"] and attrs["k"] == pytest.approx(k) and "training" in attrs["fitted_on"]
        assert attrs["views_fitted"] == 8 and attrs["n_samples"] == 3 and "calibration_json" in attrs


def test_streamed_file_std_is_k_times_std_raw(problem, fitted, tmp_path):
    from tomodiff.recon.streamed import reconstruct_file

    A, x, y = problem
    src = tmp_path / "scan.h5"
    write_project(src, ProjectData(sinogram=y[0, 0].numpy(), geometry=A.geometry, reference=x[0, 0].numpy()))
    kw = dict(prior=GaussPrior(), n_samples=3, sigma_y=0.05, slab=8, progress=False)
    summary = reconstruct_file(src, tmp_path / "out.h5", method="auto", **kw)
    back = read_project(tmp_path / "out.h5")
    k = fitted * sample_count_factor(3)
    np.testing.assert_allclose(back.reconstruction["std"], k * back.reconstruction["std_raw"], rtol=1e-5)
    assert summary["std_calibration"]["k"] == pytest.approx(k) and back.calibration["calibrated"]
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["reconstruction/std"].attrs["k"] == pytest.approx(k)
    # without the table entry: the same spread, labelled raw
    calibration.TABLE.pop(("auto", "gauss-test", 8))
    reconstruct_file(src, tmp_path / "raw.h5", method="auto", **kw)
    raw = read_project(tmp_path / "raw.h5")
    np.testing.assert_array_equal(raw.reconstruction["std"], raw.reconstruction["std_raw"])
    np.testing.assert_allclose(raw.reconstruction["std_raw"], back.reconstruction["std_raw"], rtol=1e-6)
    assert raw.calibration["note"] == "raw sample spread, not calibrated for auto with gauss-test"
    with h5py.File(tmp_path / "raw.h5", "r") as f:
        assert not f["reconstruction/std"].attrs["calibrated"] and f["reconstruction/std"].attrs["k"] == 1.0


def test_a_limited_arc_or_fan_beam_keeps_k_but_is_not_validated():
    from tomodiff.ct import fan_beam

    k8 = TABLE[("auto", "ct-slice", 8)]
    full = parallel_beam((4, 16, 16), np.linspace(0, np.pi, 8, endpoint=False))
    arc = parallel_beam((4, 16, 16), np.linspace(0, np.pi / 2, 8, endpoint=False))
    fan = fan_beam((16, 16), np.linspace(0, 2 * np.pi, 8, endpoint=False), (24,), 40.0, 20.0)
    k, r = lookup("auto", "ct-slice", geometry=full)
    assert k == k8 and r["views"] == 8 and r["validated"]
    k, r = lookup("auto", "ct-slice", geometry=arc)
    assert k == k8 and not r["validated"] and "fitted on full arcs, this scan covers 90°" in r["note"]
    k, r = lookup("auto", "ct-slice", geometry=fan)
    assert k == k8 and not r["validated"] and "this scan is fan beam" in r["note"]
