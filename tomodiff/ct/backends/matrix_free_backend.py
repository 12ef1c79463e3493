"""Matrix-free Joseph projector: weights computed on the fly, per batch of angles, never stored.

The discretisation is the one of :mod:`tomodiff.ct.joseph` (and of the cached-matrix ``"torch"``
backend): each ray is stepped one voxel plane at a time along its dominant axis, the volume is
interpolated linearly in the other axes with zeros outside, and each sample is weighted by the ray
length per plane, ``voxel_size / |cos|``. Here the samples are taken with
``torch.nn.functional.grid_sample`` (bilinear in 2D; trilinear in 3D, where the dominant
coordinate sits exactly on a voxel plane so it reduces to Joseph's bilinear weights), and the
adjoint is grid_sample's own input gradient (``aten.grid_sampler_*_backward``): the same weights,
scattered, so the dot test is exact to rounding. CPU and CUDA alike.

Memory is bounded by the batch: at most :data:`SAMPLES_PER_BATCH` ray-plane samples (times the
number of channels) live at once, whatever the geometry. Nothing depends on a cache, so the second
call costs what the first did.

- 2D parallel / fan: rays through the ``(Y, X)`` image, batch items as channels.
- 3D parallel (rotation axis Z): the rays of one detector row stay in a z-plane, so the 2D slice
  projector runs with every (item, slice) as a channel, then a linear interpolation maps slices to
  detector rows (as the matrix backend does).
- cone: rays through the ``(Z, Y, X)`` volume, batch items as channels.
"""

from __future__ import annotations

import math

import torch

from ..geometry import Geometry, parallel_beam
from ..rays import rays

NAME = "matrix_free"
#: Ray-plane samples (per channel) computed at once; bounds the temporaries of one batch.
SAMPLES_PER_BATCH = 1 << 21
_BILINEAR, _ZEROS = 0, 0  # aten enums: interpolation_mode, padding_mode


def is_available() -> bool:
    return True


class MatrixFreeKernel:
    """Forward/adjoint on ``(N, *volume_shape)`` / ``(N, *sino_shape)`` tensors (any device)."""

    matched = True  # the adjoint scatters exactly the weights the forward gathers

    def __init__(self, geometry: Geometry):
        self.geometry = geometry
        g = geometry
        self._z_interp = None
        if g.kind == "parallel" and g.ndim == 3:  # the 2D projector of one z-slice
            from .torch_backend import _slice_to_row_weights
            self._plane = parallel_beam(g.volume_shape[1:], g.angles, det_shape=g.det_shape[1:],
                                        voxel_size=g.voxel_size, det_spacing=g.det_spacing,
                                        center_offset=g.center_offset)
            self._z_interp = _slice_to_row_weights(g)  # (V, Z) or None when rows == slices
        else:
            self._plane = g

    # ------------------------------------------------------------------ public
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, out_dtype = _compute_dtype(x)
        g = self.geometry
        if g.kind == "parallel" and g.ndim == 3:
            n, nz = x.shape[:2]
            s = self._project(x.reshape(1, n * nz, *g.volume_shape[1:]))  # (N·Z, A, U)
            n_a, n_v, n_u = g.sino_shape
            s = s.reshape(n, nz, n_a, n_u)
            if self._z_interp is not None:
                s = torch.einsum("vz,nzau->nvau", self._z_interp.to(s), s)
            return s.permute(0, 2, 1, 3).contiguous().to(out_dtype)
        return self._project(x[None]).reshape(x.shape[0], *g.sino_shape).to(out_dtype)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        y, out_dtype = _compute_dtype(y)
        g = self.geometry
        if g.kind == "parallel" and g.ndim == 3:
            n = y.shape[0]
            s = y.permute(0, 2, 1, 3)  # (N, V, A, U)
            if self._z_interp is not None:
                s = torch.einsum("vz,nvau->nzau", self._z_interp.to(s), s)
            nz = g.volume_shape[0]
            x = self._backproject(s.reshape(n * nz, g.n_angles, g.det_shape[1]), n * nz)
            return x.reshape(n, *g.volume_shape).to(out_dtype)
        return self._backproject(y, y.shape[0])[0].to(out_dtype)

    # ------------------------------------------------------------------ batches of rays
    def _batches(self, device, dtype):
        """Yield ``(ray_ids, axis, grid, length)`` for every (angle batch, dominant axis) group.

        ``grid``: grid_sample coordinates of every ray-plane sample in the volume permuted by
        :func:`_axis_last` (the dominant axis last, so consecutive samples of a ray are neighbours
        in memory), ``(1, R, P, 2)`` (2D) or ``(1, R, P, 1, 3)`` (3D); ``length``: world length per
        plane of each ray, ``(R,)``; ``ray_ids``: the rays' flat indices in the sinogram's order.
        """
        g = self._plane
        shape = g.volume_shape
        rays_per_angle = math.prod(g.det_shape)
        step = max(1, SAMPLES_PER_BATCH // (rays_per_angle * max(shape)))
        for a0 in range(0, g.n_angles, step):
            a1 = min(a0 + step, g.n_angles)
            p, u = _index_rays(g, a0, a1)
            dominant = u.abs().argmax(dim=1)
            for axis in range(len(shape)):
                ids = torch.nonzero(dominant == axis).flatten()
                if ids.numel() == 0:
                    continue
                grid, length = _sample_grid(p[ids], u[ids], axis, shape, g.voxel_size, dtype)
                yield (ids + a0 * rays_per_angle).to(device), axis, grid.to(device), length.to(device, dtype)

    def _project(self, vol: torch.Tensor) -> torch.Tensor:
        """``vol`` ``(1, C, *volume_shape)`` -> line integrals ``(C, n_rays)``."""
        g = self._plane
        out = vol.new_zeros(vol.shape[1], g.n_angles * math.prod(g.det_shape))
        permuted = {}
        for ids, axis, grid, length in self._batches(vol.device, vol.dtype):
            if axis not in permuted:
                permuted[axis] = _axis_last(vol, axis).contiguous()
            samples = torch.nn.functional.grid_sample(permuted[axis], grid, mode="bilinear",
                                                      padding_mode="zeros", align_corners=False)
            out[:, ids] = samples[0].flatten(2).sum(-1) * length  # (C, R)
        return out

    def _backproject(self, y: torch.Tensor, channels: int) -> torch.Tensor:
        """``y`` with ``channels`` items of ``self._plane.sino_shape`` -> ``(1, C, *volume_shape)``."""
        g = self._plane
        d = g.ndim
        rows = y.reshape(channels, -1)
        backward = torch.ops.aten.grid_sampler_2d_backward if d == 2 else torch.ops.aten.grid_sampler_3d_backward
        sums = {}  # dominant axis -> adjoint accumulated in that axis's permuted layout
        for ids, axis, grid, length in self._batches(y.device, y.dtype):
            if axis not in sums:
                sums[axis] = _axis_last(y.new_zeros(1, channels, *g.volume_shape), axis).contiguous()
            weighted = rows[:, ids] * length  # (C, R)
            view = (1, channels, grid.shape[1], grid.shape[2]) + ((1,) if d == 3 else ())
            grad = weighted.reshape(1, channels, -1, *([1] * (len(view) - 3))).expand(view).contiguous()
            part, _ = backward(grad, sums[axis], grid, _BILINEAR, _ZEROS, False, [True, False])
            sums[axis] += part
        out = y.new_zeros(1, channels, *g.volume_shape)
        for axis, part in sums.items():
            out += _axis_last(part, axis, inverse=True)
        return out


def _permutation(d: int, axis: int) -> list[int]:
    """Array axes in the order that puts ``axis`` last (the others keep their order)."""
    return [b for b in range(d) if b != axis] + [axis]


def _axis_last(t: torch.Tensor, axis: int, inverse: bool = False) -> torch.Tensor:
    """View of ``(1, C, *shape)`` with volume ``axis`` moved last (or back, with ``inverse``)."""
    perm = _permutation(t.dim() - 2, axis)
    if inverse:
        perm = [perm.index(b) for b in range(len(perm))]
    return t.permute(0, 1, *(2 + b for b in perm))


def _index_rays(g: Geometry, a0: int, a1: int):
    """Rays of angles ``[a0, a1)`` in continuous voxel-index coordinates, array-axis order.

    Returns ``(p, u)``, each ``(R, d)`` float64: a point on each ray and its unit direction, with
    coordinates ``((z,) y, x)`` in voxels (voxel centres at integers), as in ``joseph_entries``.
    """
    points, directions = rays(g, a0, a1)
    d = g.ndim
    order = [2, 1, 0] if d == 3 else [1, 0]
    sign = torch.ones(d, dtype=torch.float64)
    sign[1] = -1.0  # world y runs against the row index
    shape = torch.tensor(g.volume_shape, dtype=torch.float64)
    p = (points * sign / g.voxel_size)[:, order] + (shape - 1) / 2
    u = (directions * sign)[:, order]
    return p, u


def _sample_grid(p, u, axis, shape, voxel_size, dtype):
    """grid_sample coordinates of the Joseph samples of rays dominant along ``axis``.

    Sample ``k`` of a ray sits on voxel plane ``k`` of ``axis``; its other coordinates are affine in
    ``k`` (offsets and slopes in float64, the samples in ``dtype``). Coordinates are normalised for
    ``align_corners=False`` (index ``i`` of an axis of size ``S`` is ``(2i + 1)/S - 1``, valid for
    ``S == 1`` too) and ordered as grid_sample wants them for the volume permuted by
    :func:`_axis_last`: its last axis (``axis``) first.
    """
    d = len(shape)
    n_planes = shape[axis]
    plane = torch.arange(n_planes, dtype=dtype)
    slope = u / u[:, axis:axis + 1]  # change of each index per plane
    base = p - p[:, axis:axis + 1] * slope  # each index at plane 0
    grid = torch.empty(p.shape[0], n_planes, d, dtype=dtype)
    for col, b in enumerate(reversed(_permutation(d, axis))):
        size = shape[b]
        if b == axis:
            grid[..., col] = ((2 * plane.double() + 1) / size - 1).to(dtype)[None, :]
        else:
            torch.addcmul(((2 * base[:, b] + 1) / size - 1).to(dtype)[:, None],
                          (2 * slope[:, b] / size).to(dtype)[:, None], plane[None, :], out=grid[..., col])
    length = voxel_size / u[:, axis].abs()
    grid = grid[None] if d == 2 else grid[None, :, :, None, :]
    return grid, length


def _compute_dtype(t: torch.Tensor):
    """grid_sample takes float32/float64 here; half precision is computed in float32."""
    if t.dtype in (torch.float32, torch.float64):
        return t, t.dtype
    return t.float(), t.dtype
