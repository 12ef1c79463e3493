"""Projector backends, in a registry with availability flags and lazy imports (ODL-style).

Each backend module defines ``NAME``, ``is_available()`` and a kernel class with ``forward``,
``adjoint`` (on ``(N, *shape)`` tensors) and ``matched``. Modules are imported on first use, so a
missing optional dependency (ASTRA) only matters when that backend is asked for.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "torch": "tomodiff.ct.backends.torch_backend",
    "matrix_free": "tomodiff.ct.backends.matrix_free_backend",
    "astra": "tomodiff.ct.backends.astra_backend",
}
_KERNELS = {"torch": "TorchKernel", "matrix_free": "MatrixFreeKernel", "astra": "AstraKernel"}


def backend_names() -> tuple[str, ...]:
    """Every registered backend name (available or not)."""
    return tuple(_MODULES)


def load(name: str):
    """The backend module for ``name``; ValueError naming the choices for an unknown one."""
    if name not in _MODULES:
        raise ValueError(f"unknown projector backend {name!r}; expected 'auto' or one of {backend_names()}")
    return importlib.import_module(_MODULES[name])


def kernel_class(name: str):
    return getattr(load(name), _KERNELS[name])


def available_backends() -> dict[str, bool]:
    """``{name: importable}``, plus ``"astra_cuda"``: whether ASTRA reports a usable GPU."""
    out = {name: load(name).is_available() for name in _MODULES}
    out["astra_cuda"] = out["astra"] and load("astra").cuda_available()
    return out
