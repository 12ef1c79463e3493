"""``tomodiff info``: versions of the stack and what hardware it can use."""

from __future__ import annotations

import importlib
import json
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("info", help="versions, GPU/ASTRA-CUDA availability, threads; or describe an HDF5 file",
                       description="Without FILE: print the versions of tomodiff's dependencies and the "
                                   "hardware it can use. With FILE: list its datasets (shape, dtype), "
                                   "geometry and provenance.")
    p.add_argument("file", nargs="?", type=Path, help="an HDF5 file to describe")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=run)


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # not installed, or broken: report as absent
        return None
    return getattr(mod, "__version__", "unknown")


def _astra_cuda() -> bool:
    """ASTRA's own check; asking it is safe without a GPU (unlike any CUDA call)."""
    try:
        import astra  # start-up time
        return bool(astra.use_cuda())
    except Exception:
        return False


def collect() -> dict:
    import torch  # start-up time

    from .._version import __version__  # start-up time
    return {
        "tomodiff": __version__,
        "versions": {name: _version(mod) for name, mod in
                     [("torch", "torch"), ("numpy", "numpy"), ("astra-toolbox", "astra"), ("h5py", "h5py"),
                      ("napari", "napari"), ("tomopy", "tomopy"), ("scikit-image", "skimage")]},
        "torch_cuda": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "astra_cuda": _astra_cuda(),
        "torch_threads": torch.get_num_threads(),
    }


def describe_file(path: Path) -> dict:
    """Datasets (shape, dtype) and attributes of any HDF5 file; geometry/provenance decoded."""
    import h5py  # start-up time

    from ..io.kind import check_hdf5  # start-up time

    check_hdf5(path)  # missing, a directory, not HDF5 or truncated: one clear line
    out = {"file": str(path), "datasets": {}, "attributes": {}}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out["datasets"][name] = {"shape": list(obj.shape), "dtype": str(obj.dtype)}

    with h5py.File(path, "r") as f:
        try:
            f.visititems(visit)
        except (OSError, RuntimeError, KeyError) as err:
            raise ValueError(f"{path}: damaged HDF5 file ({str(err).splitlines()[0] if str(err) else err!r})") from err
        out["attributes"] = {k: _plain(v) for k, v in f.attrs.items()}
        if "sinogram" in f and "geometry_json" in f["sinogram"].attrs:
            out["geometry"] = json.loads(f["sinogram"].attrs["geometry_json"])
        if "provenance" in f and "json" in f["provenance"].attrs:
            out["provenance"] = json.loads(f["provenance"].attrs["json"])
    return out


def _plain(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    return v.decode() if isinstance(v, bytes) else v


def run(args) -> int:
    if args.file is not None:
        desc = describe_file(args.file)
        if args.json:
            print(json.dumps(desc, indent=2, default=str))
            return 0
        print(desc["file"])
        for name, d in desc["datasets"].items():
            print(f"  /{name:<28} {str(tuple(d['shape'])):<20} {d['dtype']}")
        for key in ("geometry", "provenance"):
            if key in desc:
                print(f"  {key}: {json.dumps(desc[key], default=str)[:400]}")
        return 0
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"tomodiff {info['tomodiff']}")
    for name, version in info["versions"].items():
        print(f"  {name:<14} {version or 'not installed'}")
    gpus = ", ".join(info["cuda_devices"]) or "none"
    print(f"  torch CUDA     {info['torch_cuda']} (devices: {gpus})")
    print(f"  ASTRA CUDA     {info['astra_cuda']}")
    print(f"  torch threads  {info['torch_threads']}")
    return 0
