"""Interval coverage and its recalibration on draws whose truth is known."""

import pytest
import torch

from tomodiff.recon.calibration import coverage, fit_scale, interval


def test_coverage_of_honest_gaussian_intervals_matches_nominal():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    std = 0.1 + torch.rand(n, generator=g, dtype=torch.float64)
    truth = torch.zeros(n, dtype=torch.float64)
    mean = truth + std * torch.randn(n, generator=g, dtype=torch.float64)
    for p in (0.5, 0.9, 0.99):
        assert coverage(mean, std, truth, p) == pytest.approx(p, abs=4 * (p * (1 - p) / n) ** 0.5)
    lo, hi = interval(mean, std, 0.9)
    assert float(((truth >= lo) & (truth <= hi)).double().mean()) == pytest.approx(coverage(mean, std, truth, 0.9))


def test_overconfident_spread_is_recalibrated_by_the_fitted_scale():
    g = torch.Generator().manual_seed(1)
    n = 100_000
    std = torch.full((n,), 0.1, dtype=torch.float64)
    truth = torch.zeros(n, dtype=torch.float64)
    mean = 10 * std * torch.randn(n, generator=g, dtype=torch.float64)   # errors 10x the claimed std
    assert coverage(mean, std, truth, 0.9) < 0.2
    fit_half = fit_scale(mean[: n // 2], std[: n // 2], truth[: n // 2], 0.9)
    assert fit_half == pytest.approx(10, rel=0.05)
    assert coverage(mean[n // 2:], std[n // 2:], truth[n // 2:], 0.9, fit_half) == pytest.approx(0.9, abs=0.01)


def test_bad_probability():
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        coverage(torch.zeros(2), torch.ones(2), torch.zeros(2), 1.0)
