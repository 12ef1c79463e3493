"""``Projector``: the CT forward model as one :class:`~tomodiff.operators.LinearOperator`."""

from __future__ import annotations

import torch

from ..operators import LinearOperator
from . import backends
from .geometry import Geometry


class Projector(LinearOperator):
    """Line integrals through a volume along the rays of ``geometry`` (world units).

    Maps ``(B, C, *geometry.volume_shape)`` volumes (``(Y, X)`` or ``(Z, Y, X)``) to
    ``(B, C, *geometry.sino_shape)`` projections (``(A, U)`` or ``(A, V, U)``); ``A(x)`` is
    differentiable, with the backend's adjoint as its backward.

    Parameters
    ----------
    geometry: a :class:`Geometry` from ``parallel_beam`` / ``fan_beam`` / ``cone_beam``.
    backend:
        ``"torch"``: pure PyTorch Joseph projector, CPU and CUDA, every geometry, exact adjoint.
        ``"astra"``: ASTRA's CPU projectors for 2D geometries, its CUDA projectors (DLPack,
        float32) for 3D ones, which exist only with a usable GPU (RuntimeError otherwise). ASTRA's
        3D backprojector is only approximately the adjoint (``matched`` is False).
        ``"auto"`` (default): ``"astra"`` when ``device`` is a CUDA device, the geometry is 3D and
        ASTRA reports a usable GPU; ``"torch"`` otherwise. The choice is in ``.backend``.
    device: where the tensors will live; only used by ``"auto"`` to choose.
    kernel: backend option: ASTRA's CPU projector (``"linear"``, ``"line"``, ``"strip"``).

    Attributes
    ----------
    geometry, backend (the resolved name), matched (True when the adjoint is exact), kernel.
    """

    def __init__(self, geometry: Geometry, backend: str = "auto", *, device=None, kernel: str | None = None):
        if not isinstance(geometry, Geometry):
            raise TypeError(f"geometry must be a tomodiff.ct.Geometry, got {type(geometry).__name__}")
        super().__init__(geometry.volume_shape, geometry.sino_shape)
        self.geometry = geometry
        self.backend = self._resolve(backend, geometry, device)
        options = {} if kernel is None else {"kernel": kernel}
        if self.backend == "torch" and options:
            raise ValueError(f"backend 'torch' takes no kernel option (it is Joseph's), got kernel={kernel!r}")
        self._kernel = backends.kernel_class(self.backend)(geometry, **options)
        self.kernel = getattr(self._kernel, "kernel", "joseph")
        self.matched = self._kernel.matched

    @staticmethod
    def _resolve(backend: str, geometry: Geometry, device) -> str:
        if backend != "auto":
            backends.load(backend)  # unknown names raise here, naming the choices
            return backend
        on_cuda = device is not None and torch.device(device).type == "cuda"
        if on_cuda and geometry.ndim == 3 and backends.available_backends()["astra_cuda"]:
            return "astra"
        return "torch"

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._kernel.forward(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._kernel.adjoint(y)

    def __repr__(self) -> str:
        return f"Projector({self.geometry!r}, backend={self.backend!r})"
