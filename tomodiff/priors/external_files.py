"""Priors from files on disk, whichever library wrote them: :func:`load_external` (local files only)."""

from __future__ import annotations

from pathlib import Path

from .diffusers_prior import load_diffusers
from .monai_prior import load_monai
from .registry import PriorFileError, load_file

__all__ = ["load_external"]


def load_external(path, *, device=None, **kwargs):
    """A prior from files on disk, local files only (nothing is ever downloaded):

    - a folder with ``monai_prior.json``: a MONAI network and scheduler
      (:func:`~tomodiff.priors.monai_prior.load_monai`);
    - a diffusers folder: ``unet/`` + ``scheduler/`` (a ``DDPMPipeline.save_pretrained`` layout) or
      ``config.json`` + ``scheduler_config.json`` side by side
      (:func:`~tomodiff.priors.diffusers_prior.load_diffusers`);
    - a tomodiff prior file (``.pt``, :func:`~tomodiff.priors.load_file`).

    kwargs go to the loader (``data_range``, ``timestep``, ``max_batch`` ...). ``info["sha256"]``
    names the weights for provenance and checkpoint keys (for folders:
    :func:`~tomodiff.priors.external.files_sha256`).
    """
    path = Path(path)
    if path.is_file():
        if kwargs:
            raise TypeError(f"a tomodiff prior file takes no options, got {sorted(kwargs)}")
        return load_file(path, device=device)
    if not path.is_dir():
        raise PriorFileError(f"prior not found: {path} (expected a diffusers or MONAI model folder, or a .pt file)")
    if (path / "monai_prior.json").is_file():
        return load_monai(path, device=device, **kwargs)
    if (path / "unet" / "config.json").is_file() or (path / "config.json").is_file():
        return load_diffusers(path, device=device, **kwargs)
    raise PriorFileError(f"{path} is not a model folder tomodiff can read: expected monai_prior.json (MONAI), "
                         "unet/config.json + scheduler/scheduler_config.json or config.json + scheduler_config.json "
                         "(diffusers)")
