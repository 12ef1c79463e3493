"""Simulate a CT scan of a volume: geometry from a number of views, projections, noise."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..operators import GaussianNoise
from .geometry import cone_beam, fan_beam, parallel_beam
from .projector import Projector


def scan_geometry(volume_shape, views: int, kind: str = "parallel", *, voxel_size: float = 1.0,
                  center_offset: float = 0.0, arc_deg: float | None = None):
    """A standard acquisition of a ``(Z, Y, X)`` volume with ``views`` equally spaced angles.

    parallel: angles over [0, π), detector ``(Z, ⌈√2·max(Y, X)⌉)`` at the voxel pitch, so the whole
    volume is seen at every angle; cone: a full circle, source at 4 and detector at 2 volume
    widths from the axis, pixels the size of a voxel magnified to the detector, and just enough
    of them to cover the volume's shadow from every angle; fan: the cone's layout in the plane
    z = 0, for one ``(Y, X)`` slice (a 2D geometry: ``Z`` must be 1, see :func:`simulate_scan`).
    arc_deg: a limited arc instead, angles ``arc·k/views`` for k = 0 … views − 1 (degrees; at most
    180 for parallel beam, 360 for fan and cone beam: the full arcs above are ``arc_deg=None``).
    """
    if int(views) != views or views < 1:
        raise ValueError(f"views must be a positive integer, got {views!r}")
    full = {"parallel": 180.0, "fan": 360.0, "cone": 360.0}.get(kind)
    if arc_deg is not None and full is not None and not (0 < float(arc_deg) <= full):
        raise ValueError(f"arc must be in (0, {full:g}] degrees for {kind} beam, got {arc_deg!r}")
    arc = math.radians(float(arc_deg) if arc_deg is not None else (full or 180.0))
    Z, Y, X = (int(s) for s in volume_shape)
    width = max(Y, X)
    u = int(math.ceil(math.sqrt(2) * width))
    if kind == "parallel":
        angles = np.linspace(0.0, arc, int(views), endpoint=False)
        return parallel_beam((Z, Y, X), angles, det_shape=(Z, u), voxel_size=voxel_size, det_spacing=voxel_size,
                             center_offset=center_offset)
    if kind in ("cone", "fan"):
        if kind == "fan" and Z != 1:
            raise ValueError(f"fan beam is 2D: the volume must have one slice (Z = 1), got {Z}")
        angles = np.linspace(0.0, arc, int(views), endpoint=False)
        sd, dd = 4.0 * width * voxel_size, 2.0 * width * voxel_size
        r = 0.5 * math.hypot(Y, X) * voxel_size  # the volume's radius in the rotation plane
        spacing = voxel_size * (sd + dd) / sd  # one voxel at the axis covers one detector pixel
        half_u = r * (sd + dd) / math.sqrt(sd * sd - r * r)  # tangent ray of the volume's circle
        half_v = 0.5 * Z * voxel_size * (sd + dd) / (sd - r)  # top edge at its nearest to the source
        det = (2 * math.ceil(half_v / spacing) + 2, 2 * math.ceil(half_u / spacing) + 2)
        if kind == "fan":
            return fan_beam((Y, X), angles, det_shape=(det[1],), source_distance=sd, detector_distance=dd,
                            voxel_size=voxel_size, det_spacing=spacing, center_offset=center_offset)
        return cone_beam((Z, Y, X), angles, det_shape=det, source_distance=sd, detector_distance=dd,
                         voxel_size=voxel_size, det_spacing=spacing, center_offset=center_offset)
    raise ValueError(f"geometry must be 'parallel', 'fan' or 'cone', got {kind!r}")


def simulate_scan(volume: torch.Tensor, *, views: int, kind: str = "parallel", noise: float = 0.01,
                  seed: int = 0, backend: str = "auto", voxel_size: float = 1.0, arc_deg: float | None = None):
    """Projections of ``volume`` ``(Z, Y, X)`` with Gaussian noise of std ``noise · max(y)``.

    Returns ``(y, geometry, sigma_y)`` with ``y`` of shape ``(1, 1, A, V, U)`` (line integrals in
    world units; ``(1, 1, A, U)`` for ``kind="fan"``, which projects the middle axial slice
    ``volume[Z // 2]``: fan beam is 2D) and ``sigma_y`` the absolute noise std. ``arc_deg``: a
    limited arc (see :func:`scan_geometry`).
    """
    if volume.dim() != 3:
        raise ValueError(f"volume must be (Z, Y, X), got shape {tuple(volume.shape)}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite relative std >= 0, got {noise}")
    if kind == "fan":
        volume = volume[volume.shape[0] // 2][None]
    geometry = scan_geometry(volume.shape, views, kind, voxel_size=voxel_size, arc_deg=arc_deg)
    A = Projector(geometry, backend=backend)
    with torch.no_grad():
        clean = A.forward((volume[0] if geometry.ndim == 2 else volume)[None, None].to(torch.float32))
    sigma_y = float(noise) * float(clean.max())
    y = GaussianNoise(sigma_y)(clean, generator=torch.Generator().manual_seed(int(seed)))
    return y, geometry, sigma_y
