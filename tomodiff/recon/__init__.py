"""Classical reconstructions as functions of ``(A, y, ...)``: FBP/FDK, SIRT, CGLS, TV (PDHG).

Every function takes a :class:`~tomodiff.operators.LinearOperator` ``A`` (any CT ``Projector``
backend) and measurements ``y`` of shape ``(B, C, *A.range_shape)`` and returns
``(B, C, *A.domain_shape)``; each ``(b, c)`` item is reconstructed independently. Iterative
methods share ``n_iter``, ``x0``, ``callback(k, x)`` and ``progress``. :func:`discrepancy_weight`
chooses TV's weight from a known noise level.
"""

from .cgls import cgls
from .fbp import FILTERS, angle_weights, fbp, ramp_filter
from .gridrec import gridrec, tomopy_available
from .memory import PeakMemory
from .metrics import data_residual, psnr, ssim
from .reconstruct import METHODS, Reconstruction, reconstruct
from .sirt import sirt
from .tv import tv, tv_objective
from .tv_weight import discrepancy_weight

__all__ = ["fbp", "ramp_filter", "angle_weights", "FILTERS", "sirt", "cgls", "tv", "tv_objective",
           "discrepancy_weight", "gridrec", "tomopy_available", "psnr", "ssim", "data_residual",
           "reconstruct", "Reconstruction", "METHODS", "PeakMemory"]
