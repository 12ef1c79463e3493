"""Worker for tests/recon/test_distributed.py, run as ``python dist_worker.py MODE DIR`` (plain, under
torchrun, or as hand-started ranks). Everything it computes goes to files in DIR.

MODE ``match``: ``reconstruct()`` in memory and ``reconstruct_file()`` with the ``slice-64`` prior,
and ``reconstruct_file()`` with TV; rank 0 saves the results to ``DIR/<world>.pt``.
MODE ``die``: ``reconstruct_file()`` with an exact Gaussian denoiser; rank 1 exits hard in its
second slab (a crashed process); the others must stop with a clear error.
MODE ``resume``: the same run in one process, counting denoiser calls (it resumes from the slabs
the ``die`` run left); then a clean run of it to ``DIR/clean.h5``.
"""

import inspect
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.io import ProjectData, write_project
from tomodiff.operators import GaussianNoise, simulate
from tomodiff.recon import reconstruct
from tomodiff.recon.streamed import reconstruct_file

torch.set_num_threads(1)  # the same thread count in every process: bitwise equal results


def problem(Z, N, views):
    geom = parallel_beam((Z, N, N), np.linspace(0, np.pi, views, endpoint=False))
    A = Projector(geom)
    zz, yy, xx = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in (Z, N, N)), indexing="ij")
    x = (((xx ** 2 + yy ** 2 + 0.5 * zz ** 2) < 0.6).float() * 0.8 + 0.1 * (xx > 0).float())[None, None]
    y = simulate(A, x, GaussianNoise(0.01), generator=torch.Generator().manual_seed(0))
    return A, x, y


def gaussian_denoiser(mean=0.3, var=0.05):
    def D(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return mean + var / (var + s * s) * (x - mean)
    return D


def write_input(path, A, x, y):
    if int(os.environ.get("RANK", "0")) == 0 and not path.exists():
        write_project(path, ProjectData(sinogram=y[0, 0].numpy(), geometry=A.geometry, reference=x[0, 0].numpy(),
                                        provenance={"sigma_y": 0.01}))


def match(d: Path):
    from tomodiff.priors import load

    A, x, y = problem(12, 64, 16)
    prior = load("slice-64", precision="auto")  # as the CLI loads it, in one process and under torchrun
    kw = dict(method="pigdm", steps=2, n_samples=2, sigma_y=0.02, slab=6, overlap=2, seed=1)
    api = reconstruct(A, y, prior=prior, progress=False, **kw)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    src = d / "input.h5"
    write_input(src, A, x, y)
    if world > 1:
        import torch.distributed as dist
        dist.barrier()  # the input file exists before anyone reads it
    scale = inspect.signature(reconstruct).parameters.get("scale")  # the same scale step as reconstruct()
    out = d / f"out{world}.h5"
    summary = reconstruct_file(src, out, prior=prior, progress=False, scale=None if scale is None else scale.default,
                               **kw)
    tv_out = d / f"tv{world}.h5"  # a classical method under the same scheme: TV in overlapping slabs
    reconstruct_file(src, tv_out, method="tv", slab=6, overlap=2, n_iter=30, progress=False)
    if summary is not None:
        import h5py
        with h5py.File(out, "r") as f, h5py.File(tv_out, "r") as g:
            file_mean, file_std = f["reconstruction/mean"][()], f["reconstruction/std"][()]
            tv = g["reconstruction/mean"][()]
        torch.save({"api_mean": api.mean[0, 0], "api_std": api.std[0, 0], "file_mean": torch.from_numpy(file_mean),
                    "file_std": torch.from_numpy(file_std), "tv_mean": torch.from_numpy(tv),
                    "summary": json.dumps(summary)}, d / f"{world}.pt")


DIE_KW = dict(method="pigdm", steps=3, n_samples=2, sigma_y=0.01, slab=6, overlap=2, seed=5, progress=False)


def die(d: Path):
    A, x, y = problem(20, 16, 8)  # 5 slabs; pass 1: rank 0 has 0, 4, rank 1 has 2; pass 2: rank 0 1, rank 1 3
    src = d / "input.h5"
    write_input(src, A, x, y)
    import torch.distributed as dist

    inner, calls = gaussian_denoiser(), {"n": 0}

    def crashing(x, sigma):
        calls["n"] += 1
        if dist.is_initialized() and dist.get_rank() == 1 and calls["n"] == DIE_KW["steps"] + 2:
            os._exit(3)  # rank 1 dies inside its second slab, like a killed process
        return inner(x, sigma)

    import time
    while not src.exists():  # rank 0 writes it
        time.sleep(0.1)
    reconstruct_file(src, d / "out.h5", prior=crashing, checkpoint=d / "slabs", **DIE_KW)


def resume(d: Path):
    inner, calls = gaussian_denoiser(), {"n": 0}

    def counting(x, sigma):
        calls["n"] += 1
        return inner(x, sigma)

    reconstruct_file(d / "input.h5", d / "out.h5", prior=counting, checkpoint=d / "slabs", **DIE_KW)
    resumed_calls = calls["n"]
    reconstruct_file(d / "input.h5", d / "clean.h5", prior=inner, checkpoint=d / "clean_slabs", **DIE_KW)
    (d / "calls.json").write_text(json.dumps({"resumed": resumed_calls}))


if __name__ == "__main__":
    {"match": match, "die": die, "resume": resume}[sys.argv[1]](Path(sys.argv[2]))
