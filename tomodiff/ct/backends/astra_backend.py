"""ASTRA Toolbox backend: CPU 2D projectors and CUDA 3D projectors through DLPack.

``astra`` is imported lazily, inside functions, so ``import tomodiff.ct`` never needs it.

Safety: ASTRA's 3D code (and its 2D ``cuda`` projector) needs a usable GPU; without one a 3D call
kills the Python process (SIGFPE) and the 2D ``cuda`` projector silently returns zeros. Every
CUDA path here is entered only after ``astra.use_cuda()`` returned True; otherwise a RuntimeError
is raised before ASTRA is called.

Adjointness: ASTRA's 2D CPU projectors are exact transposes (in float32). Its 3D CUDA
backprojector is *not* the exact adjoint of its forward projector (ASTRA's own tests allow a 10%
dot-test error), so 3D kernels report ``matched = False``.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from ..geometry import Geometry
from ..rays import detector_frames

NAME = "astra"

# our kernel name -> ASTRA CPU projector type, per geometry kind
_CPU_PROJECTORS = {
    "parallel": {"linear": "linear", "line": "line", "strip": "strip"},
    "fan": {"line": "line_fanflat", "strip": "strip_fanflat"},
}
_DEFAULT_KERNEL = {"parallel": "linear", "fan": "line"}


def is_available() -> bool:
    """True when the ``astra`` package can be imported (CPU 2D at least)."""
    return importlib.util.find_spec("astra") is not None


def cuda_available() -> bool:
    """True when ASTRA is importable and reports a usable CUDA GPU."""
    if not is_available():
        return False
    import astra  # optional: astra
    try:
        return bool(astra.use_cuda())
    except Exception:  # noqa: BLE001 - an ASTRA build without CUDA may raise instead of returning
        return False


def to_astra(geometry: Geometry) -> tuple[dict, dict]:
    """``(vol_geom, proj_geom)`` ASTRA dicts describing ``geometry`` in the same world units.

    2D geometries without ``center_offset`` map to ASTRA's ``parallel`` / ``fanflat``, otherwise
    to ``parallel_vec`` / ``fanflat_vec``; 3D geometries always map to ``parallel3d_vec`` /
    ``cone_vec``. ASTRA 2D data layouts equal ours: volume ``(Y, X)``, sinogram ``(A, U)``.
    ASTRA 3D volumes are ``(Z, Y, X)`` like ours, but its projections are ``(V, A, U)`` (rows,
    angles, columns) where ours are ``(A, V, U)``: permute with ``.permute(1, 0, 2)``.
    Building the dicts calls no ASTRA computation, so it is safe without a GPU.
    """
    import astra  # optional: astra

    g = geometry
    vs = g.voxel_size
    f = {k: t.numpy() for k, t in detector_frames(g).items()}
    if g.ndim == 2:
        ny, nx = g.volume_shape
        vol = astra.create_vol_geom(ny, nx, -nx * vs / 2, nx * vs / 2, -ny * vs / 2, ny * vs / 2)
        (n_u,) = g.det_shape
        angles = np.asarray(g.angles, dtype=np.float64)
        if g.center_offset == 0.0:
            if g.kind == "parallel":
                return vol, astra.create_proj_geom("parallel", g.det_spacing, n_u, angles)
            return vol, astra.create_proj_geom("fanflat", g.det_spacing, n_u, angles,
                                               g.source_distance, g.detector_distance)
        first = f["ray"] if g.kind == "parallel" else f["src"]
        vectors = np.concatenate([first[:, :2], f["det"][:, :2], f["u"][:, :2]], axis=1)
        kind = "parallel_vec" if g.kind == "parallel" else "fanflat_vec"
        return vol, astra.create_proj_geom(kind, n_u, vectors)

    nz, ny, nx = g.volume_shape
    vol = astra.create_vol_geom(ny, nx, nz, -nx * vs / 2, nx * vs / 2, -ny * vs / 2, ny * vs / 2,
                                -nz * vs / 2, nz * vs / 2)
    # ASTRA's 3D voxel rows run along +y whereas our row 0 is at the top (+y, as in ASTRA 2D):
    # mirror y in every vector so that array index iy lands at the same voxel.
    mirror = np.array([1.0, -1.0, 1.0])
    first = f["ray"] if g.kind == "parallel" else f["src"]
    vectors = np.concatenate([first * mirror, f["det"] * mirror, f["u"] * mirror, f["v"] * mirror], axis=1)
    n_v, n_u = g.det_shape
    kind = "parallel3d_vec" if g.kind == "parallel" else "cone_vec"
    return vol, astra.create_proj_geom(kind, n_v, n_u, vectors)


class AstraKernel:
    """Forward/adjoint on ``(N, *volume_shape)`` / ``(N, *sino_shape)`` tensors via ASTRA.

    2D geometries use ASTRA's CPU projectors (``kernel``: ``"linear"`` (Joseph, default for
    parallel beam), ``"line"`` (default for fan beam: ASTRA has no CPU Joseph fan projector) or
    ``"strip"``); CUDA tensors are copied to the CPU and back. 3D geometries use ASTRA's
    ``cuda3d`` projector through DLPack (tensors stay on their device, float32) and raise a
    RuntimeError unless ``astra.use_cuda()`` is True. ``matched`` is False in 3D.
    """

    def __init__(self, geometry: Geometry, kernel: str | None = None):
        if not is_available():
            raise RuntimeError("backend 'astra' needs the astra-toolbox package "
                               "(pip install astra-toolbox); it is not importable")
        self.geometry = geometry
        g = geometry
        if g.ndim == 3:
            if kernel not in (None, "cuda3d"):
                raise ValueError(f"ASTRA 3D supports only kernel 'cuda3d' (or None), got {kernel!r}")
            if not cuda_available():
                raise RuntimeError(
                    f"ASTRA's 3D projectors need a CUDA GPU, but astra.use_cuda() is False; refusing "
                    f"to call them (without a GPU they crash the process). Use backend='torch' for "
                    f"3D {g.kind}-beam geometries on this machine.")
            self.kernel = "cuda3d"
            self.matched = False
        else:
            choices = _CPU_PROJECTORS[g.kind]
            self.kernel = kernel if kernel is not None else _DEFAULT_KERNEL[g.kind]
            if self.kernel not in choices:
                raise ValueError(f"ASTRA CPU kernels for {g.kind} beam are {sorted(choices)}, got {kernel!r}"
                                 + (" (ASTRA has no CPU linear/Joseph fan-beam projector)"
                                    if g.kind == "fan" and kernel == "linear" else ""))
            if self.kernel == "strip" and g.center_offset != 0.0:
                raise ValueError("ASTRA's 'strip' projectors do not support a detector shift "
                                 f"(center_offset={g.center_offset}); use kernel 'linear' or 'line'")
            self.matched = True
        self._projector_id = None

    # ------------------------------------------------------------------ ASTRA objects
    def _projector(self) -> int:
        if self._projector_id is None:
            import astra  # optional: astra
            vol, proj = to_astra(self.geometry)
            kind = self.kernel if self.geometry.ndim == 3 else _CPU_PROJECTORS[self.geometry.kind][self.kernel]
            self._projector_id = astra.create_projector(kind, proj, vol)
        return self._projector_id

    def __del__(self):
        if getattr(self, "_projector_id", None) is not None:
            try:
                import astra  # optional: astra
                (astra.projector3d if self.geometry.ndim == 3 else astra.projector).delete(self._projector_id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    # ------------------------------------------------------------------ apply
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        if g.ndim == 3:
            return self._apply3d(x, forward=True)
        from astra.experimental import direct_FP2D  # optional: astra
        vol = _host_float32(x)
        out = np.zeros((vol.shape[0], *g.sino_shape), dtype=np.float32)
        for i in range(vol.shape[0]):
            direct_FP2D(self._projector(), vol[i], out[i])
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        if g.ndim == 3:
            return self._apply3d(y, forward=False)
        from astra.experimental import direct_BP2D  # optional: astra
        sino = _host_float32(y)
        out = np.zeros((sino.shape[0], *g.volume_shape), dtype=np.float32)
        for i in range(sino.shape[0]):
            direct_BP2D(self._projector(), out[i], sino[i])
        return torch.from_numpy(out).to(device=y.device, dtype=y.dtype)

    def _apply3d(self, t: torch.Tensor, forward: bool) -> torch.Tensor:
        if not cuda_available():  # checked again: never enter ASTRA 3D without a GPU
            raise RuntimeError("ASTRA 3D projection needs a CUDA GPU (astra.use_cuda() is False)")
        from astra.experimental import direct_BP3D, direct_FP3D  # optional: astra
        g = self.geometry
        n_a, n_v, n_u = g.sino_shape
        src = t.detach().to(torch.float32)
        outs = []
        for i in range(src.shape[0]):
            if forward:
                vol = src[i].contiguous()
                proj = torch.zeros((n_v, n_a, n_u), dtype=torch.float32, device=t.device)
                direct_FP3D(self._projector(), vol, proj)
                outs.append(proj.permute(1, 0, 2))
            else:
                proj = src[i].permute(1, 0, 2).contiguous()  # ours (A, V, U) -> ASTRA (V, A, U)
                vol = torch.zeros(g.volume_shape, dtype=torch.float32, device=t.device)
                direct_BP3D(self._projector(), vol, proj)
                outs.append(vol)
        return torch.stack(outs).to(t.dtype)


def _host_float32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())
