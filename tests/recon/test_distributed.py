"""Slab-parallel runs on torch.distributed (gloo on the CPU): the same result as one process, a
lost rank stops the others with a clear error, and a rerun with another rank count resumes."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tomodiff.recon import distributed
from tomodiff.recon.slabs import plan_slabs, two_pass

WORKER = Path(__file__).with_name("dist_worker.py")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                               "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _torchrun(n, *args, cwd, timeout=120):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_pass_schedule_and_assignment():
    plan = plan_slabs(20, 6, 2)  # (0,6) (4,10) (8,14) (12,18) (16,20)
    assert two_pass(plan) == [[0, 2, 4], [1, 3]]
    assert two_pass([(0, 5)]) == [[0]]
    with pytest.raises(ValueError, match="at most half the slab"):
        two_pass(plan_slabs(20, 6, 4))
    owner = distributed.assign(plan, [0, 2, 4], 2)
    assert owner == {0: 0, 2: 1, 4: 0}  # longest first to the least-loaded rank
    assert distributed.assign(plan, [1, 3], 3) == {1: 0, 3: 1}  # rank 2 idle in this pass


def test_detect_reads_the_launcher_environment(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.detect() == distributed.Dist()  # not launched: one process
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    d = distributed.detect()
    assert (d.rank, d.world, d.local_rank, d.active) == (3, 4, 1, True)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4 and WORLD_SIZE=4"):
        distributed.detect()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x' is not an integer"):
        distributed.detect()


def test_cuda_with_more_ranks_than_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    ctx = distributed.Dist(rank=1, world=2, local_rank=1)
    with pytest.raises(RuntimeError, match=r"2 ranks on this node but only 1 GPU.*--nproc-per-node 1"):
        distributed.device_for(ctx, "cuda")
    assert distributed.device_for(distributed.Dist(), "cpu") == torch.device("cpu")


@pytest.mark.slow  # three processes start (about 10 s each on a busy 2-core machine)
def test_torchrun_two_ranks_equal_one_process(tmp_path):
    """reconstruct() and reconstruct_file() with slice-64, and TV in slabs, on 2 gloo ranks: bitwise the plain run."""
    plain = subprocess.run([sys.executable, str(WORKER), "match", str(tmp_path)], env=_env(), capture_output=True,
                           text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr[-3000:]
    run = _torchrun(2, str(WORKER), "match", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = torch.load(tmp_path / "1.pt"), torch.load(tmp_path / "2.pt")
    for key in ("api_mean", "api_std", "file_mean", "file_std", "tv_mean"):
        assert torch.equal(one[key], two[key]), key
    # the streaming path equals the in-memory one too, and both ranks did work
    assert torch.equal(one["file_mean"], one["api_mean"]) and torch.equal(one["file_std"], one["api_std"])
    ranks = json.loads(two["summary"])["ranks"]
    assert [r["slabs"] for r in ranks] == [[0, 1], [2]]
    assert not (tmp_path / ".out2.h5.slabs").exists()  # the store is removed after success


@pytest.mark.slow
def test_a_dead_rank_stops_the_other_and_a_rerun_on_one_rank_resumes(tmp_path):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER), "die", str(tmp_path)],
                              env=_env(WORLD_SIZE="2", RANK=str(r), LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                                       MASTER_PORT=str(port), TOMODIFF_DIST_TIMEOUT="30"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    t0 = time.monotonic()
    outs = [p.communicate(timeout=120) for p in procs]
    waited = time.monotonic() - t0
    assert procs[1].returncode == 3  # the crash
    assert procs[0].returncode != 0 and waited < 90
    assert "another rank died or hung during pass 2 of 2" in outs[0][1], outs[0][1][-2000:]
    assert "finished slabs are kept in" in outs[0][1]
    assert not (tmp_path / "out.h5").exists()
    kept = sorted(p.name for p in (tmp_path / "slabs").glob("slab_*.pt"))
    assert kept == ["slab_00000.pt", "slab_00001.pt", "slab_00002.pt", "slab_00004.pt"]  # all but rank 1's last

    resumed = subprocess.run([sys.executable, str(WORKER), "resume", str(tmp_path)], env=_env(), capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    calls = json.loads((tmp_path / "calls.json").read_text())
    assert calls["resumed"] == 3  # one slab of 3 steps left to do
    import h5py
    with h5py.File(tmp_path / "out.h5") as a, h5py.File(tmp_path / "clean.h5") as b:
        for key in ("mean", "std"):
            assert (a[f"reconstruction/{key}"][()] == b[f"reconstruction/{key}"][()]).all(), key
    assert not (tmp_path / "slabs").exists()


def test_idle_ranks_say_so_and_exit_cleanly(tmp_path):
    import numpy as np

    from tomodiff.ct import parallel_beam
    from tomodiff.io import ProjectData, read_project, write_project

    geom = parallel_beam((8, 16, 16), np.linspace(0, np.pi, 8, endpoint=False))
    y = np.random.default_rng(0).random(geom.sino_shape).astype(np.float32)
    write_project(tmp_path / "in.h5", ProjectData(sinogram=y, geometry=geom))
    run = _torchrun(3, "-m", "tomodiff", "reconstruct", "in.h5", "--method", "fbp", "--slab", "4", "--out",
                    "out.h5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[rank 2/3] idle: 2 slab(s) for 3 ranks, none left for this rank; exiting" in run.stderr
    assert read_project(tmp_path / "out.h5").reconstruction["mean"].shape == (8, 16, 16)


def test_reconstruct_resumes_from_the_checkpoint_directory(tmp_path):
    """reconstruct() keeps finished slabs in one checkpoint directory, one file per slab, whichever
    rank wrote them; a rerun (with any number of ranks; here one process) redoes only what is missing."""
    import numpy as np

    from tomodiff.ct import Projector, parallel_beam
    from tomodiff.recon import reconstruct

    geom = parallel_beam((12, 12, 12), np.linspace(0, np.pi, 6, endpoint=False))
    A = Projector(geom)
    y = A(torch.rand(1, 1, 12, 12, 12, generator=torch.Generator().manual_seed(0)))
    calls = {"n": 0}

    def D(x, sigma):
        calls["n"] += 1
        if calls.get("stop") and calls["n"] == calls["stop"]:
            raise KeyboardInterrupt
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return 0.3 + 0.05 / (0.05 + s * s) * (x - 0.3)

    kw = dict(method="pigdm", prior=D, steps=3, n_samples=2, sigma_y=0.05, slab=6, overlap=2, seed=4, progress=False)
    clean = reconstruct(A, y, **kw)  # plan (0,6) (4,10) (8,12): passes [0, 2], [1]
    ckpt = tmp_path / "run.ckpt"
    calls.update(n=0, stop=5)  # interrupted in the second slab of the first pass: slab 0 is done
    with pytest.raises(KeyboardInterrupt):
        reconstruct(A, y, checkpoint=ckpt, **kw)
    assert sorted(p.name for p in ckpt.glob("slab_*.pt")) == ["slab_00000.pt"]
    calls.update(n=0, stop=None)
    resumed = reconstruct(A, y, checkpoint=ckpt, **kw)
    assert calls["n"] == 2 * 3  # slabs 2 and 1 only
    assert torch.equal(resumed.mean, clean.mean) and torch.equal(resumed.std, clean.std)
    assert not list(tmp_path.iterdir())  # every rank's file removed after success
