"""Matrix-free Joseph projector: weights computed on the fly, per batch of angles, never stored.

The discretisation is the one of :mod:`tomodiff.ct.joseph` (and of the cached-matrix ``"torch"``
backend): each ray is stepped one voxel plane at a time along its dominant axis, the volume is
interpolated linearly in the other axes with zeros outside, and each sample is weighted by the ray
length per plane, ``voxel_size / |cos|``. Here the samples are taken with
``torch.nn.functional.grid_sample``, bilinear (in 3D within each voxel plane across the dominant
axis: the planes are grid_sample's batch), and the adjoint is grid_sample's own input gradient
(``aten.grid_sampler_2d_backward``): the same weights, scattered, so the dot test is exact to
rounding. CPU and CUDA alike.

Memory is bounded by the batch: at most :data:`SAMPLES_PER_BATCH` ray-plane samples (and samples ×
channels) live at once, whatever the geometry. Nothing depends on a cache, so the second
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
from .torch_backend import _slice_to_row_weights

NAME = "matrix_free"
#: Per device type: (ray-plane samples, samples × channels) computed at once. These bound the
#: temporaries of one batch: the sample grid (2 floats a sample) and grid_sample's output.
SAMPLES_PER_BATCH = {"cpu": (1 << 21, 1 << 23), "cuda": (1 << 25, 1 << 28)}
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
    def _batches(self, device, dtype, channels):
        """Yield ``(ray_ids, axis, grid, length)`` for every (angle batch, dominant axis) group.

        Rays are found on the CPU in float64 (a few numbers per ray); the samples' coordinates are
        computed on ``device`` in ``dtype``. Batch sizes follow :data:`SAMPLES_PER_BATCH`.

        ``grid``: grid_sample coordinates of every ray-plane sample in the :func:`_layout` of that
        axis (see :func:`_sample_grid`); ``length``: world length per plane of each ray, ``(R,)``;
        ``ray_ids``: the rays' flat indices in the sinogram's order.
        """
        g = self._plane
        shape = g.volume_shape
        rays_per_angle = math.prod(g.det_shape)
        samples, channel_samples = SAMPLES_PER_BATCH["cuda" if torch.device(device).type == "cuda" else "cpu"]
        per_angle = rays_per_angle * max(shape)
        step = max(1, min(samples // per_angle, channel_samples // (per_angle * max(1, channels))))
        for a0 in range(0, g.n_angles, step):
            a1 = min(a0 + step, g.n_angles)
            p, u = _index_rays(g, a0, a1)
            dominant = u.abs().argmax(dim=1)
            for axis in range(len(shape)):
                ids = torch.nonzero(dominant == axis).flatten()
                if ids.numel() == 0:
                    continue
                grid, length = _sample_grid(p[ids], u[ids], axis, shape, g.voxel_size, dtype, device)
                yield (ids + a0 * rays_per_angle).to(device), axis, grid, length.to(device, dtype)

    def _project(self, vol: torch.Tensor) -> torch.Tensor:
        """``vol`` ``(1, C, *volume_shape)`` -> line integrals ``(C, n_rays)``."""
        g = self._plane
        out = vol.new_zeros(vol.shape[1], g.n_angles * math.prod(g.det_shape))
        layouts = {}
        for ids, axis, grid, length in self._batches(vol.device, vol.dtype, vol.shape[1]):
            if axis not in layouts:
                layouts[axis] = _layout(vol, g.ndim, axis).contiguous()
            samples = torch.nn.functional.grid_sample(layouts[axis], grid, mode="bilinear",
                                                      padding_mode="zeros", align_corners=False)
            # 2D: (1, C, R, P) -> sum over planes; 3D: (P, C, R, 1) -> sum over the plane batch
            summed = samples[0].sum(-1) if g.ndim == 2 else samples.sum(0)[..., 0]
            out[:, ids] = summed * length  # (C, R)
        return out

    def _backproject(self, y: torch.Tensor, channels: int) -> torch.Tensor:
        """``y`` with ``channels`` items of ``self._plane.sino_shape`` -> ``(1, C, *volume_shape)``."""
        g = self._plane
        rows = y.reshape(channels, -1)
        sums = {}  # dominant axis -> adjoint accumulated in that axis's layout
        for ids, axis, grid, length in self._batches(y.device, y.dtype, channels):
            if axis not in sums:
                sums[axis] = _layout(y.new_zeros(1, channels, *g.volume_shape), g.ndim, axis).contiguous()
            weighted = rows[:, ids] * length  # (C, R)
            if g.ndim == 2:  # grid (1, R, P, 2): samples (1, C, R, P)
                grad = weighted[None, :, :, None].expand(1, channels, grid.shape[1], grid.shape[2])
            else:  # grid (P, R, 1, 2): samples (P, C, R, 1)
                grad = weighted[None, :, :, None].expand(grid.shape[0], channels, grid.shape[1], 1)
            part, _ = torch.ops.aten.grid_sampler_2d_backward(grad.contiguous(), sums[axis], grid,
                                                             _BILINEAR, _ZEROS, False, [True, False])
            sums[axis] += part
        out = y.new_zeros(1, channels, *g.volume_shape)
        for axis, part in sums.items():
            out += _layout(part, g.ndim, axis, inverse=True)
        return out


def _others(d: int, axis: int) -> list[int]:
    return [b for b in range(d) if b != axis]


def _layout(t: torch.Tensor, ndim: int, axis: int, inverse: bool = False) -> torch.Tensor:
    """The layout grid_sample reads for rays dominant along volume ``axis`` (a view; or back).

    2D, ``(1, C, Y, X)``: ``axis`` moved last, so that consecutive samples of a ray are neighbours
    in memory. 3D, ``(1, C, Z, Y, X)``: ``(P, C, H, W)``, the voxel planes along ``axis`` as
    grid_sample's batch and the other two axes in order, so that each sample is a bilinear
    interpolation within its plane. ``inverse`` maps such a tensor back to ``(1, C, *volume_shape)``
    (for 3D it is recognised by a plane batch of more than one; a volume of one plane along
    ``axis`` has no rays dominant along it).
    """
    if t.dim() == 5 or (inverse and t.dim() == 4 and t.shape[0] > 1):  # 3D
        perm = [axis, *_others(3, axis)]
        if inverse:  # (P, C, H, W) -> (C, P, H, W) -> (1, C, Z, Y, X)
            return t.transpose(0, 1).permute(0, *(1 + perm.index(b) for b in range(3)))[None]
        return t[0].permute(1 + axis, 0, *(1 + b for b in perm[1:]))
    perm = _others(2, axis) + [axis]
    if inverse:
        perm = [perm.index(b) for b in range(2)]
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


def _sample_grid(p, u, axis, shape, voxel_size, dtype, device="cpu"):
    """grid_sample coordinates of the Joseph samples of rays dominant along ``axis``.

    Sample ``k`` of a ray sits on voxel plane ``k`` of ``axis``; its other coordinates are affine in
    ``k`` (offsets and slopes in float64, the samples in ``dtype`` on ``device``). Coordinates are normalised for
    ``align_corners=False`` (index ``i`` of an axis of size ``S`` is ``(2i + 1)/S - 1``, valid for
    ``S == 1`` too) and laid out for :func:`_layout`: 2D ``(1, R, P, 2)`` as ``(plane, other)``
    coordinates of the image with ``axis`` last; 3D ``(P, R, 1, 2)`` as ``(W, H)`` coordinates
    within each plane. Returns ``(grid, length)``, ``length`` ``(R,)`` world units per plane.
    """
    d = len(shape)
    n_planes = shape[axis]
    plane = torch.arange(n_planes, dtype=dtype, device=device)
    slope = u / u[:, axis:axis + 1]  # change of each index per plane
    base = p - p[:, axis:axis + 1] * slope  # each index at plane 0

    def affine(b, out):  # normalised coordinate on axis b at every plane, written into out
        c0 = ((2 * base[:, b] + 1) / shape[b] - 1).to(device, dtype)
        c1 = (2 * slope[:, b] / shape[b]).to(device, dtype)
        if out.shape[0] == p.shape[0]:  # (R, P)
            torch.addcmul(c0[:, None], c1[:, None], plane[None, :], out=out)
        else:  # (P, R)
            torch.addcmul(c0[None, :], c1[None, :], plane[:, None], out=out)

    if d == 2:
        (b,) = _others(2, axis)
        grid = torch.empty(p.shape[0], n_planes, 2, dtype=dtype, device=device)
        grid[..., 0] = ((2 * torch.arange(n_planes, dtype=torch.float64) + 1) / n_planes - 1).to(device, dtype)
        affine(b, grid[..., 1])
        grid = grid[None]
    else:
        h, w = _others(3, axis)
        grid = torch.empty(n_planes, p.shape[0], 2, dtype=dtype, device=device)
        affine(w, grid[..., 0])
        affine(h, grid[..., 1])
        grid = grid[:, :, None, :]
    return grid, voxel_size / u[:, axis].abs()


def _compute_dtype(t: torch.Tensor):
    """grid_sample takes float32/float64 here; half precision is computed in float32."""
    if t.dtype in (torch.float32, torch.float64):
        return t, t.dtype
    return t.float(), t.dtype
