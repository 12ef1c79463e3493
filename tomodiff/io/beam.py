"""The geometry of a measured scan from what the user says about it (shell flags or arguments).

A :class:`Beam` names the beam (parallel, fan, cone), the distances and the pixel and voxel sizes;
:meth:`Beam.geometry` turns it, with the angles and the detector's shape, into a
:class:`tomodiff.ct.Geometry`. Distances follow tomodiff's names (:mod:`tomodiff.ct.geometry`):
``source_origin`` (source to rotation axis) and ``origin_detector`` (axis to detector); files such
as HTC 2022's give source–origin and source–detector, so :func:`resolve_distances` takes any two of
the three and refuses three that disagree.

Sizes: ``pixel`` is the detector pitch (world units, e.g. mm; default 1). The voxel defaults to the
pixel demagnified to the axis, ``pixel · source_origin / source_detector`` (the pixel itself for
parallel beam), and the volume gets ``round(U · pixel / M / voxel)`` voxels across with
``M = source_detector / source_origin`` (1 for parallel beam): the detector's field of view at the
axis. Rows: ``round(V · pixel / M / voxel)`` slices for parallel and cone beam.

Fan beam is 2D in tomodiff (:func:`tomodiff.ct.fan_beam` takes a ``(Y, X)`` volume): a fan scan
has one detector row here (a 2D sinogram, or ``--rows R:R+1`` of a multi-row one). A stack of fan
slices (a multi-slice fan scanner) is a 3D geometry that the projector backends and FBP do not
know; until they do, reconstruct it row by row or, where the rows diverge, as cone beam.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

KINDS = ("parallel", "fan", "cone")
#: source–origin + origin–detector may differ from source–detector by this share before it is refused
DISTANCE_RTOL = 1e-6


def resolve_distances(source_origin=None, source_detector=None, origin_detector=None) -> tuple[float, float]:
    """``(source_origin, origin_detector)`` from source–origin and one of source–detector or
    origin–detector (or all three when they agree to :data:`DISTANCE_RTOL`); a ValueError that says
    which is missing or which disagree."""
    if source_origin is None:
        raise ValueError("a fan or cone beam needs --source-origin (source to rotation axis)")
    so = float(source_origin)
    if not (math.isfinite(so) and so > 0):
        raise ValueError(f"--source-origin must be a positive length, got {source_origin!r}")
    if source_detector is None and origin_detector is None:
        raise ValueError("a fan or cone beam needs --source-detector or --origin-detector")
    od = None if origin_detector is None else float(origin_detector)
    if source_detector is not None:
        sd = float(source_detector)
        if not sd >= so:
            raise ValueError(f"--source-detector {sd:g} is less than --source-origin {so:g}: the detector must be "
                             "beyond the rotation axis")
        if od is not None and abs(so + od - sd) > DISTANCE_RTOL * sd:
            raise ValueError(f"--source-origin {so:g} + --origin-detector {od:g} = {so + od:g}, but --source-detector "
                             f"is {sd:g}; give two of the three, or three that agree")
        od = sd - so
    if not (math.isfinite(od) and od >= 0):
        raise ValueError(f"--origin-detector must be a length >= 0, got {origin_detector!r}")
    return so, od


@dataclass(frozen=True)
class Beam:
    """kind: ``"parallel" | "fan" | "cone"``; source_origin, origin_detector: world units (fan and
    cone only); pixel: detector pitch; voxel: voxel edge (``None``: see the module docstring);
    center_offset: pixels (rotation axis column − (U − 1)/2)."""

    kind: str = "parallel"
    source_origin: float | None = None
    origin_detector: float | None = None
    pixel: float = 1.0
    voxel: float | None = None
    center_offset: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"geometry {self.kind!r}: expected one of {', '.join(KINDS)}")
        divergent = self.kind != "parallel"
        if divergent != (self.source_origin is not None):
            raise ValueError(f"{self.kind} beam {'needs' if divergent else 'takes no'} source/detector distances")

    @property
    def magnification(self) -> float:
        if self.kind == "parallel":
            return 1.0
        return (self.source_origin + self.origin_detector) / self.source_origin

    @property
    def voxel_size(self) -> float:
        return self.voxel if self.voxel is not None else self.pixel / self.magnification

    def geometry(self, angles, det_shape):
        """The :class:`~tomodiff.ct.Geometry` for ``angles`` (radians) and a ``(V, U)`` detector;
        fan beam needs ``V == 1`` and is 2D (a ``(Y, X)`` volume, ``(A, U)`` sinogram)."""
        from ..ct import cone_beam, fan_beam, parallel_beam  # start-up time: torch

        V, U = det_shape
        scale = self.pixel / self.magnification / self.voxel_size
        n_xy, n_z = max(1, round(U * scale)), max(1, round(V * scale))
        common = dict(voxel_size=self.voxel_size, det_spacing=self.pixel, center_offset=self.center_offset)
        if self.kind == "parallel":
            return parallel_beam((n_z, n_xy, n_xy), angles, det_shape=(V, U), **common)
        dist = dict(source_distance=self.source_origin, detector_distance=self.origin_detector)
        if self.kind == "cone":
            return cone_beam((n_z, n_xy, n_xy), angles, det_shape=(V, U), **dist, **common)
        if V != 1:
            raise ValueError(f"fan beam is 2D in tomodiff: this scan has {V} detector rows; pick one with --rows R:R+1 "
                             "(a slice), or use --geometry cone for diverging rows")
        return fan_beam((n_xy, n_xy), angles, det_shape=(U,), **dist, **common)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["voxel"] = self.voxel_size
        d["magnification"] = self.magnification
        return d
