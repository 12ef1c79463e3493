"""tomodiff: sparse-view CT and 2D inverse problems by diffusion posterior sampling."""

from ._version import __version__

__all__ = ["__version__"]
