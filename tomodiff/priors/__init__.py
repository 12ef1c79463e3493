"""Priors: the denoiser contract ``D(x, sigma) -> x0_hat``, noise schedules, adapters, analytic priors.

Submodules load on first use (``tomodiff.priors.schedules``, ``.adapters``, ``.analytic``), so
importing :mod:`tomodiff.priors` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {
    # schedules
    "karras_sigmas": "schedules", "ddpm_sigmas": "schedules", "ddpm_linear_sigmas": "schedules",
    "ddpm_cosine_sigmas": "schedules", "ddpm_alphas_cumprod": "schedules",
    "alphas_cumprod_to_sigmas": "schedules", "check_sigmas": "schedules",
    # adapters
    "VPDenoiser": "adapters", "batch_sigma": "adapters",
    # analytic priors
    "GaussianPrior": "analytic", "GaussianMixturePrior": "analytic", "GaussianPosterior": "analytic",
    "dense_matrix": "analytic",
    # trained priors: networks, shipped weights (phantoms/priors engineer)
    "load": "registry", "available": "registry", "DEFAULT_PRIOR": "registry", "load_file": "registry", "save_prior": "registry",
    "PriorFileError": "registry", "SlicePrior": "slice_prior", "PatchPrior": "patch_prior",
    "SlabPrior": "slab_prior", "ConditionalPrior": "conditional_prior",
    "UNet": "unet", "EDMDenoiser": "edm",
    # bring your own prior: diffusers / MONAI networks (optional libraries, imported on use)
    "load_external": "external_files", "ExternalDenoiser": "external", "from_diffusers": "diffusers_prior",
    "load_diffusers": "diffusers_prior", "from_monai": "monai_prior", "load_monai": "monai_prior",
    "save_monai": "monai_prior",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
