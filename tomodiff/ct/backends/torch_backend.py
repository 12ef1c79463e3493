"""Pure-PyTorch projector: Joseph weights in a cached sparse CSR matrix, CPU or CUDA.

How it is fast: the system matrix is built once per (geometry, dtype, device) and applied with
one sparse @ dense product whose dense columns are all slices of all batch items at once, so
every non-zero weight is used for a contiguous row of ``N·Z`` values. The adjoint is the
explicitly stored transpose (also CSR, since CSR @ dense is the fast kernel), so the dot test is
exact to rounding. Between processes the matrices are kept on disk (:mod:`tomodiff.ct.disk_cache`),
so a geometry already seen starts without a rebuild.

- 2D parallel / fan: one ``(A·U, Y·X)`` matrix.
- 3D parallel (rotation axis Z): rays stay in a z-plane, so Joseph's 3D weights factor into the
  2D matrix of one slice times a linear interpolation from slices to detector rows (the identity
  when ``V == Z`` and ``det_spacing == voxel_size``). The slice matrix is shared by all slices.
- cone: a genuinely 3D matrix, split into blocks of angles; the first blocks that fit the cache
  budget (:data:`CACHE`) stay cached, the others are rebuilt on each call so memory stays bounded.

:func:`matrix_bytes` bounds the cached size from above; ``Projector(backend="auto")`` uses it to
choose between this backend and the matrix-free one.
"""

from __future__ import annotations

import math
import time
import warnings

import torch

from ..geometry import Geometry, parallel_beam
from ..joseph import joseph_entries
from ..rays import rays
from .matrix_cache import CACHE

NAME = "torch"
# Upper bound on entries in one cone-beam angle block (~16M entries ≈ 130 MB as float32 CSR + CSRᵀ).
_CONE_BLOCK_ENTRIES = 1 << 24


def is_available() -> bool:
    return True


class TorchKernel:
    """Forward/adjoint on ``(N, *volume_shape)`` / ``(N, *sino_shape)`` tensors (any device)."""

    matched = True  # the adjoint is the transposed matrix

    def __init__(self, geometry: Geometry):
        self.geometry = geometry
        g = geometry
        if g.kind == "cone":
            n_v, n_u = g.det_shape
            per_angle = n_v * n_u * max(g.volume_shape) * 4
            self._block = max(1, _CONE_BLOCK_ENTRIES // per_angle)
        elif g.ndim == 3:  # parallel 3D: the shared matrix of one z-slice
            self._slice_geometry = parallel_beam(g.volume_shape[1:], g.angles, det_shape=g.det_shape[1:],
                                                 voxel_size=g.voxel_size, det_spacing=g.det_spacing,
                                                 center_offset=g.center_offset)
            self._z_interp = _slice_to_row_weights(g)  # None when rows == slices

    # ------------------------------------------------------------------ public
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, out_dtype = _compute_dtype(x)
        g = self.geometry
        if g.kind == "cone":
            y = self._cone_forward(x)
        elif g.ndim == 3:
            y = self._parallel3d_forward(x)
        else:
            A, _ = self._matrices(g, x.dtype, x.device)
            n = x.shape[0]
            y = (A @ x.reshape(n, -1).T.contiguous()).T.reshape(n, *g.sino_shape)
        return y.to(out_dtype)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        y, out_dtype = _compute_dtype(y)
        g = self.geometry
        if g.kind == "cone":
            x = self._cone_adjoint(y)
        elif g.ndim == 3:
            x = self._parallel3d_adjoint(y)
        else:
            _, AT = self._matrices(g, y.dtype, y.device)
            n = y.shape[0]
            x = (AT @ y.reshape(n, -1).T.contiguous()).T.reshape(n, *g.volume_shape)
        return x.to(out_dtype)

    # ------------------------------------------------------------------ parallel 3D
    def _parallel3d_forward(self, x):
        n, nz, ny, nx = x.shape
        n_a, n_v, n_u = self.geometry.sino_shape
        A, _ = self._matrices(self._slice_geometry, x.dtype, x.device)
        cols = x.permute(2, 3, 0, 1).reshape(ny * nx, n * nz)  # one column per (item, slice)
        s = A @ cols  # (A·U, N·Z)
        if self._z_interp is not None:
            s = s.reshape(-1, nz) @ self._z_interp.to(s).T  # slices -> detector rows
        return s.reshape(n_a, n_u, n, n_v).permute(2, 0, 3, 1).contiguous()

    def _parallel3d_adjoint(self, y):
        n, n_a, n_v, n_u = y.shape
        nz, ny, nx = self.geometry.volume_shape
        _, AT = self._matrices(self._slice_geometry, y.dtype, y.device)
        s = y.permute(1, 3, 0, 2).reshape(-1, n_v)  # ((A·U·N), V)
        if self._z_interp is not None:
            s = s @ self._z_interp.to(s)
        cols = AT @ s.reshape(n_a * n_u, n * nz)
        return cols.reshape(ny, nx, n, nz).permute(2, 3, 0, 1).contiguous()

    # ------------------------------------------------------------------ cone
    def _cone_blocks(self):
        n_a = self.geometry.n_angles
        return [(a, min(a + self._block, n_a)) for a in range(0, n_a, self._block)]

    def _cone_forward(self, x):
        n = x.shape[0]
        cols = x.reshape(n, -1).T.contiguous()
        out = [self._matrices(self.geometry, x.dtype, x.device, block)[0] @ cols
               for block in self._cone_blocks()]
        return torch.cat(out).T.reshape(n, *self.geometry.sino_shape)

    def _cone_adjoint(self, y):
        n = y.shape[0]
        rows = y.reshape(n, -1).T.contiguous()  # (A·V·U, N)
        per_angle = rows.shape[0] // self.geometry.n_angles
        x = None
        for a0, a1 in self._cone_blocks():
            AT = self._matrices(self.geometry, y.dtype, y.device, (a0, a1))[1]
            part = AT @ rows[a0 * per_angle:a1 * per_angle]
            x = part if x is None else x.add_(part)
        return x.T.reshape(n, *self.geometry.volume_shape)

    # ------------------------------------------------------------------ matrices
    def _matrices(self, g: Geometry, dtype, device, block=None):
        a0, a1 = block if block is not None else (0, g.n_angles)
        group = (g, dtype, str(torch.device(device)))  # the blocks of one matrix never evict each other
        return CACHE.get((*group, a0, a1), lambda: cached_build(g, dtype, device, a0, a1), group=group)


def matrix_bytes(g: Geometry, dtype=torch.float32) -> int:
    """Upper bound on the bytes this backend caches for ``g`` (``A`` and ``Aᵀ`` as CSR).

    Counts every ray-plane sample as ``2^(d-1)`` entries (d = 2 for 2D and for parallel 3D, whose
    matrix is that of one slice; 3 for cone), each a value and an int32 column index, twice (``A``
    and ``Aᵀ``). Samples outside the volume are dropped when building, so the true size is smaller
    (by about a quarter for a square image under a detector as wide as its side).
    """
    value = torch.empty(0, dtype=dtype).element_size()
    if g.kind == "cone":
        n_rays, d, planes, n_cols = g.n_angles * math.prod(g.det_shape), 3, max(g.volume_shape), math.prod(g.volume_shape)
    else:
        shape = g.volume_shape[-2:]
        n_rays, d, planes, n_cols = g.n_angles * g.det_shape[-1], 2, max(shape), math.prod(shape)
    entries = n_rays * planes * 2 ** (d - 1)
    return 2 * entries * (value + 4) + 4 * (n_rays + n_cols + 2)


def cached_build(g: Geometry, dtype=torch.float32, device="cpu", angle_start=0, angle_stop=None):
    """:func:`build_matrices` through the on-disk cache (:mod:`tomodiff.ct.disk_cache`): read back when a
    process built them before, else built and (when the build took long enough to be worth it) stored."""
    from .. import disk_cache  # start-up time

    block = (angle_start, g.n_angles if angle_stop is None else angle_stop)
    name = disk_cache.key(g, dtype, block)
    found = disk_cache.load(name)
    if found is not None:
        return tuple(m.to(device) for m in found)
    t0 = time.perf_counter()
    A, AT = build_matrices(g, dtype, "cpu", *block)
    if time.perf_counter() - t0 >= disk_cache.min_seconds():
        disk_cache.store(name, (A, AT))
    return A.to(device), AT.to(device)


def build_matrices(g: Geometry, dtype=torch.float64, device="cpu", angle_start=0, angle_stop=None):
    """``(A, Aᵀ)`` as CSR tensors for the rays of angles ``[angle_start, angle_stop)``.

    ``A`` has shape ``(rays, prod(volume_shape))`` with rays ordered like the sinogram; weights
    are computed in float64 and then cast, so float32 and float64 operators agree to rounding.
    For parallel 3D geometries this is the full 3D matrix (used in tests; the projector factors it).

    Memory: ``A`` is assembled from blocks of angles of at most :data:`_BUILD_ENTRIES` entries, each
    cast to ``dtype`` as soon as it is sorted, and ``Aᵀ`` is sorted out of the finished ``A``; so the
    float64/int64 temporaries never exist for the whole matrix at once (they used to: a 256² fan
    slice peaked at ~7× its matrix).
    """
    stop = g.n_angles if angle_stop is None else angle_stop
    n_cols = math.prod(g.volume_shape)
    per_angle = math.prod(g.det_shape) * max(g.volume_shape) * 2 ** (g.ndim - 1)
    step = max(1, _BUILD_ENTRIES // per_angle)
    counts, cols, vals = [], [], []
    for a0 in range(angle_start, stop, step):
        points, directions = rays(g, a0, min(a0 + step, stop))
        r, c, v = joseph_entries(points, directions, g.volume_shape, g.voxel_size)
        order = torch.argsort(r * n_cols + c)  # row-major: rows ascending, columns ascending within a row
        counts.append(torch.bincount(r, minlength=points.shape[0]))
        cols.append(c[order].to(torch.int32 if n_cols < 2**31 else torch.int64))
        vals.append(v[order].to(dtype))
        del points, directions, r, c, v, order
    counts = torch.cat(counts) if counts else torch.zeros(0, dtype=torch.int64)
    cols = torch.cat(cols) if cols else torch.zeros(0, dtype=torch.int32)
    vals = torch.cat(vals) if vals else torch.zeros(0, dtype=dtype)
    n_rows = counts.numel()
    # int32 indices halve index memory and take the faster MKL / cuSPARSE path.
    index = torch.int32 if max(vals.numel(), n_rows, n_cols) < 2**31 - 1 else torch.int64
    cols = cols.to(index)
    crow = _offsets(counts, index)
    # Aᵀ: a stable sort of A's column indices keeps the rows ascending within each column
    rows = torch.repeat_interleave(torch.arange(n_rows, dtype=index), counts)
    t_rows, order = torch.sort(cols, stable=True)
    t_crow = _offsets(torch.bincount(t_rows, minlength=n_cols), index)
    del t_rows
    t_cols, t_vals = rows[order], vals[order]
    del rows, order
    A = _sparse_csr(crow, cols, vals, (n_rows, n_cols))
    AT = _sparse_csr(t_crow, t_cols, t_vals, (n_cols, n_rows))
    return A.to(device), AT.to(device)


# Entries of one block of angles in build_matrices (~2M: ~50 MB of float64/int64 temporaries each).
_BUILD_ENTRIES = 1 << 21


def _offsets(counts, index_dtype):
    crow = torch.zeros(counts.numel() + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(counts, 0)
    return crow.to(index_dtype)


def _sparse_csr(crow, cols, vals, shape):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(crow, cols, vals, size=shape, check_invariants=False)


def _slice_to_row_weights(g: Geometry):
    """``(V, Z)`` linear interpolation from slice centres to detector-row heights, or None."""
    n_z, n_v = g.volume_shape[0], g.det_shape[0]
    if n_z == n_v and g.det_spacing == g.voxel_size:
        return None
    z = (torch.arange(n_v, dtype=torch.float64) - (n_v - 1) / 2) * g.det_spacing / g.voxel_size
    f = z + (n_z - 1) / 2  # continuous slice index of each detector row
    i0 = torch.floor(f)
    frac = f - i0
    w = torch.zeros(n_v, n_z, dtype=torch.float64)
    for idx, wt in ((i0, 1 - frac), (i0 + 1, frac)):
        ok = (idx >= 0) & (idx < n_z)
        w[torch.nonzero(ok).flatten(), idx[ok].long()] += wt[ok]
    return w


def _compute_dtype(t: torch.Tensor):
    """Sparse kernels take float32/float64; half precision is computed in float32."""
    if t.dtype in (torch.float32, torch.float64):
        return t, t.dtype
    return t.float(), t.dtype
