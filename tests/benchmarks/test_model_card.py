"""The model-card evaluation (benchmarks/model_card.py): PSNR bookkeeping checked with stand-in denoisers."""

import torch

from benchmarks.model_card import denoising_table
from tomodiff import phantoms as P


class _Identity:
    def denoiser(self, x, sigma):
        return x


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
