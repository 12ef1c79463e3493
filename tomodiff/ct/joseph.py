"""Joseph's ray-driven projector weights, computed in vectorised torch.

For each ray, the axis along which it travels fastest (its *dominant* axis) is stepped one voxel
plane at a time; at each plane the volume is interpolated linearly (2D) or bilinearly (3D) in the
other axes, with zeros outside the volume, and the sample is weighted by the ray length per plane,
``voxel_size / |cos|`` (world units). This is the discretisation of ASTRA's CPU ``linear``
projector (P. M. Joseph, IEEE TMI 1982). The output is a list of matrix entries; the projector
assembles them into a sparse matrix whose transpose is the exact adjoint.
"""

from __future__ import annotations

import torch

# Entries (ray-plane-corner triples) computed at once; bounds the temporaries to ~100 MB.
_CHUNK_ENTRIES = 1 << 22


def joseph_entries(points: torch.Tensor, directions: torch.Tensor, volume_shape: tuple,
                   voxel_size: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Non-zero entries ``(rows, cols, weights)`` of the Joseph system matrix.

    Parameters
    ----------
    points, directions: ``(R, d)`` float64, world coordinates ``(x, y)`` or ``(x, y, z)`` (see
        :mod:`tomodiff.ct.geometry` for the axes); directions are unit vectors.
    volume_shape: ``(Y, X)`` or ``(Z, Y, X)`` with ``len == d``.
    voxel_size: world units.

    Returns
    -------
    rows (ray index in ``[0, R)``), cols (flat C-order voxel index), weights (world units), all
    1D; int64, int64, float64. No ``(row, col)`` pair repeats.
    """
    d = len(volume_shape)
    if points.shape[1] != d or directions.shape != points.shape:
        raise ValueError(f"points/directions must be (R, {d}), got {tuple(points.shape)} and "
                         f"{tuple(directions.shape)}")
    shape = torch.tensor(volume_shape, dtype=torch.float64)
    # world (x, y[, z]) -> array-axis order ((z,) y, x); y flips because row 0 is the top.
    order = [2, 1, 0] if d == 3 else [1, 0]
    sign = torch.ones(d, dtype=torch.float64)
    sign[1] = -1.0  # world y
    p = (points * sign / voxel_size)[:, order] + (shape - 1) / 2  # continuous voxel index
    u = (directions * sign)[:, order]  # unit direction, array-axis order
    strides = [1] * d
    for k in range(d - 2, -1, -1):
        strides[k] = strides[k + 1] * volume_shape[k + 1]

    dominant = u.abs().argmax(dim=1)
    rows, cols, vals = [], [], []
    for a in range(d):
        ray_ids = torch.nonzero(dominant == a).flatten()
        if ray_ids.numel() == 0:
            continue
        n_planes = volume_shape[a]
        per_ray = n_planes * 2 ** (d - 1)
        step = max(1, _CHUNK_ENTRIES // per_ray)
        for start in range(0, ray_ids.numel(), step):
            ids = ray_ids[start:start + step]
            r, c, w = _entries_along_axis(p[ids], u[ids], a, volume_shape, strides, voxel_size)
            rows.append(ids[r])
            cols.append(c)
            vals.append(w)
    if not rows:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty, torch.zeros(0, dtype=torch.float64)
    return torch.cat(rows), torch.cat(cols), torch.cat(vals)


def _entries_along_axis(p, u, a, volume_shape, strides, voxel_size):
    """Entries for rays whose dominant axis is ``a``; rows index into ``p``."""
    n_rays = p.shape[0]
    plane = torch.arange(volume_shape[a], dtype=torch.float64)
    t = (plane[None, :] - p[:, a:a + 1]) / u[:, a:a + 1]  # (n, planes): index-units along the ray
    length = voxel_size / u[:, a].abs()  # world length of the ray per plane

    # Start with the dominant-axis term, then fold in each interpolated axis (2 corners each).
    flat = (plane.to(torch.int64) * strides[a])[None, :].expand(n_rays, -1)[..., None]
    weight = length[:, None, None].expand(n_rays, volume_shape[a], 1)
    valid = torch.ones_like(weight, dtype=torch.bool)
    for b in range(len(volume_shape)):
        if b == a:
            continue
        f = p[:, b:b + 1] + t * u[:, b:b + 1]  # (n, planes) continuous index on axis b
        i0 = torch.floor(f)
        frac = f - i0
        i0 = i0.to(torch.int64)
        idx = torch.stack([i0, i0 + 1], dim=-1)  # (n, planes, 2)
        w = torch.stack([1.0 - frac, frac], dim=-1)
        ok = (idx >= 0) & (idx < volume_shape[b])
        flat = (flat[..., :, None] + idx[..., None, :] * strides[b]).flatten(-2)
        weight = (weight[..., :, None] * w[..., None, :]).flatten(-2)
        valid = (valid[..., :, None] & ok[..., None, :]).flatten(-2)
    keep = valid & (weight > 0)
    rows = torch.arange(n_rays)[:, None, None].expand_as(keep)[keep]
    return rows, flat[keep], weight[keep]
