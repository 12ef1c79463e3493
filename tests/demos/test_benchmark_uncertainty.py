"""The benchmark's coverage and seam measurement on a tiny volume with an exact Gaussian denoiser."""

import pytest
import torch

from tomodiff.demos.benchmark import seam_and_coverage, seam_coverage_markdown


def _gaussian(mean=0.3, var=0.05):
    def D(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return mean + var / (var + s * s) * (x - mean)

    return D


def test_seam_and_coverage_measures_and_reports():
    d = seam_and_coverage("foam:1:16", _gaussian(), method="dds", views=6, samples=3, slices=4, seam_slices=16,
                          slab=8, overlap=2, k=2.0)
    assert d["plan"] == [(0, 8), (6, 14), (12, 16)]
    assert 0 <= d["coverage_90_raw"] <= d["coverage_90_calibrated"] <= 1
    assert d["seam_ratio"] > 0 and d["seam_ratio_truth"] > 0
    text = seam_coverage_markdown([d])
    assert "| foam:1:16 | dds | 6 | 3 |" in text and ("met" in text or "missed" in text)
    with pytest.raises(ValueError, match="at least 2 samples"):
        seam_and_coverage("foam:1:16", _gaussian(), samples=1)



def test_benchmark_command_refuses_uncertainty_without_diffusion(tmp_path, capsys):
    from tomodiff.cli import main

    code = main(["benchmark", "--set", "foam:1:16", "--views", "8", "--methods", "fbp", "--uncertainty", "foam:1:16",
                 "--out", str(tmp_path / "b")])
    assert code != 0 and "--uncertainty does not apply without a diffusion method" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
