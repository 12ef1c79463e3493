"""χ²/m of a reconstruction, its warning, and the guard that keeps results as data-consistent as a reference."""

import warnings

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.operators import GaussianNoise, simulate
from tomodiff.recon.consistency import DataConsistencyWarning, data_consistency, guard, warn_if_inconsistent


@pytest.fixture(scope="module")
def scan():
    geom = parallel_beam((4, 16, 16), np.linspace(0, np.pi, 6, endpoint=False), det_shape=(4, 24))
    A = Projector(geom, backend="torch")
    x = torch.rand((1, 1, 4, 16, 16), generator=torch.Generator().manual_seed(0))
    y = simulate(A, x, GaussianNoise(0.1), generator=torch.Generator().manual_seed(1))
    return A, x, y


def test_truth_gives_chi2_near_one_per_view(scan):
    A, x, y = scan
    dc = data_consistency(A, x, y, 0.1)
    m = y.numel()
    assert abs(dc["chi2_per_m"] - 1) < 4 * (2 / m) ** 0.5          # χ²_m/m has std sqrt(2/m)
    assert len(dc["chi2_per_view"]) == 6 and dc["sigma_y"] == 0.1
    assert np.mean(dc["chi2_per_view"]) == pytest.approx(dc["chi2_per_m"])
    # the wrong noise level scales it by the squared ratio
    assert data_consistency(A, x, y, 0.2)["chi2_per_m"] == pytest.approx(dc["chi2_per_m"] / 4)


def test_no_noise_scale_gives_none_and_bad_sigma_is_refused(scan):
    A, x, y = scan
    assert data_consistency(A, x, y, 0.0) == {"chi2_per_m": None, "chi2_per_view": None, "sigma_y": 0.0}
    with pytest.raises(ValueError, match="sigma_y must be finite and >= 0"):
        data_consistency(A, x, y, -1.0)


def test_warning_only_when_far_above_one(scan):
    A, x, y = scan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_inconsistent(data_consistency(A, x, y, 0.1))
    with pytest.warns(DataConsistencyWarning, match=r"disagrees with the data: chi2/m = .*worst view"):
        assert warn_if_inconsistent(data_consistency(A, torch.zeros_like(x), y, 0.1))


def test_guard_brings_the_mean_to_the_reference_residual(scan):
    A, x, y = scan
    samples = 0.3 * torch.rand((3, *x.shape), generator=torch.Generator().manual_seed(2))
    out, info = guard(A, y, samples, 0.1, reference=x)
    assert not info["fallback"] and info["cg_iters"] >= 1
    assert data_consistency(A, out.mean(0), y, 0.1)["chi2_per_m"] <= data_consistency(A, x, y, 0.1)["chi2_per_m"]
    # already consistent enough: untouched
    same, info = guard(A, y, x.unsqueeze(0).repeat(2, 1, 1, 1, 1, 1), 0.1, reference=torch.zeros_like(x))
    assert info["cg_iters"] == 0 and torch.equal(same[0], x)
    # cannot get there: falls back to the reference with a warning
    with pytest.warns(DataConsistencyWarning, match="returning the reference"):
        back, info = guard(A, y, samples, 0.1, reference=x, max_iter=0)
    assert info["fallback"] and torch.equal(back[1], x)
