"""Cameras on an orbit around the volume: immutable values in world units, and their rays.

Axes are those of :mod:`tomodiff.ct.geometry` (the volume centred on the origin, Z the rotation
axis). A camera at azimuth ``θ`` and elevation ``φ`` (radians) looks at the origin from the
direction

    d = (−sin θ cos φ, cos θ cos φ, sin φ)

(light travels along ``d`` to reach it). Its image columns step along ``e_u = (cos θ, sin θ, 0)``
and its rows along ``e_v = (sin θ sin φ, −cos θ sin φ, cos φ)``. At ``φ = 0`` these are the
parallel-beam projector's ray direction and detector axes, so an orthographic camera there sees
exactly what a detector at angle ``θ`` sees, in the same ``(V, U)`` layout (row 0 at the lowest
``e_v``). Pixel ``(iv, iu)`` lies in the plane through the origin facing the camera, at
``(iu − (U−1)/2)·s·e_u + (iv − (V−1)/2)·s·e_v`` with ``s = pixel_size``:

- ``"orthographic"``: the ray through a pixel is parallel to ``d``;
- ``"pinhole"``: the eye sits at ``distance·d`` and the ray joins the pixel to the eye
  (``pixel_size`` is then the pitch at the rotation axis, as for a cone-beam detector).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

KINDS = ("orthographic", "pinhole")


@dataclass(frozen=True, kw_only=True, repr=False)
class Cameras:
    """``A`` cameras on an orbit; build them with :func:`orbit`.

    Fields
    ------
    kind: ``"orthographic"`` or ``"pinhole"``.
    angles: azimuths ``θ``, radians, one per camera.
    elevations: elevations ``φ``, radians in ``(−π/2, π/2)``, one per camera.
    image_shape: ``(V, U)`` pixels, or ``None``: the renderer picks one that sees the whole volume.
    pixel_size: pixel pitch in the plane through the origin, world units; ``None``: the renderer's
        voxel size.
    distance: pinhole only: eye to origin, world units (``None`` for orthographic).
    """

    kind: str
    angles: tuple
    elevations: tuple
    image_shape: tuple | None = None
    pixel_size: float | None = None
    distance: float | None = None

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)
        if self.kind not in KINDS:
            raise ValueError(f"camera kind must be one of {KINDS}, got {self.kind!r}")
        angles = _floats(self.angles, "angles")
        if not angles:
            raise ValueError("cameras need at least one angle (radians), got none")
        elevations = _floats(self.elevations, "elevations")
        if len(elevations) == 1 and len(angles) > 1:
            elevations = elevations * len(angles)
        if len(elevations) != len(angles):
            raise ValueError(f"give one elevation or one per angle: {len(elevations)} elevations for "
                             f"{len(angles)} angles")
        if any(not abs(e) < math.pi / 2 for e in elevations):
            raise ValueError(f"elevations must lie in (-pi/2, pi/2) radians, got {elevations}")
        set_("angles", angles)
        set_("elevations", elevations)
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if len(shape) != 2 or any(s < 1 for s in shape) or shape != tuple(self.image_shape):
                raise ValueError(f"image_shape must be (V, U), two positive ints, got {self.image_shape!r}")
            set_("image_shape", shape)
        if self.pixel_size is not None:
            size = float(self.pixel_size)
            if not (math.isfinite(size) and size > 0):
                raise ValueError(f"pixel_size must be a finite length > 0 (world units), got {self.pixel_size!r}")
            set_("pixel_size", size)
        if self.kind == "orthographic":
            if self.distance is not None:
                raise ValueError(f"orthographic cameras take no distance, got {self.distance!r}")
        else:
            if self.distance is None or not (math.isfinite(float(self.distance)) and float(self.distance) > 0):
                raise ValueError(f"pinhole cameras need a distance > 0 (eye to origin, world units), "
                                 f"got {self.distance!r}")
            set_("distance", float(self.distance))

    @property
    def n_cameras(self) -> int:
        return len(self.angles)

    def resolved(self, volume_shape, voxel_size: float) -> Cameras:
        """These cameras with ``pixel_size`` (default: ``voxel_size``) and ``image_shape`` (default:
        :func:`fit_image_shape`) filled in for a volume."""
        out = self if self.pixel_size is not None else replace(self, pixel_size=float(voxel_size))
        if out.image_shape is None:
            out = replace(out, image_shape=fit_image_shape(out, volume_shape, voxel_size))
        return out

    def subset(self, indices) -> Cameras:
        """The cameras at ``indices`` (e.g. the views kept for fitting, or held out)."""
        idx = [int(i) for i in indices]
        if not idx or any(not 0 <= i < self.n_cameras for i in idx):
            raise ValueError(f"camera indices must be a non-empty list in [0, {self.n_cameras}), got {idx}")
        return replace(self, angles=tuple(self.angles[i] for i in idx),
                       elevations=tuple(self.elevations[i] for i in idx))

    def to_dict(self) -> dict:
        """Plain values for JSON / HDF5 attributes (angles in radians); :func:`orbit` ``(**d)`` inverts it."""
        d = {"kind": self.kind, "angles": list(self.angles), "elevation": list(self.elevations),
             "angle_units": "rad", "image_shape": None if self.image_shape is None else list(self.image_shape),
             "pixel_size": self.pixel_size}
        if self.distance is not None:
            d["distance"] = self.distance
        return d

    def __repr__(self) -> str:
        el = self.elevations
        elevation = el[0] if len(set(el)) == 1 else el
        args = [f"{self.angles!r}", f"elevation={elevation!r}", f"kind={self.kind!r}",
                f"image_shape={self.image_shape!r}", f"pixel_size={self.pixel_size!r}"]
        if self.distance is not None:
            args.append(f"distance={self.distance!r}")
        return f"orbit({', '.join(args)})"


def orbit(angles, elevation=0.0, kind: str = "orthographic", *, image_shape=None, pixel_size: float | None = None,
          distance: float | None = None, angle_units: str = "rad") -> Cameras:
    """Cameras at azimuths ``angles`` around the Z axis, all looking at the origin.

    ``elevation``: one angle for all, or one per camera (radians, positive = above the z = 0
    plane). ``kind``: ``"orthographic"`` or ``"pinhole"`` (then ``distance``, eye to origin, is
    needed). ``image_shape``: ``(V, U)``; ``None`` lets the renderer fit the volume.
    ``pixel_size``: world units, in the plane through the origin (``None``: the renderer's voxel
    size). ``angle_units``: ``"rad"`` or
    ``"deg"`` for both angles and elevations (what :meth:`Cameras.to_dict` records).
    """
    angles, elevations = _floats(angles, "angles"), _floats(elevation, "elevation")
    if angle_units == "deg":
        angles, elevations = tuple(map(math.radians, angles)), tuple(map(math.radians, elevations))
    elif angle_units != "rad":
        raise ValueError(f"angle_units must be 'rad' or 'deg', got {angle_units!r}")
    return Cameras(kind=kind, angles=angles, elevations=elevations, image_shape=image_shape,
                   pixel_size=pixel_size, distance=distance)


def bounding_radius(volume_shape, voxel_size: float) -> float:
    """Radius (world units) of the sphere outside which the sampled volume is zero: half the diagonal
    of the voxel grid grown by one voxel (linear interpolation reaches half a voxel past the edge)."""
    return 0.5 * voxel_size * math.sqrt(sum((s + 1) ** 2 for s in volume_shape))


def fit_image_shape(cameras: Cameras, volume_shape, voxel_size: float) -> tuple[int, int]:
    """An image ``(V, U)`` large enough that every camera sees the whole volume.

    Orthographic cameras at elevation 0 get the parallel-beam detector of
    :func:`tomodiff.ct.parallel_beam` (``Z`` rows, ``⌈hypot(Y, X)⌉`` columns at the voxel pitch
    scaled by ``voxel_size / pixel_size``); otherwise a square image covering the volume's bounding
    sphere (for pinholes: its silhouette from the eye, projected back to the plane through the origin).
    """
    nz, ny, nx = volume_shape
    scale = voxel_size / cameras.pixel_size
    if cameras.kind == "orthographic" and all(e == 0.0 for e in cameras.elevations):
        return math.ceil(nz * scale - 1e-9), math.ceil(math.hypot(ny, nx) * scale - 1e-9)
    r = 0.5 * math.sqrt(nz * nz + ny * ny + nx * nx)  # voxels
    if cameras.kind == "pinhole":
        d = cameras.distance / voxel_size
        r = r * d / math.sqrt(max(d * d - r * r, 1e-12))
    side = math.ceil(2 * r * scale - 1e-9)
    return side, side


def frames(cameras: Cameras, dtype=torch.float64) -> dict[str, torch.Tensor]:
    """Per-camera vectors, each ``(A, 3)`` world ``(x, y, z)``: ``d`` (unit, towards the camera),
    ``u`` and ``v`` (one pixel step along ``e_u`` / ``e_v``, length ``pixel_size``)."""
    th = torch.tensor(cameras.angles, dtype=dtype)
    el = torch.tensor(cameras.elevations, dtype=dtype)
    s, c, se, ce = torch.sin(th), torch.cos(th), torch.sin(el), torch.cos(el)
    zero = torch.zeros_like(th)
    # written as in tomodiff.ct.rays so that elevation 0 gives the projector's vectors bit for bit
    d = torch.stack([-s * ce, c * ce, se], dim=1)
    u = cameras.pixel_size * torch.stack([c, s, zero], dim=1)
    v = cameras.pixel_size * torch.stack([s * se, -c * se, ce], dim=1)
    return {"d": d, "u": u, "v": v}


def camera_rays(cameras: Cameras, start: int = 0, stop: int | None = None,
                dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of cameras ``[start, stop)``: ``(points, directions)``, each ``(R, 3)`` world ``(x, y, z)``.

    Ordered like the images, ``(a, v, u)`` row-major. ``points`` are the pixels in the plane through
    the origin; ``directions`` are unit vectors along which light travels to the camera.
    """
    if cameras.image_shape is None or cameras.pixel_size is None:
        raise ValueError("cameras without image_shape or pixel_size: give them, or call cameras.resolved(...)")
    f = {k: t[start:stop] for k, t in frames(cameras, dtype).items()}
    n_v, n_u = cameras.image_shape
    iu = torch.arange(n_u, dtype=dtype) - (n_u - 1) / 2
    iv = torch.arange(n_v, dtype=dtype) - (n_v - 1) / 2
    pix = (torch.zeros_like(f["u"])[:, None, None, :] + iu[None, None, :, None] * f["u"][:, None, None, :]
           + iv[None, :, None, None] * f["v"][:, None, None, :])  # (A, V, U, 3)
    if cameras.kind == "orthographic":
        directions = f["d"][:, None, None, :].expand_as(pix)
    else:
        eye = cameras.distance * f["d"][:, None, None, :]
        directions = eye - pix
        directions = directions / directions.norm(dim=-1, keepdim=True)
    return pix.reshape(-1, 3), directions.reshape(-1, 3).contiguous()


def _floats(values, name: str) -> tuple:
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (int, float)):
        values = [values]
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a float or a sequence of floats (radians), got {values!r}") from err
    if any(not math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out
