"""MONAI diffusion models as tomodiff priors: :func:`from_monai` (objects), :func:`save_monai` /
:func:`load_monai` (a folder).

The network is called as MONAI's inferers call it, ``network(x, timesteps=t)`` -> a tensor, with
``x`` ``(B, 1, *spatial)`` in the network's range; the scheduler (``monai.networks.schedulers``)
gives ``alphas_cumprod`` and ``prediction_type``. 2D networks serve slice by slice, 3D networks
as patch priors. Conventions and the σ ↔ timestep choice: :mod:`tomodiff.priors.external`.

Folder format (MONAI saves no constructor arguments with its weights, so they go beside them)::

    monai_prior.json   {"format": "tomodiff-monai-prior/1",
                        "network":   {"class": "DiffusionModelUNet", "args": {...constructor kwargs}},
                        "scheduler": {"class": "DDPMScheduler",      "args": {...constructor kwargs}},
                        "weights": "network.pt", "size": 64,               # size: 3D patch edge
                        "data_range": [0, 1], "network_range": [-1, 1]}    # optional
    network.pt         torch.save(network.state_dict())

The weights are a state dict read with ``torch.load(weights_only=True)``: opening a prior never
runs pickled code (a ``torch.save``'d whole network would). MONAI is an optional dependency
(``pip install 'tomodiff[monai]'``), imported only to build or load a network.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import external as ext
from .registry import PriorFileError

__all__ = ["FORMAT", "from_monai", "load_monai", "save_monai"]

FORMAT = "tomodiff-monai-prior/1"
CONFIG = "monai_prior.json"


def _plain(value) -> str:
    return str(getattr(value, "value", value))


def _monai_call(network, x, t):
    return network(x, timesteps=t)


def from_monai(network, scheduler, *, spatial_dims: int | None = None, size: int | None = None,
               data_range=(0.0, 1.0), network_range=(-1.0, 1.0), timestep: str = "interpolate",
               info: dict | None = None, **prior_kwargs):
    """A MONAI diffusion network and its scheduler as a tomodiff prior (``.denoiser(x, sigma)``).

    network: ``network(x, timesteps=t)`` with ``in_channels`` 1, ``out_channels`` 1 (2 with a
        learned variance) and ``block_out_channels`` (as ``DiffusionModelUNet``; its downsampling
        pads inputs to a multiple of ``2**(len - 1)``).
    scheduler: ``DDPMScheduler`` / ``DDIMScheduler`` ...: ``alphas_cumprod``, ``prediction_type``
        (``epsilon``, ``v_prediction``, ``sample``).
    spatial_dims: 2 or 3 (default: from the network's convolutions). size: the 3D patch edge
        (required for 3D; 2D: the training size, informational). data_range, network_range,
        timestep, prior_kwargs: as :func:`~tomodiff.priors.diffusers_prior.from_diffusers`.
    Returns an :class:`~tomodiff.priors.external.ExternalSlicePrior` (2D) or
    :class:`~tomodiff.priors.external.ExternalPatchPrior` (3D).
    """
    prediction = _plain(scheduler.prediction_type)  # MONAI's defaults are StrEnums: plain strings for the card
    learned = _plain(getattr(scheduler, "variance_type", None) or "").startswith("learned")
    keep = ext.check_channels(network.in_channels, network.out_channels, learned_variance=learned)
    dims = spatial_dims if spatial_dims is not None else ext.spatial_dims(network)
    net = ext.NetworkCall(network, _monai_call, dims=dims, multiple=2 ** (len(network.block_out_channels) - 1),
                          keep=keep, integer_timesteps=timestep == "nearest")
    den = ext.ExternalDenoiser(net, scheduler.alphas_cumprod, prediction=ext.prediction_kind(prediction),
                               data_range=data_range, network_range=network_range, timestep=timestep)
    card = {"name": f"monai:{type(network).__name__}", "library": "monai", "network": type(network).__name__,
            "scheduler": type(scheduler).__name__, "prediction_type": prediction, "timestep": timestep,
            "num_train_timesteps": len(den.vp.sigmas), "data_range": list(den.data_range),
            "network_range": list(den.network_range), **(info or {})}
    return ext.external_prior(den, size=size, info=card, **prior_kwargs)


def save_monai(path, network, *, network_args: dict, scheduler_args: dict, network_class: str = "DiffusionModelUNet",
               scheduler_class: str = "DDPMScheduler", size: int | None = None, **options) -> Path:
    """Write ``network``'s weights and the arguments that rebuild it and its scheduler to folder ``path``.

    network_args, scheduler_args: the constructor keyword arguments (JSON values) of
    ``monai.networks.nets.<network_class>`` and ``monai.networks.schedulers.<scheduler_class>``.
    options: ``data_range``, ``network_range``, ``timestep`` to store with it. Returns ``path``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}, path / "network.pt")
    config = {"format": FORMAT, "network": {"class": network_class, "args": dict(network_args)},
              "scheduler": {"class": scheduler_class, "args": dict(scheduler_args)}, "weights": "network.pt",
              "size": size, **{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}}
    (path / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return path


def _build(module, spec: dict, what: str, config: Path):
    cls = getattr(module, str(spec.get("class")), None)
    if not isinstance(cls, type):
        raise PriorFileError(f"{config}: {what} class {spec.get('class')!r} is not in {module.__name__}")
    try:
        return cls(**spec.get("args", {}))
    except Exception as err:  # the library's own argument checks, by case
        raise PriorFileError(f"{config}: {spec['class']}(**args) failed ({type(err).__name__}: {err})") from err


def load_monai(path, *, device=None, **kwargs):
    """A folder written by :func:`save_monai` (format in the module docstring) as a prior.

    kwargs override the stored ``data_range``, ``network_range``, ``timestep``, ``size`` and add
    prior options (``max_batch`` ...). ``info["sha256"]``:
    :func:`~tomodiff.priors.external.files_sha256` of ``monai_prior.json`` and the weights.
    """
    ext.require("monai", "monai")
    from monai.networks import nets, schedulers  # optional dependency

    path = Path(path)
    config = path / CONFIG
    try:
        spec = json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise PriorFileError(f"{config} could not be read ({type(err).__name__}: {err})") from err
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise PriorFileError(f"{config} is not a tomodiff MONAI prior (expected format {FORMAT!r})")
    weights = path / str(spec.get("weights", "network.pt"))
    if not weights.is_file():
        raise PriorFileError(f"MONAI prior weights not found: {weights}")
    digest, each = ext.files_sha256(path, [config, weights])
    network = _build(nets, spec.get("network", {}), "network", config)
    scheduler = _build(schedulers, spec.get("scheduler", {}), "scheduler", config)
    try:
        network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as err:  # unreadable file, or weights of another architecture
        raise PriorFileError(f"{weights} does not load into {spec['network']['class']}: {err}") from err
    stored = {k: spec[k] for k in ("size", "data_range", "network_range", "timestep") if spec.get(k) is not None}
    info = {"name": f"monai:{path.resolve().name}", "source": str(path.resolve()), "sha256": digest, "files": each}
    prior = from_monai(network, scheduler, info=info, **{**stored, **kwargs})
    return prior.to(device) if device is not None else prior
