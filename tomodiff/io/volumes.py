"""Find a volume by what a user types: a benchmark phantom name, a generator spec, or a file.

Accepted specs (all return a float32 ``(Z, Y, X)`` tensor and a description dict):

- ``shepp_logan_64_a`` — an entry of the benchmark set that ships with the package
  (``tomodiff.phantoms.BENCHMARK_SET``, or ``$TOMODIFF_PHANTOMS``; read from its HDF5 file,
  regenerated from the manifest's family, shape and seed if the file is not there);
- ``foam:123:64`` — ``family:seed:size`` generated on the fly (``tomodiff.phantoms.generate``);
- ``volume.npy``, ``file.h5`` (dataset ``volume`` or ``reference``) or ``file.h5:/path/to/dataset``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .. import phantoms


def benchmark_dir() -> Path:
    """The benchmark set: ``$TOMODIFF_PHANTOMS``, else the copy in the package (package data)."""
    env = os.environ.get("TOMODIFF_PHANTOMS")
    return Path(env) if env else phantoms.BENCHMARK_SET


def benchmark_manifest() -> dict:
    path = benchmark_dir() / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"benchmark manifest not found: {path} (set TOMODIFF_PHANTOMS)")
    return json.loads(path.read_text())


def benchmark_names() -> list[str]:
    return [Path(e["file"]).stem for e in benchmark_manifest()["entries"]]


def _npy_header(fh, where: str) -> None:
    try:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown format version {version}")
        (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(fh)
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(f"{where}: not a readable .npy array ({err})") from None


def check_volume_file(path) -> None:
    """A quick look at a volume file before any work: the header of a ``.npy`` file or of every
    array in a ``.npz``, the HDF5 signature of ``.h5``; a ValueError names the file when it is
    damaged or not what its name says (NIfTI files are left to their reader)."""
    import zipfile  # start-up time

    path = Path(path)
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            np.load(path, mmap_mode="r")  # the header, and a size that matches it; no data read
        except (ValueError, EOFError, OSError) as err:
            raise ValueError(f"{path}: not a readable .npy array ({err})") from None
    elif name.endswith(".npz"):
        try:
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    if member.endswith(".npy"):
                        with z.open(member) as fh:
                            _npy_header(fh, f"{path} [{member[:-4]}]")
        except (zipfile.BadZipFile, EOFError, OSError) as err:
            raise ValueError(f"{path}: not a readable .npz archive ({err})") from None
    elif name.endswith((".h5", ".hdf5", ".nxs")):
        from .kind import check_hdf5  # start-up time: h5py

        check_hdf5(path)


def _finite_3d(arr, where: str) -> torch.Tensor:
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f"{where}: expected a 3D (Z, Y, X) volume, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{where}: expected numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: volume contains NaN or Inf")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _from_h5(path: Path, dataset: str | None):
    import h5py  # start-up time: h5py

    with h5py.File(path, "r") as f:
        if dataset is None:
            dataset = next((d for d in ("volume", "reference") if d in f), None)
            if dataset is None:
                raise KeyError(f"{path}: no dataset 'volume' or 'reference'; name one as {path}:DATASET")
        if dataset not in f:
            raise KeyError(f"{path}: dataset '{dataset}' is missing")
        arr = f[dataset][()]
        attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f[dataset].attrs.items()}
    return _finite_3d(arr, f"{path}:{dataset}"), {"source": f"{path}:{dataset}", **{k: v for k, v in attrs.items()
                                                                                  if isinstance(v, (str, int, float, list))}}


def load_volume(spec: str) -> tuple[torch.Tensor, dict]:
    """Resolve ``spec`` (see the module doc) to ``(volume (Z, Y, X) float32, description)``."""
    spec = str(spec)
    head, _, tail = spec.partition(":")
    if head in phantoms.FAMILIES and tail:
        parts = tail.split(":")
        try:
            seed, size = int(parts[0]), int(parts[1]) if len(parts) > 1 else 64
        except ValueError as err:
            raise ValueError(f"phantom spec must be FAMILY:SEED[:SIZE], got {spec!r}") from err
        vol = phantoms.generate(head, (size,) * 3, seed)
        return vol, {"source": spec, "family": head, "seed": seed, "shape": [size] * 3}
    path = Path(head if tail and Path(head).suffix in (".h5", ".hdf5", ".nxs") else spec)
    if path.suffix == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            arr = np.load(path)
        except (ValueError, EOFError, OSError) as err:  # a damaged header, truncated data, a pickle
            raise ValueError(f"{path}: not a readable .npy array ({err})") from None
        return _finite_3d(arr, str(path)), {"source": str(path)}
    if path.suffix in (".h5", ".hdf5", ".nxs"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        return _from_h5(path, tail or None)
    # a benchmark entry by name
    manifest = benchmark_manifest()
    for entry in manifest["entries"]:
        if Path(entry["file"]).stem == spec:
            file = benchmark_dir() / entry["file"]
            if file.is_file():
                vol, desc = _from_h5(file, manifest.get("dataset", "volume"))
            elif entry.get("family") in phantoms.FAMILIES:
                vol = phantoms.generate(entry["family"], entry["shape"], entry["seed"])
                desc = {"source": f"regenerated {entry['file']}"}
            else:
                raise FileNotFoundError(f"{file}: benchmark volume missing and not regenerable")
            return vol, {**desc, "name": spec, "family": entry.get("family"), "seed": entry.get("seed")}
    raise ValueError(f"unknown volume {spec!r}: not a file (.npy/.h5), not FAMILY:SEED[:SIZE] with a family in "
                     f"{phantoms.FAMILIES}, not a benchmark entry ({', '.join(benchmark_names())})")
