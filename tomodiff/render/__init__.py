"""Emission–absorption volume rendering as a nonlinear forward operator.

``EmissionAbsorption(volume_shape, orbit(angles, elevation=..., kind=...))`` maps ``(B, 2, Z, Y, X)``
volumes (emission, absorption; per world unit) to ``(B, 1, A, V, U)`` images, one per camera, in the
layout and angle convention of the parallel-beam projector. With zero absorption an orthographic
camera at elevation 0 is the X-ray projection; with zero emission and a back-light it is Beer–Lambert.
"""

from .cameras import Cameras, camera_rays, orbit
from .composite import composite, phi
from .renderer import EmissionAbsorption

__all__ = ["Cameras", "EmissionAbsorption", "camera_rays", "composite", "orbit", "phi"]
