"""The CT demo's figure: every panel with row 0 at the top, and std panels that say how many
samples they come from; its metrics use the reference's own range."""

from __future__ import annotations

import numpy as np
import pytest

from tomodiff.demos.ct_demo import MethodResult, save_figure


def test_figure_rows_start_at_the_top_and_std_names_its_samples(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    calls, titles = [], []
    imshow, set_title = Axes.imshow, Axes.set_title

    def spy_imshow(self, X, *args, **kwargs):
        calls.append(kwargs.get("origin"))
        return imshow(self, X, *args, **kwargs)

    def spy_title(self, label, *args, **kwargs):
        titles.append(label)
        return set_title(self, label, *args, **kwargs)

    monkeypatch.setattr(Axes, "imshow", spy_imshow)
    monkeypatch.setattr(Axes, "set_title", spy_title)
    ref = np.zeros((4, 8, 8), np.float32)
    ref[:, 0, :] = 1.0  # row 0 bright: drawn at the top with origin="upper"
    result = MethodResult("pigdm", ref, np.full_like(ref, 0.1), psnr=30.0, ssim=0.9, seconds=1.0, nfe=10,
                          peak_memory_mb=1.0, residual=0.1, n_samples=4)
    path = save_figure(ref, [result], tmp_path / "demo.png")
    assert path.stat().st_size > 1000
    assert calls and set(calls) == {"upper"}
    assert any("std" in t and "4 samples" in t for t in titles), titles


def test_demo_scores_with_the_references_range(tmp_path):
    from tomodiff.demos.ct_demo import run_demo

    results, setup, ref = run_demo(phantom="foam:1:16", views=8, methods=("fbp",), out_dir=tmp_path, progress=False)
    assert setup["metrics_data_range"] == pytest.approx(float(ref.max() - ref.min()))
    from tomodiff.recon import psnr

    assert results[0].psnr == pytest.approx(float(psnr(results[0].mean, ref, data_range=float(np.ptp(ref)))))
