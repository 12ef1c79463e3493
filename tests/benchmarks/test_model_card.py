"""The model-card evaluation: PSNR bookkeeping checked with stand-in denoisers."""

import numpy as np
import torch

from tomodiff import phantoms as P
from tomodiff.priors.evaluate import denoising_table, psnr


class _Identity:
    def denoiser(self, x, sigma):
        return x


def test_psnr():
    ref = np.zeros((2, 4, 4))
    assert np.allclose(psnr(ref + 0.1, ref, (1, 2)), 20.0)


def test_identity_denoiser_scores_the_noisy_input():
    vols = {"foam_16_a.h5": P.generate("foam", (16, 16, 16), 1).numpy(),
            "texture_16_a.h5": P.generate("texture", (16, 16, 16), 1).numpy()}
    for mode in ("slice", "volume"):
        t = denoising_table(_Identity(), vols, sigmas=(0.1,), mode=mode, slice_step=1)
        r = t["rows"][0]
        assert r["prior_psnr"] == r["noisy_psnr"]
        assert abs(r["noisy_psnr"] - 20.0) < 0.3  # σ = 0.1 on data range 1
        assert r["gaussian_psnr"] > r["noisy_psnr"]  # the filter baseline does something
        assert set(t["per_family"]) == {"foam", "texture"}
    t = denoising_table(_Identity(), vols, sigmas=(0.1,), mode="slice", slice_step=1)
    assert t["n_items"] < 32  # near-empty end slices are left out


def test_volume_mode_accepts_a_slice_prior_stand_in():
    class Half:
        def denoiser(self, x, sigma):
            assert x.dim() == 5 and isinstance(x, torch.Tensor)
            return x * 0.5
    vols = {"foam_16_a.h5": P.generate("foam", (16, 16, 16), 2).numpy()}
    r = denoising_table(Half(), vols, sigmas=(0.05,), mode="volume")["rows"][0]
    assert r["prior_psnr"] < r["noisy_psnr"]
