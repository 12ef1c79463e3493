"""Diffusion samplers as plain functions, guidance builders, and the ``sample_posterior`` entry point.

Loops: :func:`ddpm` (ancestral), :func:`ddim` (η), :func:`sdedit`. Guidances (each returns a
correction to ``x̂0``; several sum): :func:`pigdm`, :func:`dps`, :func:`loss_guidance`, :func:`dds`, :func:`diffpir`; slice coupling for volumes:
:func:`z_smoothing`, :func:`known_slices`.
"""

from ._common import Guidance, SamplingError, StepContext, combine
from .coupling import known_slices, tv_z, z_smoothing
from .ddim import ddim
from .ddpm import ddpm
from .dds import dds
from .diffpir import CGWarning, diffpir
from .dps import dps
from .loss import loss_guidance
from .pigdm import pigdm
from .posterior import METHODS, PosteriorResult, sample_posterior
from .sdedit import sdedit

__all__ = ["ddpm", "ddim", "sdedit", "pigdm", "dps", "dds", "diffpir", "CGWarning", "loss_guidance", "combine", "Guidance",
           "StepContext", "SamplingError", "sample_posterior", "PosteriorResult", "METHODS",
           "z_smoothing", "known_slices", "tv_z"]
