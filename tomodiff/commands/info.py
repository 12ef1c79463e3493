"""``tomodiff info``: versions of the stack and what hardware it can use."""

from __future__ import annotations

import importlib
import json


def add_parser(sub):
    p = sub.add_parser("info", help="print versions, GPU/ASTRA-CUDA availability and thread count",
                       description="Print the versions of tomodiff's dependencies and the hardware it can use.")
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
        import astra
        return bool(astra.use_cuda())
    except Exception:
        return False


def collect() -> dict:
    import torch

    from .._version import __version__
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


def run(args) -> int:
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
