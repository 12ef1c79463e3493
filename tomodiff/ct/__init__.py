"""CT geometries (world units) and the ``Projector`` operator with torch and ASTRA backends.

Layouts: volumes ``(B, C, Z, Y, X)`` / images ``(B, C, Y, X)``; projections ``(B, C, A, V, U)`` /
sinograms ``(B, C, A, U)``; angles in radians. See :mod:`tomodiff.ct.geometry` for the axes.
"""

from .backends import available_backends, backend_names
from .backends.astra_backend import to_astra  # imports astra only when called
from .geometry import Geometry, cone_beam, fan_beam, parallel_beam, thin_sinogram
from .projector import Projector

__all__ = ["Geometry", "parallel_beam", "fan_beam", "cone_beam", "thin_sinogram", "Projector",
           "to_astra", "available_backends", "backend_names"]
