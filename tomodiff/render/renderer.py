"""``EmissionAbsorption``: volume rendering as a differentiable, nonlinear forward operator.

Input ``x`` ``(B, 2, Z, Y, X)``: emission ``e`` in channel 0, absorption ``κ`` in channel 1, both per
world unit of path. Output ``(B, 1, A, V, U)``: the radiance each camera pixel receives, laid out as
the parallel-beam projector's projections (``A`` cameras, ``V`` rows, ``U`` columns). Each ray is
marched with the Joseph projector's samples (:mod:`tomodiff.render.march`) and each step solved
exactly (:mod:`tomodiff.render.composite`), so with ``κ = 0`` an orthographic camera at elevation 0
equals ``Projector(parallel_beam(...))`` applied to ``e``, and with ``e = 0`` and a back-light ``b``
it equals ``BeerLambert(Projector, b)`` applied to ``κ``.

Memory: rays are marched in chunks of at most ``samples_per_chunk`` ray-plane samples; when a
gradient is needed each chunk runs under ``torch.utils.checkpoint``, which keeps only the chunk's
images and recomputes its samples in the backward pass. Stored for backward is then about the
volume (one plane-layout copy per dominant axis) plus the images, whatever the number of samples.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from ..operators.base import check_measurement
from ..operators.nonlinear import NonlinearOperator
from .cameras import Cameras, bounding_radius, camera_rays
from .march import group_rays, march, plane_layout, to_index

#: ray-plane samples marched at once, per device type (temporaries ≈ 40 bytes × samples × items)
SAMPLES_PER_CHUNK = {"cpu": 1 << 20, "cuda": 1 << 23}


class EmissionAbsorption(NonlinearOperator):
    """Emission–absorption rendering of a ``(Z, Y, X)`` volume by ``cameras``.

    Parameters
    ----------
    volume_shape: ``(Z, Y, X)`` voxels; the volume is centred on the origin (axes of
        :mod:`tomodiff.ct.geometry`).
    cameras: :class:`~tomodiff.render.cameras.Cameras` from :func:`~tomodiff.render.orbit`; without an
        ``image_shape`` one that sees the whole volume is chosen, without a ``pixel_size`` the voxel
        size is used (``.cameras`` holds the resolved cameras).
    voxel_size: voxel edge, world units (``e`` and ``κ`` are per world unit).
    background: back-light radiance entering every ray from behind the volume (``>= 0``).
    checkpoint: recompute each chunk's samples in the backward pass (bounded memory); ``False`` keeps
        them (faster backward, memory grows with rays × planes).
    samples_per_chunk: ray-plane samples per chunk; default :data:`SAMPLES_PER_CHUNK` by device.

    ``domain_shape`` is ``(Z, Y, X)`` and ``range_shape`` ``(A, V, U)``, without the channel dims:
    unlike the linear operators, the two input channels are mixed, so the channel counts are fixed
    (``domain_channels`` = 2, ``range_channels`` = 1) and checked by :meth:`check_input` and
    :meth:`check_images`.
    """

    domain_channels = 2
    range_channels = 1

    def __init__(self, volume_shape, cameras: Cameras, *, voxel_size: float = 1.0, background: float = 0.0,
                 checkpoint: bool = True, samples_per_chunk: int | None = None):
        if not isinstance(cameras, Cameras):
            raise TypeError(f"cameras must be tomodiff.render.Cameras (from orbit(...)), got {type(cameras).__name__}")
        shape = tuple(volume_shape)
        if len(shape) != 3:
            raise ValueError(f"volume_shape must be (Z, Y, X), got {volume_shape!r}")
        voxel_size, background = float(voxel_size), float(background)
        if not (math.isfinite(voxel_size) and voxel_size > 0):
            raise ValueError(f"voxel_size must be a finite length > 0 (world units), got {voxel_size!r}")
        if not (math.isfinite(background) and background >= 0):
            raise ValueError(f"background (back-light radiance) must be finite and >= 0, got {background!r}")
        if samples_per_chunk is not None and (int(samples_per_chunk) != samples_per_chunk or samples_per_chunk < 1):
            raise ValueError(f"samples_per_chunk must be a positive int, got {samples_per_chunk!r}")
        if cameras.kind == "pinhole" and cameras.distance <= bounding_radius(shape, voxel_size):
            raise ValueError(f"pinhole distance {cameras.distance:g} must exceed the volume's bounding radius "
                             f"{bounding_radius(shape, voxel_size):g} (world units): the eye must be outside it")
        cameras = cameras.resolved(shape, voxel_size)
        super().__init__(shape, (cameras.n_cameras, *cameras.image_shape))
        self.cameras, self.voxel_size, self.background = cameras, voxel_size, background
        self.checkpoint, self.samples_per_chunk = bool(checkpoint), samples_per_chunk
        p, u = to_index(*camera_rays(cameras), shape, voxel_size)
        self._groups = group_rays(p, u)
        # the groups' rays concatenated -> image order (chunks are consecutive slices of the groups)
        self._to_image = torch.argsort(torch.cat([g.ids for g in self._groups]))

    # ------------------------------------------------------------------ checks
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raise a one-line error unless ``x`` is a real floating ``(B, 2, Z, Y, X)`` tensor; return it."""
        expected = f"(B, 2, {', '.join(map(str, self.domain_shape))}) (emission, absorption)"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"EmissionAbsorption: input must be a torch.Tensor of shape {expected}, "
                            f"got {type(x).__name__}")
        if x.dim() != 5 or x.shape[1] != 2 or tuple(x.shape[2:]) != self.domain_shape:
            raise ValueError(f"EmissionAbsorption: input must have shape {expected}, got {tuple(x.shape)}")
        if not x.is_floating_point() or x.is_complex():
            raise TypeError(f"EmissionAbsorption: input must be a real floating tensor, got {x.dtype}")
        return x

    def check_images(self, y: torch.Tensor, who: str = "EmissionAbsorption") -> torch.Tensor:
        """Raise a one-line error unless ``y`` is finite, floating and ``(B, 1, A, V, U)``; return it."""
        check_measurement(self, y, who)
        if y.shape[1] != 1:
            raise ValueError(f"{who}: rendered images must have one channel, shape (B, 1, "
                             f"{', '.join(map(str, self.range_shape))}), got {tuple(y.shape)}")
        return y

    # ------------------------------------------------------------------ rendering
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Render ``x`` ``(B, 2, Z, Y, X)`` to images ``(B, 1, A, V, U)`` (differentiable)."""
        self.check_input(x)
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        with torch.autocast(x.device.type, enabled=False):  # the march needs fp32 at least, as the projector does
            out = self._render(work)
        return out.to(x.dtype)

    __call__ = forward

    def _render(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        volume = x.reshape(1, n * 2, *self.domain_shape)  # (item, channel) pairs as grid_sample channels
        budget = self.samples_per_chunk or SAMPLES_PER_CHUNK["cuda" if x.device.type == "cuda" else "cpu"]
        recompute = self.checkpoint and torch.is_grad_enabled() and x.requires_grad
        layouts, parts = {}, []
        for g in self._groups:
            if g.axis not in layouts:
                layouts[g.axis] = plane_layout(volume, g.axis)
            step = max(1, budget // self.domain_shape[g.axis])  # rays per chunk
            for a in range(0, g.ids.numel(), step):
                args = (layouts[g.axis], g.p[a:a + step], g.u[a:a + step], g.axis, g.ascending, self.domain_shape,
                        self.voxel_size, self.background)
                parts.append(_checkpoint(march, *args, use_reentrant=False, preserve_rng_state=False)
                             if recompute else march(*args))
        images = torch.cat(parts, dim=1).index_select(1, self._to_image.to(x.device))
        return images.reshape(n, 1, *self.range_shape)

    def to_dict(self) -> dict:
        """Flat plain values describing the renderer (for provenance and HDF5 attributes): ``kind="render"``,
        the cameras' :meth:`~tomodiff.render.Cameras.to_dict` with their kind as ``camera``, the volume
        shape, voxel size and back-light."""
        cams = self.cameras.to_dict()
        return {"kind": "render", "camera": cams.pop("kind"), **cams, "volume_shape": list(self.domain_shape),
                "voxel_size": self.voxel_size, "background": self.background}

    def __repr__(self) -> str:
        return (f"EmissionAbsorption({self.domain_shape!r}, {self.cameras!r}, voxel_size={self.voxel_size!r}, "
                f"background={self.background!r})")
