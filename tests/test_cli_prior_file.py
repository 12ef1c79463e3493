"""``tomodiff reconstruct --prior-file PATH``: a diffusers or MONAI model folder as the prior, on a
tiny simulated scan; the provenance names the folder's files by their hash."""

import json

import numpy as np
import pytest
import torch

from tomodiff.cli import main
from tomodiff.io import read_project
from tomodiff.priors.external import files_sha256

diffusers = pytest.importorskip("diffusers", reason="pip install 'tomodiff[diffusers]'")


@pytest.fixture
def scan(tmp_path, capsys):
    path = tmp_path / "scan.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(path)]) == 0
    capsys.readouterr()
    return path


def _diffusers_folder(path):
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                 layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    scheduler = diffusers.DDPMScheduler(prediction_type="v_prediction")
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(path)
    return path


def _reconstruct(scan, prior_folder, out, capsys):
    assert main(["reconstruct", str(scan), "--method", "pigdm", "--prior-file", str(prior_folder), "--steps", "2",
                 "--samples", "2", "--threads", "1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    data = read_project(out)
    mean = data.reconstruction["mean"]
    assert mean.shape == (16, 16, 16) and np.isfinite(mean).all() and np.isfinite(data.reconstruction["std"]).all()
    return summary, data.provenance


def test_reconstruct_with_a_diffusers_folder(scan, tmp_path, capsys):
    folder = _diffusers_folder(tmp_path / "my-ddpm")
    summary, prov = _reconstruct(scan, folder, tmp_path / "out.h5", capsys)
    assert summary["nfe"] > 0
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")]
    assert prov["prior"]["name"] == "diffusers:my-ddpm"
    assert prov["prior"]["sha256"] == files_sha256(folder, files)[0]
    assert prov["prior"]["class"] == "ExternalSlicePrior"


def test_reconstruct_with_a_monai_folder(scan, tmp_path, capsys):
    pytest.importorskip("monai", reason="pip install 'tomodiff[monai]'")
    pytest.importorskip("einops", reason="MONAI's DiffusionModelUNet needs einops")
    from monai.networks.nets import DiffusionModelUNet

    from tomodiff.priors import save_monai

    args = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "channels": [8, 16],
            "attention_levels": [False, False], "num_res_blocks": 1, "norm_num_groups": 4}
    torch.manual_seed(0)
    folder = save_monai(tmp_path / "my-monai", DiffusionModelUNet(**args), network_args=args,
                        scheduler_args={"num_train_timesteps": 1000, "prediction_type": "epsilon"})
    _, prov = _reconstruct(scan, folder, tmp_path / "out.h5", capsys)
    assert prov["prior"]["name"] == "monai:my-monai" and len(prov["prior"]["sha256"]) == 64


def test_prior_file_errors(scan, tmp_path, capsys):
    out = str(tmp_path / "o.h5")
    assert main(["reconstruct", str(scan), "--method", "pigdm", "--prior-file", str(tmp_path / "nope"),
                 "--out", out]) == 2
    assert "prior not found" in capsys.readouterr().err
    assert main(["reconstruct", str(scan), "--method", "fbp", "--prior-file", str(tmp_path), "--out", out]) == 2
    assert "--prior-file does not apply to --method fbp" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["reconstruct", str(scan), "--method", "pigdm", "--prior", "slice-64", "--prior-file", str(tmp_path),
              "--out", out])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_a_tomodiff_prior_file_works_too(scan, tmp_path, capsys):
    from tomodiff.priors.registry import WEIGHTS_DIR, card

    weights = WEIGHTS_DIR / "slice-64.pt"
    _, prov = _reconstruct(scan, weights, tmp_path / "out.h5", capsys)
    assert prov["prior"]["sha256"] == card("slice-64")["sha256"]


def test_the_streaming_path_takes_a_prior_file(scan, tmp_path, capsys):
    folder = _diffusers_folder(tmp_path / "my-ddpm")
    out = tmp_path / "out.h5"
    assert main(["reconstruct", str(scan), "--method", "pigdm", "--prior-file", str(folder), "--stream", "--steps", "2",
                 "--samples", "1", "--slab", "8", "--threads", "1", "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    data = read_project(out)
    assert np.isfinite(data.reconstruction["mean"]).all() and data.provenance["prior"]["name"] == "diffusers:my-ddpm"
