"""The volumes the benchmark scripts share, and where the data from outside the repository is.

Training volumes (tuning and calibration only): phantoms with training seeds and corpus volumes of
the ``ct-slice`` training split. Held-out volumes (reporting only): the benchmark set that ships
with the package, read with :func:`tomodiff.io.volumes.load_volume`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from tomodiff.io.volumes import benchmark_manifest, load_volume

DATA_ENV = "TOMODIFF_SHARED_DATA"
# phantoms with seeds from tomodiff.phantoms.TRAIN_SEEDS: what the sampler sweep and calibration tune on
TRAIN_VOLUMES = ["shepp_logan:11:64", "texture:12:64", "ellipsoids:13:64", "foam:14:64"]
HELD_OUT_64 = ["ellipsoids_64_a", "ellipsoids_64_b", "foam_64_a", "foam_64_b", "shepp_logan_64_a",
               "shepp_logan_64_b", "texture_64_a", "texture_64_b"]
REAL = "real_head_vtk"


def shared_data(path=None) -> Path:
    """The shared data folder: ``path``, else ``$TOMODIFF_SHARED_DATA``; one line and exit without it."""
    path = path or os.environ.get(DATA_ENV)
    if not path:
        raise SystemExit(f"the shared data folder is needed here: pass --data-dir or set {DATA_ENV}")
    if not Path(path).is_dir():
        raise SystemExit(f"{path}: not a folder (the shared data folder, with ct_corpus/ and vtk_headsq/)")
    return Path(path)


def central(vol, n):
    """The central ``n`` axial slices of a ``(Z, Y, X)`` volume."""
    z0 = (vol.shape[0] - n) // 2
    return vol[z0:z0 + n].contiguous()


def corpus_volume(name: str, slices: int, data_dir=None) -> torch.Tensor:
    """Central ``slices`` of ``ct_corpus/NAME.npz`` in [0, 1], block-averaged 4× (training volumes only)."""
    path = shared_data(data_dir) / "ct_corpus" / f"{name}.npz"
    if not path.is_file():
        raise SystemExit(f"{path}: no such corpus volume")
    v = torch.from_numpy(np.load(path)["volume"].astype(np.float32) / 65535)
    return central(torch.nn.functional.avg_pool3d(v[None, None], 4)[0, 0], slices)


def benchmark_volumes(shape=(64, 64, 64), real: bool = False) -> dict[str, np.ndarray]:
    """Benchmark-set phantoms of ``shape`` by file name (``real=True``: the real VTK head instead);
    the real-CT group (family ``real_ct``) is left out: the real-CT tables score it."""
    out = {}
    for e in benchmark_manifest()["entries"]:
        family = e["family"]
        if family == "real_ct" or (family == "real") != real:
            continue
        if real or tuple(e["shape"]) == tuple(shape):
            out[e["file"]] = load_volume(Path(e["file"]).stem)[0].numpy()
    return out
