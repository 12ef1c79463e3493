"""Shipped priors: load by name, save/load round trip, clear errors, and a denoising gain."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

import tomodiff.priors as priors
from tomodiff.io.volumes import benchmark_manifest, load_volume
from tomodiff.priors import registry
from tomodiff.priors.edm import EDMDenoiser
from tomodiff.priors.unet import UNet

def test_shipped_priors_load_by_name():
    assert "slice-64" in registry.available()
    p = priors.load("slice-64")
    assert type(p).__name__ == "SlicePrior" and p.size == 64 and p.info["training"]["steps"] > 0
    for shape in [(2, 1, 64, 64), (1, 1, 3, 64, 64)]:
        assert p.denoiser(torch.rand(shape), 0.1).shape == shape


def test_patch_prior_loads_by_name():
    if "patch-32" not in registry.available():
        pytest.skip("patch-32 is not shipped")
    p = priors.load("patch-32")
    assert type(p).__name__ == "PatchPrior" and p.size == 32
    assert p.denoiser(torch.rand(1, 1, 32, 40, 32), 0.1).shape == (1, 1, 32, 40, 32)


def test_shipped_weights_are_small():
    # the package's budget for weights: five priors of 1-2M parameters in fp32 (ct-slab, ct-cond, ct-slice,
    # slice-64: 4 MB each; patch-32: 9 MB) fit, a network ten times larger would not
    total = sum(f.stat().st_size for f in registry.WEIGHTS_DIR.glob("*.pt"))
    assert total < 30e6


def test_unknown_name():
    with pytest.raises(KeyError, match="no shipped prior named"):
        priors.load("no-such-prior")


def _tiny(tmp_path):
    torch.manual_seed(0)
    net = UNet(2, 1, (8, 16))
    net.head[-1].weight.data.normal_(std=0.1)
    den = EDMDenoiser(net, sigma_data=0.7)
    cfg = {"dims": 2, "channels": [8, 16], "emb_dim": 128, "size": 16}
    return den, registry.save_prior(den, cfg, {"name": "tiny"}, tmp_path / "tiny.pt")


def test_save_load_round_trip(tmp_path):
    den, path = _tiny(tmp_path)
    p = registry.load_file(path)
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(p.denoiser(x, 0.2), den(x, 0.2))
    assert p.net.sigma_data == 0.7 and p.name == "tiny"


def test_missing_and_corrupt_files(tmp_path):
    _, path = _tiny(tmp_path)
    with pytest.raises(registry.PriorFileError, match="not found"):
        registry.load_file(tmp_path / "absent.pt")
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(registry.PriorFileError, match="could not be read"):
        registry.load_file(bad)
    with pytest.raises(registry.PriorFileError, match="corrupt"):
        registry.load_file(path, expected_sha256="0" * 64)
    other = tmp_path / "other.pt"
    torch.save({"hello": 1}, other)
    with pytest.raises(registry.PriorFileError, match="not a tomodiff prior"):
        registry.load_file(other)


def test_shipped_file_corruption_is_detected(tmp_path, monkeypatch):
    """A damaged copy of the shipped weights (one flipped byte) fails its model card's checksum."""
    wd = tmp_path / "weights"
    shutil.copytree(registry.WEIGHTS_DIR, wd)
    data = bytearray((wd / "slice-64.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (wd / "slice-64.pt").write_bytes(bytes(data))
    monkeypatch.setattr(registry, "WEIGHTS_DIR", wd)
    with pytest.raises(registry.PriorFileError, match="corrupt"):
        priors.load("slice-64")


def test_denoising_gain_on_held_out_slices():
    """slice-64 beats the best Gaussian filter by > 1 dB at σ = 0.1 on benchmark slices (never trained on)."""
    clean = np.concatenate([load_volume(name)[0].numpy()[16:48:8] for name in
                            ["shepp_logan_64_a", "ellipsoids_64_b", "foam_64_a", "texture_64_b"]])[:, None]
    noisy = (clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape)).astype(np.float32)

    def psnr(x):
        return np.mean(10 * np.log10(1 / np.mean((x - clean) ** 2, axis=(1, 2, 3))))
    best_filter = max(psnr(ndimage.gaussian_filter(noisy, (0, 0, w, w))) for w in (0.5, 0.7, 0.9, 1.2, 1.6))
    with torch.no_grad():
        den = priors.load("slice-64").denoiser(torch.from_numpy(noisy), 0.1).numpy()
    assert psnr(den) > best_filter + 1.0


def test_ct_slice_split_keeps_held_out_volumes_out_of_training():
    # the corpus volumes the benchmark set's real-CT group is cut from
    HELD_OUT_CT = {e["parameters"]["source"].split("/")[1].split(".")[0]  # noqa: N806
                   for e in benchmark_manifest()["entries"] if e["family"] == "real_ct"}
    assert len(HELD_OUT_CT) == 2
    cfg = registry.card("ct-slice")["training"]["config"]
    names = lambda key: {Path(p).name.split(".")[0] for p in cfg[key]}  # noqa: E731
    train, val, test = names("data"), names("val_data"), names("test_data")
    assert set(HELD_OUT_CT) <= test and not (set(HELD_OUT_CT) & train)
    assert not (val & train) and not (test & train) and "real_head_vtk" in test


@pytest.mark.parametrize("size", [64, 128, 256])
def test_ct_slice_serves_any_slice_size(size):
    import torch

    prior = registry.load("ct-slice", precision="fp32")
    x = torch.full((1, 1, size, size), 0.3)
    x[..., size // 4: size // 2, size // 4: size // 2] = 0.7
    noisy = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    out = prior.denoiser(noisy, 0.1)
    assert out.shape == x.shape
    assert float(((out - x) ** 2).mean()) < 0.25 * float(((noisy - x) ** 2).mean())


def test_a_loaded_prior_names_its_weights_by_sha256():
    """Provenance and checkpoint keys record the prior's hash (it was null in the provenance)."""
    from tomodiff.priors import load
    from tomodiff.priors.registry import card

    prior = load("slice-64")
    assert prior.info["sha256"] == card("slice-64")["sha256"] and len(prior.info["sha256"]) == 64
