"""tomodiff: sparse-view CT and 2D inverse problems by diffusion posterior sampling."""

from ._version import __version__

__all__ = ["__version__", "sample_posterior"]


def __getattr__(name):
    # lazy, so that ``import tomodiff`` (and ``tomodiff --help``) stays fast
    if name == "sample_posterior":
        from .samplers import sample_posterior  # start-up time: torch, on first use

        return sample_posterior
    raise AttributeError(f"module 'tomodiff' has no attribute {name!r}")
