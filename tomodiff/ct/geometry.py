"""CT acquisition geometries: immutable values in world units.

Glossary (as in tomosipo): *shape* is a count of voxels or detector pixels, *size* / *spacing* /
*distance* is a physical length in world units (any unit, used consistently).

Coordinate conventions (identical to ASTRA's 2D conventions, so that cross-checks need no flips):

- The volume is centred on the origin. Voxel ``(iz, iy, ix)`` of a ``(Z, Y, X)`` volume has its
  centre at ``x = (ix - (X-1)/2)·s``, ``y = -(iy - (Y-1)/2)·s``, ``z = (iz - (Z-1)/2)·s`` with
  ``s = voxel_size``: row 0 of an image is at the *top* (largest ``y``). Z is the rotation axis.
- At angle ``θ`` (radians) parallel rays travel along ``(sin θ, -cos θ, 0)``; the detector's
  column axis is ``e_u = (cos θ, sin θ, 0)`` and its row axis ``e_v = (0, 0, 1)``.
- Fan and cone sources sit at ``source_distance·(sin θ, -cos θ, 0)``; the detector centre at
  ``detector_distance·(-sin θ, cos θ, 0)`` (flat detector, circular orbit, source in the plane z=0).
- Detector pixel ``(iv, iu)`` is at ``centre + (iu - (U-1)/2 - center_offset)·d·e_u +
  (iv - (V-1)/2)·d·e_v`` with ``d = det_spacing``: the rotation axis projects onto column
  ``(U-1)/2 + center_offset``.

Sinograms are ``(A, U)`` for 2D geometries and projections ``(A, V, U)`` for 3D ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

_KINDS = ("parallel", "fan", "cone")
_FACTORY = {"parallel": "parallel_beam", "fan": "fan_beam", "cone": "cone_beam"}


@dataclass(frozen=True, kw_only=True, repr=False)
class Geometry:
    """One CT acquisition: volume grid, angles, detector and (fan/cone) distances.

    Build it with :func:`parallel_beam`, :func:`fan_beam` or :func:`cone_beam`; direct
    construction validates the same way. Fields are plain Python values (tuples, floats), so a
    geometry is hashable and can key caches.

    Fields
    ------
    kind: ``"parallel"``, ``"fan"`` or ``"cone"``.
    volume_shape: ``(Y, X)`` (2D) or ``(Z, Y, X)`` (3D), voxels.
    angles: projection angles, radians.
    det_shape: ``(U,)`` (2D) or ``(V, U)`` (3D), detector pixels.
    voxel_size: edge length of a (cubic) voxel, world units.
    det_spacing: detector pixel pitch, world units (square pixels in 3D).
    center_offset: column of the rotation axis's projection minus the detector centre, pixels.
    source_distance: source to rotation axis, world units (``None`` for parallel beam).
    detector_distance: rotation axis to detector, world units (``None`` for parallel beam).
    """

    kind: str
    volume_shape: tuple
    angles: tuple
    det_shape: tuple
    voxel_size: float = 1.0
    det_spacing: float = 1.0
    center_offset: float = 0.0
    source_distance: float | None = None
    detector_distance: float | None = None

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        set_("volume_shape", _positive_ints(self.volume_shape, "volume_shape"))
        set_("angles", _angles(self.angles))
        set_("det_shape", _positive_ints(self.det_shape, "det_shape"))
        set_("voxel_size", _positive_float(self.voxel_size, "voxel_size"))
        set_("det_spacing", _positive_float(self.det_spacing, "det_spacing"))
        set_("center_offset", _finite_float(self.center_offset, "center_offset"))

        nd = len(self.volume_shape)
        expected_nd = {"parallel": (2, 3), "fan": (2,), "cone": (3,)}[self.kind]
        if nd not in expected_nd:
            want = " or ".join({2: "(Y, X)", 3: "(Z, Y, X)"}[n] for n in expected_nd)
            raise ValueError(f"{self.kind}-beam volume_shape must be {want}, got {self.volume_shape}")
        if len(self.det_shape) != nd - 1:
            want = "(U,)" if nd == 2 else "(V, U)"
            raise ValueError(f"det_shape must be {want} for a {nd}D volume, got {self.det_shape}")

        if self.kind == "parallel":
            for name in ("source_distance", "detector_distance"):
                if getattr(self, name) is not None:
                    raise ValueError(f"parallel beam takes no {name}, got {getattr(self, name)!r}")
            return
        sd = _positive_float(self.source_distance, "source_distance")
        dd = _finite_float(self.detector_distance, "detector_distance")
        if dd < 0:
            raise ValueError(f"detector_distance must be >= 0, got {dd}")
        if sd <= self.volume_radius:
            raise ValueError(
                f"source_distance must exceed the volume's radius in the rotation plane "
                f"({self.volume_radius:g} world units = half the diagonal of "
                f"{self.volume_shape[-2:]} voxels of size {self.voxel_size:g}), got {sd:g}")
        set_("source_distance", sd)
        set_("detector_distance", dd)

    # ------------------------------------------------------------------ derived values
    @property
    def ndim(self) -> int:
        """2 for ``(Y, X)`` volumes, 3 for ``(Z, Y, X)``."""
        return len(self.volume_shape)

    @property
    def n_angles(self) -> int:
        return len(self.angles)

    @property
    def sino_shape(self) -> tuple:
        """Measurement shape of one item: ``(A, U)`` in 2D, ``(A, V, U)`` in 3D."""
        return (self.n_angles, *self.det_shape)

    @property
    def volume_radius(self) -> float:
        """Half the diagonal of the volume's ``(Y, X)`` extent, world units."""
        y, x = self.volume_shape[-2:]
        return 0.5 * self.voxel_size * math.hypot(y, x)

    @property
    def rows_are_slices(self) -> bool:
        """True when detector row ``v`` sees only axial slice ``z = v`` (3D parallel beam, one row
        per slice at the voxel pitch): then rows ``a:b`` with slices ``a:b`` are a problem of their
        own (:meth:`rows`), which is what slab-wise reconstruction needs."""
        return (self.kind == "parallel" and self.ndim == 3 and self.det_shape[0] == self.volume_shape[0]
                and abs(self.det_spacing - self.voxel_size) <= 1e-9 * self.voxel_size)

    # ------------------------------------------------------------------ transforms
    def rows(self, start: int, stop: int) -> "Geometry":
        """The geometry of axial slices ``start:stop`` and detector rows ``start:stop`` (tomosipo's
        slicing of a volume and its projections together). Needs :attr:`rows_are_slices`."""
        if not self.rows_are_slices:
            raise ValueError(f"rows {start}:{stop}: only a 3D parallel-beam geometry with one detector row per "
                             f"slice splits by rows (this is {self.kind}, volume {self.volume_shape}, detector "
                             f"{self.det_shape}, pitch {self.det_spacing:g} vs voxel {self.voxel_size:g})")
        if not 0 <= start < stop <= self.volume_shape[0]:
            raise ValueError(f"rows {start}:{stop} out of range for {self.volume_shape[0]} slices")
        n = stop - start
        return dataclasses.replace(self, volume_shape=(n, *self.volume_shape[1:]), det_shape=(n, self.det_shape[1]))

    def thin(self, step: int | None = None, indices: Sequence[int] | None = None) -> "Geometry":
        """The same geometry with a subset of angles: every ``step``-th, or ``indices`` in order."""
        return dataclasses.replace(self, angles=tuple(self.angles[i] for i in _thin_indices(
            self.n_angles, step, indices)))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (str, int, float, lists of them) for HDF5 attributes or JSON.

        ``None`` distances (parallel beam) are left out; :meth:`from_dict` restores them.
        """
        d = {
            "kind": self.kind,
            "volume_shape": list(self.volume_shape),
            "angles": list(self.angles),
            "angle_units": "rad",
            "det_shape": list(self.det_shape),
            "voxel_size": self.voxel_size,
            "det_spacing": self.det_spacing,
            "center_offset": self.center_offset,
        }
        if self.kind != "parallel":
            d["source_distance"] = self.source_distance
            d["detector_distance"] = self.detector_distance
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Geometry":
        """Inverse of :meth:`to_dict`; also reads ``angle_units="deg"`` and numpy values."""
        d = dict(d)
        units = str(d.pop("angle_units", "rad"))
        if units not in ("rad", "deg"):
            raise ValueError(f"angle_units must be 'rad' or 'deg', got {units!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown geometry keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        angles = [float(a) for a in _as_list(d.get("angles", ()))]
        d["angles"] = [math.radians(a) for a in angles] if units == "deg" else angles
        d["kind"] = str(d.get("kind"))
        return cls(**d)

    def __repr__(self) -> str:
        """A valid call (``eval(repr(g), vars(tomodiff.ct)) == g``) while there are at most
        :data:`REPR_MAX_ANGLES` angles; beyond that the angles are summarised (``<121 angles, 0–60°,
        0.5° steps>``) so that messages naming a geometry stay one readable line (``to_dict()`` is
        the lossless form)."""
        angles = repr(self.angles) if self.n_angles <= REPR_MAX_ANGLES else f"<{describe_angles(self.angles)}>"
        args = [f"volume_shape={self.volume_shape!r}", f"angles={angles}",
                f"det_shape={self.det_shape!r}"]
        if self.kind != "parallel":
            args += [f"source_distance={self.source_distance!r}",
                     f"detector_distance={self.detector_distance!r}"]
        # the factories' defaults (1.0, 1.0, 0.0) are left out: the call is the same, the line shorter
        args += [f"{name}={getattr(self, name)!r}" for name, default in
                 (("voxel_size", 1.0), ("det_spacing", 1.0), ("center_offset", 0.0)) if getattr(self, name) != default]
        return f"{_FACTORY[self.kind]}({', '.join(args)})"


#: Geometries with more angles than this have their angles summarised in ``repr`` (see ``Geometry.__repr__``).
REPR_MAX_ANGLES = 16


def describe_angles(angles) -> str:
    """A short summary of a list of angles (radians) for messages: ``"121 angles, 0–60°, 0.5° steps"``
    (equally spaced), ``"181 angles, 0–179°"`` (not equally spaced), ``"1 angle, 90°"``."""
    a = [float(v) for v in _as_list(angles)]
    if not a:
        return "no angles"
    deg = [math.degrees(v) for v in a]
    if len(a) == 1:
        return f"1 angle, {deg[0]:.4g}°"
    text = f"{len(a)} angles, {deg[0]:.4g}–{deg[-1]:.4g}°"
    steps = [b - c for b, c in zip(deg[1:], deg[:-1])]
    if max(steps) - min(steps) <= 1e-6 * max(1.0, abs(steps[0])):
        text += f", {steps[0]:.4g}° steps"
    return text


# ---------------------------------------------------------------------- factories
def parallel_beam(volume_shape, angles, det_shape=None, voxel_size=1.0, det_spacing=1.0,
                  center_offset=0.0) -> Geometry:
    """Parallel-beam geometry; 2D for ``volume_shape=(Y, X)``, 3D for ``(Z, Y, X)``.

    ``det_shape`` defaults to a detector wide enough for every ray through the volume:
    ``U = ceil(hypot(Y, X)·voxel_size/det_spacing)`` and, in 3D, ``V = ceil(Z·voxel_size/det_spacing)``.
    All arguments are keyword-or-positional; lengths in world units, angles in radians.
    """
    shape = _positive_ints(volume_shape, "volume_shape")
    if det_shape is None:
        vs, ds = _positive_float(voxel_size, "voxel_size"), _positive_float(det_spacing, "det_spacing")
        u = math.ceil(math.hypot(*shape[-2:]) * vs / ds - 1e-9)
        det_shape = (u,) if len(shape) == 2 else (math.ceil(shape[0] * vs / ds - 1e-9), u)
    return Geometry(kind="parallel", volume_shape=shape, angles=angles, det_shape=_det(det_shape),
                    voxel_size=voxel_size, det_spacing=det_spacing, center_offset=center_offset)


def fan_beam(volume_shape, angles, det_shape, source_distance, detector_distance, voxel_size=1.0,
             det_spacing=1.0, center_offset=0.0) -> Geometry:
    """2D fan-beam geometry (flat detector) for a ``(Y, X)`` volume; lengths in world units."""
    return Geometry(kind="fan", volume_shape=volume_shape, angles=angles, det_shape=_det(det_shape),
                    voxel_size=voxel_size, det_spacing=det_spacing, center_offset=center_offset,
                    source_distance=source_distance, detector_distance=detector_distance)


def cone_beam(volume_shape, angles, det_shape, source_distance, detector_distance, voxel_size=1.0,
              det_spacing=1.0, center_offset=0.0) -> Geometry:
    """3D cone-beam geometry, circular orbit in the plane z=0, for a ``(Z, Y, X)`` volume.

    ``det_shape`` is ``(V, U)`` (rows, columns) of a flat detector; lengths in world units.
    """
    return Geometry(kind="cone", volume_shape=volume_shape, angles=angles, det_shape=_det(det_shape),
                    voxel_size=voxel_size, det_spacing=det_spacing, center_offset=center_offset,
                    source_distance=source_distance, detector_distance=detector_distance)


def thin_sinogram(y, geometry: Geometry, step: int | None = None,
                  indices: Sequence[int] | None = None):
    """Keep a subset of angles of a full scan: ``(y_thin, geometry_thin)`` in one call.

    ``y`` is a torch tensor or numpy array whose trailing dims are ``geometry.sino_shape``
    (``(..., A, U)`` or ``(..., A, V, U)``); pass ``step`` (every k-th angle) or ``indices``.
    """
    k = len(geometry.sino_shape)
    shape = tuple(y.shape)
    if shape[-k:] != geometry.sino_shape:
        raise ValueError(f"sinogram must end in the geometry's sino_shape {geometry.sino_shape}, "
                         f"got shape {shape}")
    idx = _thin_indices(geometry.n_angles, step, indices)
    axis = len(shape) - k
    if hasattr(y, "index_select"):  # torch
        import torch  # start-up time: torch
        y_thin = y.index_select(axis, torch.tensor(idx, device=y.device))
    else:
        y_thin = y.take(idx, axis=axis)
    return y_thin, geometry.thin(indices=idx)


# ---------------------------------------------------------------------- validation helpers
def _as_list(values) -> list:
    if hasattr(values, "tolist"):  # numpy array or torch tensor
        values = values.tolist()
    if isinstance(values, (int, float)):
        values = [values]
    return list(values)


def _positive_ints(values, name) -> tuple:
    try:
        items = _as_list(values)
        out = tuple(int(v) for v in items)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a sequence of positive ints, got {values!r}") from err
    if any(o != v for o, v in zip(out, items)) or not out or any(o < 1 for o in out):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {values!r}")
    return out


def _det(det_shape):
    return (det_shape,) if isinstance(det_shape, int) else det_shape


def _angles(values) -> tuple:
    try:
        out = tuple(float(a) for a in _as_list(values))
    except (TypeError, ValueError) as err:
        raise TypeError(f"angles must be a 1D sequence of floats (radians), got {values!r}") from err
    if not out:
        raise ValueError("angles must contain at least one angle (radians), got an empty sequence")
    bad = [a for a in out if not math.isfinite(a)]
    if bad:
        raise ValueError(f"angles must be finite (radians), got {len(bad)} non-finite value(s): {bad[:3]}")
    return out


def _finite_float(value, name) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a finite float, got {value!r}") from err
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _positive_float(value, name) -> float:
    out = _finite_float(value, name)
    if out <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return out


def _thin_indices(n: int, step, indices) -> list[int]:
    if (step is None) == (indices is None):
        raise ValueError("pass exactly one of step (every k-th angle) or indices (which angles)")
    if step is not None:
        if isinstance(step, bool) or int(step) != step or step < 1:
            raise ValueError(f"step must be a positive int, got {step!r}")
        return list(range(0, n, int(step)))
    idx = [int(i) for i in _as_list(indices)]
    if not idx:
        raise ValueError("indices must select at least one angle, got an empty sequence")
    out_of_range = [i for i in idx if not 0 <= i < n]
    if out_of_range:
        raise ValueError(f"angle indices must lie in [0, {n}), got {out_of_range[:5]}")
    return idx
