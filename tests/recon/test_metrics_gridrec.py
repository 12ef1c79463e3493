"""Metrics against closed forms; the TomoPy adapter (skipped without TomoPy, clear error without it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.recon import data_residual, gridrec, psnr, ssim, tomopy_available


def test_psnr_closed_form_and_batch():
    ref = np.zeros((8, 8))
    ref[2:6, 2:6] = 2.0                          # data range 2
    x = ref + 0.1                                 # MSE 0.01
    assert psnr(x, ref) == pytest.approx(10 * math.log10(4 / 0.01))
    assert psnr(x, ref, data_range=1.0) == pytest.approx(10 * math.log10(1 / 0.01))
    xb = torch.as_tensor(np.stack([x, ref + 0.2]))[:, None]   # (B=2, C=1, 8, 8)
    out = psnr(xb, torch.as_tensor(np.stack([ref, ref]))[:, None])
    assert out.shape == (2, 1)
    assert out[1, 0] == pytest.approx(10 * math.log10(4 / 0.04))


def test_ssim_2d_3d():
    g = np.random.default_rng(0)
    vol = g.random((9, 16, 16))
    assert ssim(vol, vol) == pytest.approx(1.0)
    assert ssim(vol[0] + 0.3 * g.random((16, 16)), vol[0]) < 0.95
    with pytest.raises(ValueError, match="same shape"):
        ssim(vol[0], vol)


def test_data_residual(dense_op):
    x = torch.ones(2, 1, 6, 8, dtype=torch.float64)
    y = dense_op.forward(x)
    r = data_residual(dense_op, 1.1 * x, y)
    assert r.shape == (2, 1)
    torch.testing.assert_close(r, torch.full((2, 1), 0.1, dtype=torch.float64))


def _scan():
    g = parallel_beam((32, 32), np.linspace(0, math.pi, 90, endpoint=False), det_shape=(32,),
                      center_offset=1.0)
    A = Projector(g)
    x = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    x[..., 10:20, 8:16] = 1.0
    return A, x, A.forward(x)


@pytest.mark.skipif(tomopy_available(), reason="checks the error raised without TomoPy")
def test_gridrec_without_tomopy_says_how_to_install():
    A, _, y = _scan()
    with pytest.raises(ImportError, match="conda install -c conda-forge tomopy"):
        gridrec(A, y)


@pytest.mark.skipif(not tomopy_available(), reason="TomoPy is not installed (conda-only)")
def test_gridrec_matches_phantom():
    A, x, y = _scan()
    r = gridrec(A, y)
    assert r.shape == x.shape
    # not measured here (no TomoPy on the development machines); FBP reaches > 20 dB on this scan
    assert psnr(r[0, 0], x[0, 0]) > 15.0
