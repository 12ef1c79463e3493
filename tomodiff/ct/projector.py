"""``Projector``: the CT forward model as one :class:`~tomodiff.operators.LinearOperator`."""

from __future__ import annotations

import torch

from ..operators import LinearOperator
from . import backends
from .backends.matrix_cache import CACHE, DEFAULT_LIMIT
from .backends.torch_backend import matrix_bytes
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
        ``"torch"``: pure PyTorch Joseph projector as a cached sparse matrix, CPU and CUDA, every
        geometry, exact adjoint; fastest per call once built (and kept on disk, so a geometry
        already seen starts without a rebuild), but its size grows with rays × planes.
        ``"matrix_free"``: the same Joseph weights computed on the fly per batch of angles (never
        stored), CPU and CUDA, every geometry, exact adjoint; memory bounded whatever the size.
        ``"astra"``: ASTRA's CPU 2D projectors for 2D geometries and, per z-slice, for 3D parallel
        beam (exact adjoints, float32 arithmetic); its CUDA projectors (DLPack, float32) for 3D
        ones where ASTRA reports a usable GPU (``kernel="cuda3d"``, the 3D default there; cone beam
        needs it, RuntimeError without a GPU). ASTRA's 3D backprojector is only approximately the
        adjoint (``matched`` is False).
        ``"auto"`` (default), in this order: ``"astra"`` (``cuda3d``) when ``device`` is a CUDA
        device, the geometry is 3D and ASTRA reports a usable GPU; ``"torch"`` when its cached
        matrix (an upper bound, ``torch_backend.matrix_bytes``, float32) fits ``memory_budget``;
        ``"astra"`` with ASTRA's CPU ``linear`` kernel (Joseph's discretisation) for a parallel-beam
        geometry on the CPU when astra is importable; else ``"matrix_free"``. The choice is in
        ``.backend`` (and ``.kernel``).

        Why ASTRA's CPU projector where the matrix does not fit (measured at one thread, 2 rows ×
        640² × 181 views, the APS tooth; benchmarks/results/projector_startup.md): forward +
        adjoint of one slice 2.1 s against 5.5 s matrix-free, peak memory the same (no matrix).
        Its ``linear`` kernel is Joseph's: it agrees with the torch backends to ASTRA's float32
        arithmetic (relative 2e-6 on 48 × 40, 1.1e-4 on 640²: ASTRA steps along the ray in
        float32), well below Joseph's own error against exact line integrals (2.6e-3). Float64
        inputs are projected in float32 then (dot test ~1e-7 rather than 1e-15); pass
        ``backend="matrix_free"`` for float64 arithmetic. Fan beam never goes to ASTRA under
        ``"auto"``: ASTRA has no CPU Joseph fan projector (its ``line``/``strip`` fan kernels differ
        from Joseph by 0.3-0.7%), so it stays opt-in; where a fan matrix does not fit, ``"auto"``
        is ``"matrix_free"``.
    device: where the tensors will live; only used by ``"auto"`` to choose.
    memory_budget: bytes the cached matrix may take for ``"auto"`` to pick it; default 2 GiB
        (``matrix_cache.DEFAULT_LIMIT``, also the cache's own limit). When ``"auto"`` picks the
        matrix under a larger budget, the process-wide cache's limit is raised to it, so the matrix
        is kept rather than rebuilt on every call.
    kernel: backend option: ASTRA's CPU projector (``"linear"``, ``"line"``, ``"strip"``).

    Attributes
    ----------
    geometry, backend (the resolved name), matched (True when the adjoint is exact), kernel.
    """

    def __init__(self, geometry: Geometry, backend: str = "auto", *, device=None, kernel: str | None = None,
                 memory_budget: int | None = None):
        if not isinstance(geometry, Geometry):
            raise TypeError(f"geometry must be a tomodiff.ct.Geometry, got {type(geometry).__name__}")
        super().__init__(geometry.volume_shape, geometry.sino_shape)
        self.geometry = geometry
        if memory_budget is None:
            memory_budget = DEFAULT_LIMIT
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, float)) or memory_budget < 0:
            raise ValueError(f"memory_budget must be a number of bytes >= 0, got {memory_budget!r}")
        self.backend = self._resolve(backend, geometry, device, memory_budget)
        if self.backend == "torch" and backend == "auto":
            # the budget that admitted the matrix must also let the cache keep it
            CACHE.limit_bytes = max(CACHE.limit_bytes, int(memory_budget))
        if backend == "auto" and kernel is None and self.backend == "astra" and not _on_cuda(device):
            kernel = "linear"  # ASTRA's CPU Joseph projector (never its 3D CUDA code from a CPU device)
        options = {} if kernel is None else {"kernel": kernel}
        if self.backend in ("torch", "matrix_free") and options:
            raise ValueError(f"backend {self.backend!r} takes no kernel option (it is Joseph's), got kernel={kernel!r}")
        self._kernel = backends.kernel_class(self.backend)(geometry, **options)
        self.kernel = getattr(self._kernel, "kernel", "joseph")
        self.matched = self._kernel.matched

    @staticmethod
    def _resolve(backend: str, geometry: Geometry, device, memory_budget) -> str:
        if backend != "auto":
            backends.load(backend)  # unknown names raise here, naming the choices
            return backend
        on_cuda = _on_cuda(device)
        if on_cuda and geometry.ndim == 3 and backends.available_backends()["astra_cuda"]:
            return "astra"
        if matrix_bytes(geometry) <= memory_budget:
            return "torch"
        if not on_cuda and geometry.kind == "parallel" and backends.load("astra").is_available():
            return "astra"  # Joseph's weights, ~2.6x faster than matrix-free on the CPU (see the docstring)
        return "matrix_free"

    # Projections are computed in the input's precision (float32 for half types), never under an
    # enclosing torch.autocast: sparse products have no bf16 kernels and line integrals need fp32.
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self._kernel.forward(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(y.device.type, enabled=False):
            return self._kernel.adjoint(y)

    def __repr__(self) -> str:
        return f"Projector({self.geometry!r}, backend={self.backend!r})"


def _on_cuda(device) -> bool:
    return device is not None and torch.device(device).type == "cuda"
