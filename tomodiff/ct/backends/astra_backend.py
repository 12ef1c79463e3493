"""ASTRA Toolbox backend: CPU 2D projectors (also per slice of a 3D parallel-beam volume) and CUDA
3D projectors through DLPack.

``astra`` is imported lazily, inside functions, so ``import tomodiff.ct`` never needs it (nor does
``Projector(..., backend="auto")`` until it first projects: the import costs ~0.35 s).

Safety: ASTRA's 3D code (and its 2D ``cuda`` projector) needs a usable GPU; without one a 3D call
kills the Python process (SIGFPE) and the 2D ``cuda`` projector silently returns zeros. Every
CUDA path here is entered only after ``astra.use_cuda()`` returned True; otherwise a RuntimeError
is raised before ASTRA is called.

Adjointness: ASTRA's 2D CPU projectors (``linear``, ``line``, ``strip``; ``line_fanflat``,
``strip_fanflat``) are exact transposes: the backprojector walks the same rays with the same weights.
ASTRA computes in float32 only, so the dot test is at float32 rounding (measured ~1e-8 to 1e-7 on
2 × 640² slices, float32 and float64 inputs alike: float64 inputs are projected in float32). Its 3D
CUDA backprojector is *not* the exact adjoint of its forward projector (ASTRA's own tests allow a
10% dot-test error), so ``cuda3d`` reports ``matched = False``.

Discretisation: ASTRA's parallel-beam ``linear`` kernel is Joseph's, the one of the torch and
matrix-free backends; they differ only by ASTRA's float32 arithmetic (it steps the ray position
incrementally): measured relative differences 2e-6 on 48 × 40, 9e-6 on 128², 1.1e-4 on 640² (the
APS tooth's slice), far below Joseph's own error against exact line integrals (2.6e-3) and below
any measured noise. ASTRA has no CPU Joseph fan-beam projector: ``line_fanflat`` (intersection
lengths) and ``strip_fanflat`` (areas) differ from Joseph by 0.3-0.7% on a smooth phantom, so they
are opt-in only (``backend="astra"``), never chosen by ``"auto"``.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from ..geometry import Geometry, parallel_beam
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
    ``"strip"``); CUDA tensors are copied to the CPU and back. 3D parallel-beam geometries with a
    CPU kernel (``"linear"``, ``"line"``, ``"strip"``) run that 2D projector on every z-slice (the
    rays of one detector row stay in a z-plane), then interpolate slices to detector rows as the
    torch backends do; memory is the volume and sinogram, nothing else. ``"cuda3d"`` uses ASTRA's
    CUDA projector through DLPack (tensors stay on their device, float32) and raises a RuntimeError
    unless ``astra.use_cuda()`` is True; it is the only 3D cone kernel and ``matched`` is False for
    it. The default 3D kernel is ``"cuda3d"`` when ASTRA reports a usable GPU, else ``"linear"``
    for parallel beam (cone beam then raises).
    """

    def __init__(self, geometry: Geometry, kernel: str | None = None):
        if not is_available():
            raise RuntimeError("backend 'astra' needs the astra-toolbox package "
                               "(pip install astra-toolbox); it is not importable")
        self.geometry = geometry
        g = geometry
        self._slice_geometry, self._z_interp = g, None
        if g.ndim == 3 and g.kind == "parallel" and kernel is None and not cuda_available():
            kernel = "linear"  # no GPU: the CPU slice projector (Joseph), never ASTRA 3D
        if g.ndim == 3 and kernel in (None, "cuda3d"):
            if not cuda_available():
                raise RuntimeError(
                    f"ASTRA's 3D projectors need a CUDA GPU, but astra.use_cuda() is False; refusing "
                    f"to call them (without a GPU they crash the process). Use backend='torch' for "
                    f"3D {g.kind}-beam geometries on this machine.")
            self.kernel = "cuda3d"
            self.matched = False
        elif g.ndim == 3 and g.kind == "cone":
            raise ValueError(f"ASTRA 3D cone beam supports only kernel 'cuda3d' (or None), got {kernel!r}")
        else:
            if g.ndim == 3:  # parallel 3D on the CPU: the 2D projector of one z-slice
                from .torch_backend import _slice_to_row_weights  # start-up time
                self._slice_geometry = parallel_beam(g.volume_shape[1:], g.angles, det_shape=g.det_shape[1:],
                                                     voxel_size=g.voxel_size, det_spacing=g.det_spacing,
                                                     center_offset=g.center_offset)
                self._z_interp = _slice_to_row_weights(g)  # (V, Z) or None when rows == slices
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
            vol, proj = to_astra(self.geometry if self.kernel == "cuda3d" else self._slice_geometry)
            kind = self.kernel if self.kernel == "cuda3d" else _CPU_PROJECTORS[self.geometry.kind][self.kernel]
            self._projector_id = astra.create_projector(kind, proj, vol)
        return self._projector_id

    def __del__(self):
        if getattr(self, "_projector_id", None) is not None:
            try:
                import astra  # optional: astra
                (astra.projector3d if self.kernel == "cuda3d" else astra.projector).delete(self._projector_id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    # ------------------------------------------------------------------ apply
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        if self.kernel == "cuda3d":
            return self._apply3d(x, forward=True)
        if g.ndim == 2:
            return torch.from_numpy(self._fp_slices(_host_float32(x))).to(device=x.device, dtype=x.dtype)
        n, nz = x.shape[:2]
        n_a, n_v, n_u = g.sino_shape
        s = self._fp_slices(_host_float32(x.reshape(n * nz, *g.volume_shape[1:])))  # (N·Z, A, U)
        s = torch.from_numpy(s).to(_real_dtype(x)).reshape(n, nz, n_a, n_u)
        if self._z_interp is not None:  # slices -> detector rows
            s = torch.einsum("vz,nzau->nvau", self._z_interp.to(s), s)
        return s.permute(0, 2, 1, 3).contiguous().to(device=x.device, dtype=x.dtype)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        if self.kernel == "cuda3d":
            return self._apply3d(y, forward=False)
        if g.ndim == 2:
            return torch.from_numpy(self._bp_slices(_host_float32(y))).to(device=y.device, dtype=y.dtype)
        n = y.shape[0]
        nz = g.volume_shape[0]
        s = y.detach().to("cpu", _real_dtype(y)).permute(0, 2, 1, 3)  # (N, V, A, U)
        if self._z_interp is not None:  # the transpose of the slice -> row interpolation
            s = torch.einsum("vz,nvau->nzau", self._z_interp.to(s), s)
        x = self._bp_slices(_host_float32(s.reshape(n * nz, g.n_angles, g.det_shape[1])))
        return torch.from_numpy(x).reshape(n, *g.volume_shape).to(device=y.device, dtype=y.dtype)

    def _fp_slices(self, vol: np.ndarray) -> np.ndarray:
        """``(M, Y, X)`` float32 slices -> ``(M, A, U)`` float32 sinograms, one ASTRA call each."""
        from astra.experimental import direct_FP2D  # optional: astra
        out = np.zeros((vol.shape[0], *self._slice_geometry.sino_shape), dtype=np.float32)
        for i in range(vol.shape[0]):
            direct_FP2D(self._projector(), vol[i], out[i])
        return out

    def _bp_slices(self, sino: np.ndarray) -> np.ndarray:
        """``(M, A, U)`` float32 sinograms -> ``(M, Y, X)`` float32 backprojections."""
        from astra.experimental import direct_BP2D  # optional: astra
        out = np.zeros((sino.shape[0], *self._slice_geometry.volume_shape), dtype=np.float32)
        for i in range(sino.shape[0]):
            direct_BP2D(self._projector(), out[i], sino[i])
        return out

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


def _real_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype in which the slice -> row interpolation runs: the input's, float32 for half types."""
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32
