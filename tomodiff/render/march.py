"""Ray marching with the Joseph projector's samples: rays grouped by their dominant axis and direction.

Each ray is stepped one voxel plane at a time along the axis it travels fastest on, and the volume
is interpolated bilinearly within each plane (zeros outside), one step being ``voxel_size / |cos|``
long: exactly the samples of :mod:`tomodiff.ct.joseph`, taken the way the matrix-free CT backend
takes them (its sample grid and plane layout are reused, so the two cannot drift). What differs
from a projector is the order: samples are composited along the direction light travels, so rays
are grouped by (dominant axis, sign of the direction along it) and a group running against the
index has its planes flipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..ct.backends.matrix_free_backend import _layout, _sample_grid
from .composite import composite


@dataclass(frozen=True)
class RayGroup:
    """Rays sharing a dominant axis and direction along it.

    ids: ``(R,)`` flat indices into the images ``(A, V, U)``; axis: 0, 1, 2 for Z, Y, X;
    ascending: True when light runs towards increasing index on ``axis``; p, u: ``(R, 3)`` float64
    a point on each ray and its unit direction in continuous voxel-index coordinates ``(z, y, x)``.
    """

    ids: torch.Tensor
    axis: int
    ascending: bool
    p: torch.Tensor
    u: torch.Tensor


def to_index(points: torch.Tensor, directions: torch.Tensor, volume_shape, voxel_size: float):
    """World ``(x, y, z)`` rays to continuous voxel indices ``(z, y, x)`` (voxel centres at
    integers), as in :func:`tomodiff.ct.joseph.joseph_entries`: world y runs against the row index."""
    sign = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    order = [2, 1, 0]
    shape = torch.tensor(volume_shape, dtype=torch.float64)
    p = (points * sign / voxel_size)[:, order] + (shape - 1) / 2
    u = (directions * sign)[:, order]
    return p, u


def group_rays(p: torch.Tensor, u: torch.Tensor) -> list[RayGroup]:
    """Split rays ``(R, 3)`` (index coordinates) into :class:`RayGroup` s, at most six."""
    dominant = u.abs().argmax(dim=1)  # ties go to the first axis, as in the projector
    groups = []
    for axis in range(3):
        for ascending in (True, False):
            along = u[:, axis]
            mask = (dominant == axis) & ((along > 0) if ascending else (along < 0))
            ids = torch.nonzero(mask).flatten()
            if ids.numel():
                groups.append(RayGroup(ids, axis, ascending, p[ids], u[ids]))
    return groups


def march(layout: torch.Tensor, p: torch.Tensor, u: torch.Tensor, axis: int, ascending: bool, volume_shape,
          voxel_size: float, background: float) -> torch.Tensor:
    """Radiance of rays ``(p, u)`` (one :class:`RayGroup`'s, or a slice of them) through ``layout``.

    layout: the volume ``(1, N·2, Z, Y, X)`` in the plane layout of ``axis``, ``(P, N·2, H, W)``
        (``_layout``), channels interleaved per item as (emission, absorption).
    Returns ``(N, R)``. Everything it allocates is freed on return (the caller may recompute it in
    the backward pass instead of storing it).
    """
    grid, length = _sample_grid(p, u, axis, volume_shape, voxel_size, layout.dtype, layout.device)
    samples = F.grid_sample(layout, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    n_planes, channels, n_rays = samples.shape[:3]
    samples = samples.reshape(n_planes, channels // 2, 2, n_rays)  # (P, N, 2, R)
    if not ascending:
        samples = samples.flip(0)  # planes in the order light crosses them
    return composite(samples[:, :, 0], samples[:, :, 1], length.to(layout), background)


def plane_layout(volume: torch.Tensor, axis: int) -> torch.Tensor:
    """``(1, C, Z, Y, X)`` -> the contiguous ``(P, C, H, W)`` layout :func:`march` reads for ``axis``."""
    return _layout(volume, 3, axis).contiguous()
