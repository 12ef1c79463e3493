"""Source, detector and ray positions of a :class:`Geometry`, in world coordinates ``(x, y, z)``.

One place turns a geometry into vectors; both the torch projector (rays) and the ASTRA
conversion (ASTRA's ``*_vec`` geometries) read them from here, so the two backends cannot drift.
"""

from __future__ import annotations

import torch

from .geometry import Geometry


def detector_frames(g: Geometry, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """Per-angle vectors, each ``(A, 3)`` in world units.

    ``ray``: parallel-beam ray direction (unit), or ``src``: fan/cone source position;
    ``det``: world position of detector pixel (row (V-1)/2, column (U-1)/2), i.e. the geometric
    centre of the detector (``center_offset`` is already applied: the rotation axis projects to
    column ``(U-1)/2 + center_offset``);
    ``u``, ``v``: the step from one detector column / row to the next (length ``det_spacing``).
    """
    th = torch.tensor(g.angles, dtype=dtype)
    s, c, zero = torch.sin(th), torch.cos(th), torch.zeros_like(th)
    toward_det = torch.stack([-s, c, zero], dim=1)  # unit vector from the axis towards the detector
    u = g.det_spacing * torch.stack([c, s, zero], dim=1)
    v = g.det_spacing * torch.stack([zero, zero, torch.ones_like(th)], dim=1)
    out = {"u": u, "v": v}
    if g.kind == "parallel":
        out["ray"] = toward_det
        det_centre = torch.zeros_like(u)
    else:
        out["src"] = -g.source_distance * toward_det
        det_centre = g.detector_distance * toward_det
    out["det"] = det_centre - g.center_offset * u
    return out


def rays(g: Geometry, angle_start: int = 0, angle_stop: int | None = None,
         dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on and directions of the rays for angles ``[angle_start, angle_stop)``.

    Returns ``(points, directions)``, each ``(R, ndim)`` with coordinates ``(x, y)`` for 2D
    geometries and ``(x, y, z)`` for 3D ones. Rays are ordered like the sinogram, ``(a, u)`` or
    ``(a, v, u)`` row-major. Directions are unit vectors pointing from source to detector.
    """
    f = {k: t[angle_start:angle_stop] for k, t in detector_frames(g, dtype).items()}
    n_a = f["u"].shape[0]
    if g.ndim == 2:
        n_v, n_u = 1, g.det_shape[0]
    else:
        n_v, n_u = g.det_shape
    iu = torch.arange(n_u, dtype=dtype) - (n_u - 1) / 2
    iv = torch.arange(n_v, dtype=dtype) - (n_v - 1) / 2
    # pixel positions, (A, V, U, 3)
    pix = (f["det"][:, None, None, :] + iu[None, None, :, None] * f["u"][:, None, None, :]
           + iv[None, :, None, None] * f["v"][:, None, None, :])
    if g.kind == "parallel":
        points = pix
        directions = f["ray"][:, None, None, :].expand_as(pix)
    else:
        points = f["src"][:, None, None, :].expand_as(pix)
        directions = pix - points
        directions = directions / directions.norm(dim=-1, keepdim=True)
    points, directions = points.reshape(-1, 3), directions.reshape(-1, 3)
    return points[:, : g.ndim].contiguous(), directions[:, : g.ndim].contiguous()
