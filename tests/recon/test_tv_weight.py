"""TV's weight from the noise level (recon/tv_weight.py) and its wiring into ``method="tv"``."""

from __future__ import annotations

import math

import pytest
import torch

from tomodiff import methods
from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.recon import discrepancy_weight, reconstruct, tv
from tomodiff.recon.consistency import data_consistency


def _object():
    """A small 3D object with edges and two levels (4 slices of 32²), values in [0, 1]."""
    zz, yy, xx = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in (4, 32, 32)), indexing="ij")
    v = 0.5 * ((xx**2 + yy**2) < 0.55).float()
    v += 0.5 * (((xx - 0.2) ** 2 + (yy + 0.1) ** 2) < 0.08).float()
    v[:, 4:8, 20:26] = 0.2
    return v


@pytest.fixture(scope="module")
def scan():
    """``(A, clean y, sigma_y at 1%)``: the clean data, so that tests can add noise of any level."""
    v = _object()
    y, geometry, sigma = simulate_scan(v, views=8, noise=0.0)
    return Projector(geometry), y, 0.01 * float(y.max())


def _noisy(y, sigma, seed=0):
    return y + sigma * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))


def test_the_chosen_weight_meets_the_target(scan):
    A, clean, sigma = scan
    y = _noisy(clean, sigma)
    for target in (1.0, 0.8):
        lam, rec = discrepancy_weight(A, y, sigma, target=target)
        assert rec["rule"] == "discrepancy" and rec["reached"] and rec["lam"] == lam
        assert 1 <= rec["solves"] <= 12 and len(rec["trace"]) == rec["solves"]
        assert rec["chi2_per_m"] == pytest.approx(target, rel=0.1)  # the search's solution
        x = tv(A, y, lam=lam, n_iter=200, progress=False)  # the result from zero, as method="tv" runs it
        assert data_consistency(A, x, y, sigma)["chi2_per_m"] == pytest.approx(target, rel=0.2)
        # the old rule fits the noise on this object: the rule's weight is larger
        assert lam > methods.default_tv_weight(A)


def test_more_noise_gives_a_larger_weight(scan):
    A, clean, sigma = scan
    lams = [discrepancy_weight(A, _noisy(clean, k * sigma), k * sigma, target=0.8)[0] for k in (0.5, 1.0, 2.0)]
    assert lams[0] < lams[1] < lams[2], lams


def test_without_a_noise_level_the_old_rule_is_used(scan):
    A, clean, sigma = scan
    y = _noisy(clean, sigma)
    for unknown in (0.0, None):
        lam, rec = discrepancy_weight(A, y, unknown)
        assert lam == methods.default_tv_weight(A) == pytest.approx(methods.TV_LAM_PER_VIEW * 8)
        assert rec["rule"] == "0.006 x views" and rec["solves"] == 0 and "no noise level" in rec["note"]
    r = reconstruct(A, y, method="tv", n_iter=5, scale=None, progress=False)  # sigma_y defaults to 0
    assert r.provenance["tv_weight"]["rule"] == "0.006 x views"
    assert float(r.provenance["options"]["lam"]) == pytest.approx(methods.default_tv_weight(A))


def test_a_target_out_of_reach_returns_the_bracket_end_and_says_so(scan):
    A, clean, sigma = scan
    y = _noisy(clean, sigma)
    # σ_y claimed 100× too large: χ²/m stays far below the target however smooth the result
    lam, rec = discrepancy_weight(A, y, 100 * sigma, target=1.0, bracket=(1 / 4, 16.0))
    assert not rec["reached"] and lam == pytest.approx(16 * methods.default_tv_weight(A))
    assert "below the target" in rec["note"] and "bracket" in rec["note"]
    # σ_y claimed 100× too small: χ²/m stays above the target; the search stops where the fit levels
    # off, or at the bracket's low end, and never reports success
    lam, rec = discrepancy_weight(A, y, sigma / 100, target=1.0)
    assert not rec["reached"] and lam <= methods.default_tv_weight(A)
    assert "levels off" in rec["note"] or "above the target" in rec["note"]


def test_bad_arguments(scan):
    A, clean, sigma = scan
    with pytest.raises(ValueError, match="sigma_y must be finite and > 0"):
        discrepancy_weight(A, clean, -1.0)
    with pytest.raises(ValueError, match="bracket must contain 1"):
        discrepancy_weight(A, clean, sigma, bracket=(2.0, 8.0))
    with pytest.raises(ValueError, match="target must be finite and > 0"):
        discrepancy_weight(A, clean, sigma, target=0.0)


def test_method_tv_chooses_its_weight_from_a_known_noise_level(scan):
    A, clean, sigma = scan
    y = _noisy(clean, sigma)
    r = reconstruct(A, y, method="tv", sigma_y=sigma, scale=None, progress=False)
    w = r.provenance["tv_weight"]
    assert w["rule"] == "discrepancy" and w["target"] == methods.TV_CHI2_TARGET and w["reached"]
    assert float(r.provenance["options"]["lam"]) == w["lam"] and r.provenance["sigma_y"] == sigma
    assert w["result_chi2_per_m"] == pytest.approx(methods.TV_CHI2_TARGET, rel=0.2)
    # the recorded weight reproduces the result: the final solve runs from zero like tv(lam=...)
    assert torch.equal(r.mean, tv(A, y, lam=w["lam"], n_iter=200, progress=False))
    # a weight of the user's own wins, and provenance says so
    mine = reconstruct(A, y, method="tv", sigma_y=sigma, lam=0.3, n_iter=5, scale=None, progress=False)
    assert mine.provenance["tv_weight"] == {"rule": "given", "lam": 0.3, "units": w["units"]}
    assert float(mine.provenance["options"]["lam"]) == 0.3


def test_the_weight_is_chosen_on_the_scaled_problem(scan):
    """reconstruct() passes σ_y / s with y / s: the same scan in other units gets the same weight."""
    A, clean, sigma = scan
    y = _noisy(clean, sigma)
    one = reconstruct(A, y, method="tv", sigma_y=sigma, scale=None, progress=False)
    big = reconstruct(A, 50 * y, method="tv", sigma_y=50 * sigma, scale=50.0, progress=False)
    assert big.provenance["tv_weight"]["rule"] == one.provenance["tv_weight"]["rule"] == "discrepancy"
    assert big.provenance["tv_weight"]["lam"] == pytest.approx(one.provenance["tv_weight"]["lam"], rel=1e-6)
    assert torch.allclose(big.mean / 50, one.mean, atol=1e-5)


def test_the_search_can_be_cancelled_through_the_callback(scan):
    A, clean, sigma = scan
    y = _noisy(clean, sigma)
    seen = []

    def stop(done, total):
        seen.append((done, total))
        if len(seen) == 30:  # inside the weight search (done = 0 there)
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        reconstruct(A, y, method="tv", sigma_y=sigma, scale=None, progress=False, callback=stop)
    assert seen and all(d == 0 and t == 200 for d, t in seen)


# ------------------------------------------------------------------ the command line
def _sim(tmp_path):
    from tomodiff.cli import main

    scan = tmp_path / "scan.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(scan)]) == 0
    return scan


def test_cli_tv_takes_sigma_y_and_the_files_noise_level(tmp_path, capsys):
    from tomodiff.cli import main
    from tomodiff.io import read_project

    scan = _sim(tmp_path)
    recorded = read_project(scan).provenance["sigma_y"]
    runs = {"file": [], "given": ["--sigma-y", str(2 * recorded)], "none": ["--sigma-y", "0"]}
    prov = {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.h5"
        assert main(["reconstruct", str(scan), "--method", "tv", "--iters", "20", *extra, "--out", str(out),
                     "--json"]) == 0
        capsys.readouterr()
        prov[name] = read_project(out).provenance
    assert prov["file"]["sigma_y"] == pytest.approx(recorded)
    assert prov["file"]["tv_weight"]["rule"] == "discrepancy"
    assert prov["given"]["sigma_y"] == pytest.approx(2 * recorded)
    assert prov["given"]["tv_weight"]["lam"] > prov["file"]["tv_weight"]["lam"]
    assert prov["none"]["tv_weight"]["rule"] == "0.006 x views"
    assert math.isclose(float(prov["none"]["options"]["lam"]), methods.TV_LAM_PER_VIEW * 6)


def test_cli_refuses_sigma_y_where_it_has_no_use(tmp_path, capsys):
    from tomodiff.cli import main

    scan = _sim(tmp_path)
    capsys.readouterr()
    cases = (([str(scan), "--method", "sirt", "--sigma-y", "0.1"], "--sigma-y does not apply to --method sirt"),
             ([str(scan), "--method", "tv", "--stream", "--sigma-y", "0.1"], "the streaming path"),
             ([str(scan), "--method", "tv", "--lam", "0.1", "--sigma-y", "0.1"], "to --method tv with --lam"))
    for argv, text in cases:
        assert main(["reconstruct", *argv, "--out", str(tmp_path / "new.h5")]) == 2
        assert text in capsys.readouterr().err
    assert not (tmp_path / "new.h5").exists()
