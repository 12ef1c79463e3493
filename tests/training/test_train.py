"""Training: a tiny run checkpoints, resumes exactly, exports a loadable prior; the CLI parses."""

import argparse

import pytest
import torch

from tomodiff.commands import train_prior
from tomodiff.priors.registry import load_file
from tomodiff.training.train import TrainConfig, export, load_volumes, train

TINY = dict(size=16, source_size=16, channels=(8, 16), emb_dim=16, batch=2, warmup=2, grid_samples=0,
            checkpoint_minutes=100.0)


def _ckpt(d):
    return torch.load(d / "checkpoint.pt", map_location="cpu", weights_only=False)


def test_tiny_run_resumes_exactly(tmp_path):
    train(TrainConfig(steps=4, **TINY), tmp_path / "straight", progress=False, grid=False)
    train(TrainConfig(steps=2, **TINY), tmp_path / "split", progress=False, grid=False)
    assert _ckpt(tmp_path / "split")["step"] == 2
    train(TrainConfig(steps=4, **TINY), tmp_path / "split", progress=False, grid=False)
    a, b = _ckpt(tmp_path / "straight"), _ckpt(tmp_path / "split")
    assert b["step"] == 4
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
        torch.testing.assert_close(a["ema"][k], b["ema"][k], rtol=0, atol=0, msg=k)
    log = (tmp_path / "split" / "train.log").read_text()
    assert "resume at step 2" in log


def test_3d_run_exports_a_patch_prior(tmp_path):
    cfg = TrainConfig(name="p", dims=3, steps=1, **TINY)
    train(cfg, tmp_path, progress=False, grid=False)
    prior = load_file(export(tmp_path / "checkpoint.pt", tmp_path / "p.pt"))
    assert type(prior).__name__ == "PatchPrior" and prior.info["training"]["steps"] == 1
    assert prior.denoiser(torch.rand(1, 1, 20, 16, 16), 0.1).shape == (1, 1, 20, 16, 16)


def test_training_from_volume_files(tmp_path):
    import numpy as np
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((20, 24, 24), dtype=np.float32))
    assert load_volumes(tmp_path)[0].shape == (20, 24, 24)
    train(TrainConfig(steps=1, data=str(tmp_path / "v.npy"), **TINY), tmp_path / "run", progress=False, grid=False)
    assert _ckpt(tmp_path / "run")["step"] == 1
    with pytest.raises(FileNotFoundError):
        load_volumes(tmp_path / "missing.npy")


def test_config_validation():
    with pytest.raises(ValueError, match="families"):
        TrainConfig(families=("nope",))
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(size=18, channels=(8, 16, 32))


def test_cli_parser(tmp_path):
    parser = argparse.ArgumentParser()
    train_prior.add_parser(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["train-prior", str(tmp_path), "--dims", "3", "--size", "32", "--channels", "8,16",
                            "--max-minutes", "1.5"])
    assert ns.func is train_prior.run and ns.dims == 3 and ns.max_minutes == 1.5


def test_resume_with_other_settings_lists_the_differences(tmp_path):
    train(TrainConfig(steps=1, **TINY), tmp_path, progress=False, grid=False)
    with pytest.raises(ValueError, match=r"lr: 0.0005 -> 0.001.*run_seed: 0 -> 3"):
        train(TrainConfig(steps=2, lr=1e-3, run_seed=3, **TINY), tmp_path, progress=False, grid=False)
    assert _ckpt(tmp_path)["step"] == 1  # nothing was overwritten


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    from tomodiff.training import train as train_mod

    train(TrainConfig(steps=1, **TINY), tmp_path, progress=False, grid=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    def dying_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(train_mod.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train_mod._save_atomic({"x": 1}, tmp_path / "checkpoint.pt")
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


def test_a_full_disk_at_a_checkpoint_is_one_error_and_the_previous_checkpoint_stays(tmp_path, monkeypatch):
    import builtins
    import errno

    from tomodiff.io.atomic import OutputWriteError
    from tomodiff.training import train as train_mod

    train(TrainConfig(steps=1, **TINY), tmp_path, progress=False, grid=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    real_open = builtins.open

    class Full:  # a file whose writes fail as on a full disk
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(file, mode="r", *a, **kw):
        f = real_open(file, mode, *a, **kw)
        return Full(f) if "w" in mode and str(file).endswith(".tmp") else f

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(OutputWriteError) as err:
        train_mod._save_atomic({"x": 1}, tmp_path / "checkpoint.pt")
    monkeypatch.undo()
    assert str(err.value) == (f"No space left on device writing {tmp_path / 'checkpoint.pt'}; "
                              "any earlier checkpoint.pt is unchanged")
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


def test_held_out_scoring_keeps_and_exports_the_best(tmp_path):
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.random((6, 40, 40), dtype=np.float32))
    np.save(tmp_path / "val.npy", rng.random((4, 64, 64), dtype=np.float32))
    cfg = TrainConfig(steps=4, data=str(tmp_path / "train.npy"), val_data=str(tmp_path / "val.npy"), eval_every=2,
                      precision="bf16", **TINY)
    train(cfg, tmp_path / "run", progress=False, grid=False)
    recs = [json.loads(line) for line in (tmp_path / "run" / "heldout.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [2, 4]
    best = max(recs, key=lambda r: r["val"]["gain"])
    prior = load_file(export(tmp_path / "run" / "checkpoint.pt", tmp_path / "p.pt"))
    assert prior.info["training"]["steps"] == best["step"]
    assert prior.info["selected_by"]["held_out_val"]["gain"] == best["val"]["gain"]


def test_cli_resume_takes_the_checkpoint_settings(tmp_path, capsys):
    from tomodiff.cli import main

    args = ["train-prior", str(tmp_path), "--size", "16", "--channels", "8,16", "--batch", "2", "--grid-samples", "0",
            "--no-progress", "--threads", "1"]
    assert main(args + ["--steps", "1"]) == 0
    assert main(["train-prior", str(tmp_path), "--steps", "2", "--grid-samples", "0", "--no-progress"]) == 0
    assert _ckpt(tmp_path)["step"] == 2
    assert main(["train-prior", str(tmp_path), "--steps", "3", "--lr", "0.01", "--grid-samples", "0",
                 "--no-progress"]) == 2
    assert "lr: 0.0005 -> 0.01" in capsys.readouterr().err
    assert _ckpt(tmp_path)["step"] == 2


def test_sigterm_checkpoints_before_exiting(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    code = ("from tomodiff.training.train import TrainConfig, train\n"
            f"train(TrainConfig(steps=10**6, size=16, channels=(8, 16), emb_dim=16, batch=2, warmup=2, grid_samples=0,"
            f" checkpoint_minutes=100.0), {str(tmp_path)!r}, progress=False, grid=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    log = tmp_path / "train.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "step 25 " in log.read_text()):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert _ckpt(tmp_path)["step"] >= 25  # written on SIGTERM, not only every checkpoint_minutes
