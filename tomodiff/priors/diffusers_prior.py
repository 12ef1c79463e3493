"""diffusers models as tomodiff priors: :func:`from_diffusers` (objects) and :func:`load_diffusers` (a folder).

The network is called as diffusers calls it, ``unet(sample, timestep).sample``, with
``sample`` ``(B, 1, H, W)`` in the network's range and ``timestep`` ``(B,)``; the scheduler gives
``alphas_cumprod`` (``(T,)``) and ``config.prediction_type``. Conventions and the σ ↔ timestep
choice: :mod:`tomodiff.priors.external`. diffusers is an optional dependency
(``pip install 'tomodiff[diffusers]'``), imported only by :func:`load_diffusers`;
:func:`from_diffusers` reads attributes only, so any object with diffusers' call signature works.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import external as ext
from .registry import PriorFileError

__all__ = ["from_diffusers", "load_diffusers"]

# what a diffusers model folder holds that defines the prior (configs and weights; not READMEs)
_DEFINING = (".json", ".safetensors", ".bin")


def _unet_call(network, x, t):
    return network(x, t).sample  # UNet2DOutput


def _size(sample_size) -> int:
    if isinstance(sample_size, (list, tuple)):
        return int(sample_size[0])
    return int(sample_size or 0)


def from_diffusers(unet, scheduler, *, data_range=(0.0, 1.0), network_range=(-1.0, 1.0), timestep: str = "auto",
                   spatial_dims: int | None = None, size: int | None = None, info: dict | None = None,
                   **prior_kwargs):
    """A diffusers ``UNet2DModel`` and its scheduler as a tomodiff prior (``.denoiser(x, sigma)``).

    unet: ``unet(sample, timestep).sample``; its ``config`` gives ``in_channels`` (must be 1),
        ``out_channels`` (1, or 2 with a learned variance), ``block_out_channels`` (the
        downsampling, for padding), ``sample_size`` and ``time_embedding_type``.
    scheduler: any diffusers scheduler with ``alphas_cumprod`` (DDPM, DDIM, ...); its
        ``config.prediction_type`` (``epsilon``, ``v_prediction``, ``sample``) says what the network predicts.
    data_range: the data values (tomodiff's units: [0, 1] after the CLI's scale step) that map onto
        network_range (diffusers' images: [-1, 1]); σ scales by the same factor.
    timestep: ``"auto"`` (``"nearest"`` for a learned, integer-only time embedding, else
        ``"interpolate"``), ``"interpolate"`` or ``"nearest"`` (:mod:`tomodiff.priors.external`).
    size: the training size (default ``config.sample_size``). prior_kwargs: ``max_batch``, ``precision`` ...
    Returns an :class:`~tomodiff.priors.external.ExternalSlicePrior` (a 2D network).
    """
    cfg = unet.config
    embedding = getattr(cfg, "time_embedding_type", "positional")
    if embedding == "fourier":
        raise ValueError("this UNet2DModel has a Fourier time embedding (a score-SDE VE model fed log σ): tomodiff "
                         "adapts VP/DDPM networks with discrete timesteps")
    if getattr(cfg, "cross_attention_dim", None):
        raise ValueError(f"{type(unet).__name__} is text-conditioned (cross-attention, e.g. Stable Diffusion): it "
                         "needs encoder states and denoises a VAE's latents, not CT images")
    if not hasattr(scheduler, "alphas_cumprod"):
        raise ValueError(f"{type(scheduler).__name__} has no alphas_cumprod: tomodiff adapts VP/DDPM schedulers "
                         "(DDPMScheduler, DDIMScheduler, ...)")
    learned = str(getattr(scheduler.config, "variance_type", None) or "").startswith("learned")
    keep = ext.check_channels(cfg.in_channels, cfg.out_channels, learned_variance=learned)
    if timestep == "auto":
        timestep = "nearest" if embedding == "learned" else "interpolate"
    dims = spatial_dims if spatial_dims is not None else ext.spatial_dims(unet)
    net = ext.NetworkCall(unet, _unet_call, dims=dims, multiple=2 ** (len(cfg.block_out_channels) - 1), keep=keep,
                      integer_timesteps=timestep == "nearest")
    prediction = getattr(scheduler.config, "prediction_type", "epsilon")
    den = ext.ExternalDenoiser(net, scheduler.alphas_cumprod, prediction=ext.prediction_kind(prediction),
                           data_range=data_range, network_range=network_range, timestep=timestep)
    card = {"name": f"diffusers:{type(unet).__name__}", "library": "diffusers", "network": type(unet).__name__,
            "scheduler": type(scheduler).__name__, "prediction_type": prediction, "timestep": timestep,
            "num_train_timesteps": len(den.vp.sigmas), "data_range": list(den.data_range),
            "network_range": list(den.network_range), **(info or {})}
    return ext.external_prior(den, size=size if size is not None else _size(getattr(cfg, "sample_size", 0)), info=card,
                          **prior_kwargs)


def _library_class(library, config: Path, base, default: str):
    """The diffusers class a saved config names (``_class_name``), checked to be a ``base`` subclass."""
    try:
        name = json.loads(config.read_text()).get("_class_name", default)
    except (OSError, ValueError) as err:
        raise PriorFileError(f"{config} could not be read ({type(err).__name__}: {err})") from err
    cls = getattr(library, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PriorFileError(f"{config}: _class_name {name!r} is not a diffusers {base.__name__} class")
    return cls


def load_diffusers(path, *, device=None, **kwargs):
    """A saved diffusers model folder as a prior, from local files only (``local_files_only=True``).

    Layouts: ``unet/`` + ``scheduler/`` subfolders (``DDPMPipeline.save_pretrained``), or
    ``config.json`` (+ weights) and ``scheduler_config.json`` in one folder (``unet.save_pretrained``
    and ``scheduler.save_pretrained`` to the same path). kwargs: as :func:`from_diffusers`.
    ``info["sha256"]``: :func:`~tomodiff.priors.external.files_sha256` of the configs and weights.
    """
    diffusers = ext.require("diffusers", "diffusers")
    path = Path(path)
    unet_dir = path / "unet" if (path / "unet" / "config.json").is_file() else path
    sched_dir = path / "scheduler" if (path / "scheduler" / "scheduler_config.json").is_file() else path
    for f in (unet_dir / "config.json", sched_dir / "scheduler_config.json"):
        if not f.is_file():
            raise PriorFileError(f"{path} is not a complete diffusers model folder: {f} is missing")
    unet_cls = _library_class(diffusers, unet_dir / "config.json", diffusers.ModelMixin, "UNet2DModel")
    sched_cls = _library_class(diffusers, sched_dir / "scheduler_config.json", diffusers.SchedulerMixin,
                               "DDPMScheduler")
    files = [f for d in sorted({unet_dir, sched_dir}) for f in d.iterdir() if f.is_file() and f.suffix in _DEFINING]
    files += [f for f in [path / "model_index.json"] if f.is_file() and f not in files]
    digest, each = ext.files_sha256(path, files)
    try:
        unet = unet_cls.from_pretrained(unet_dir, local_files_only=True, low_cpu_mem_usage=False)  # no accelerate
        scheduler = sched_cls.from_pretrained(sched_dir, local_files_only=True)
    except Exception as err:  # diffusers raises OSError, ValueError, KeyError ... by case
        raise PriorFileError(f"the diffusers model in {path} did not load ({type(err).__name__}: {err})") from err
    info = {"name": f"diffusers:{path.resolve().name}", "source": str(path.resolve()), "sha256": digest,
            "files": each, "library_version": diffusers.__version__}
    prior = from_diffusers(unet, scheduler, info=info, **kwargs)
    return prior.to(device) if device is not None else prior
