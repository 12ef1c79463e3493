"""The render demo at a tiny size: the procedural fallback, its files (napari-readable), the CLI's checks."""

import math

import pytest
import torch

from tomodiff.demos import render_demo
from tomodiff.napari.layers import project_layers


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _denoiser(x, sigma):  # exact for a N(0.2, 0.1²) prior per voxel: cheap stand-in for a network
    s2 = sigma.view(-1, *([1] * (x.dim() - 1))) ** 2
    return (0.01 * x + s2 * 0.2) / (0.01 + s2)


def test_fallback_phantom_when_the_corpus_is_absent(tmp_path):
    density, source = render_demo.load_density(16, tmp_path / "missing.npz")
    assert density.shape == (16, 16, 16) and "procedural" in source
    assert 0 <= float(density.min()) and float(density.max()) <= 1


def test_corpus_volume_keeps_its_aspect(tmp_path):
    import numpy as np

    vol = np.zeros((8, 16, 16), dtype=np.uint16)
    vol[2:6, 4:12, 4:12] = 65535
    np.savez(tmp_path / "engine_block.npz", volume=vol)
    density, source = render_demo.load_density(8, tmp_path / "engine_block.npz")
    assert density.shape == (8, 8, 8) and source.startswith("engine_block")
    assert float(density[:2].sum()) == 0 and float(density[-2:].sum()) == 0  # padded in z, not stretched


def test_run_demo_scores_novel_views_and_writes_napari_readable_files(tmp_path):
    results, setup = render_demo.run_demo(size=16, views=4, methods=("tv", "dps"), prior=_denoiser, steps=3,
                                          volume_path=tmp_path / "missing.npz", out_dir=tmp_path)
    assert [r.name for r in results] == ["tv", "dps"]
    for r in results:
        assert r.volume.shape == (2, 16, 16, 16)
        assert all(math.isfinite(v) for v in (r.psnr_emission, r.psnr_absorption, r.psnr_novel_views))
        assert r.psnr_fitted_views > 20 and len(r.paths) == 2
    assert setup["novel_views"] == 4 and set(setup["psnr_zero_volume"]) == {"emission", "absorption"}
    layers = project_layers(results[0].paths[1])
    names = [kw["name"] for _, kw, _ in layers]
    assert any("reference" in n for n in names) and any("sinogram" in n for n in names)
    views = next(data for data, kw, _ in layers if "sinogram" in kw["name"])
    assert views.ndim == 3 and views.shape[0] == 4  # the fitted views, (A, V, U)


def test_the_render_task_refuses_ct_methods(capsys):
    from tomodiff.cli import main

    assert main(["demo", "--task", "render", "--methods", "fbp"]) != 0
    assert "the render demo runs tv and dps" in capsys.readouterr().err
