"""Linear (and nonlinear) forward operators on one interface; see :class:`LinearOperator`."""

from .base import LinearOperator, ShapedMap
from .blur import GaussianBlur, gaussian_kernel1d
from .dot_test import dot_test
from .downsample import Downsample
from .mask import Mask, box_mask, center_mask, random_pixel_mask
from .noise import GaussianNoise, PoissonNoise, simulate
from .nonlinear import BeerLambert, NonlinearOperator
from .solvers import CGInfo, conjugate_gradient

__all__ = [
    "LinearOperator", "ShapedMap", "NonlinearOperator", "BeerLambert",
    "GaussianBlur", "gaussian_kernel1d", "Downsample", "Mask",
    "random_pixel_mask", "box_mask", "center_mask",
    "GaussianNoise", "PoissonNoise", "simulate",
    "dot_test", "conjugate_gradient", "CGInfo",
]
