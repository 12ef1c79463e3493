"""Prior weight files, the shipped priors and ``load(name)``.

A prior file (``.pt``, written by :func:`save_prior`) holds a dict: ``format``, ``config`` (U-Net
and training settings), ``precond`` (σ_data and the data normalisation ``u = (x - offset) * scale``),
``info`` (model-card facts) and ``state_dict`` (EMA weights). Shipped priors live in
``tomodiff/priors/weights/<name>.pt`` with a model card ``<name>.md`` / ``<name>.json``; the JSON
records the file's sha256, which :func:`load` checks before unpickling anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .conditional_prior import ConditionalPrior
from .edm import EDMDenoiser
from .patch_prior import PatchPrior
from .slab_prior import SlabPrior
from .slice_prior import SlicePrior
from .unet import UNet

FORMAT = "tomodiff-prior/1"
# The prior diffusion methods use when none is named (CLI, napari widget, demo, benchmark): trained
# on real CT at 1-4x its voxel sizes (model card ct-slice.md). slice-64 (phantoms) stays shipped.
DEFAULT_PRIOR = "ct-slice"
WEIGHTS_DIR = Path(__file__).parent / "weights"


class PriorFileError(RuntimeError):
    """A prior file is missing, corrupt or not a tomodiff prior."""


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_prior(denoiser, config: dict, info: dict, path) -> Path:
    """Write an :class:`~tomodiff.priors.edm.EDMDenoiser`'s weights and settings to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FORMAT, "config": dict(config), "info": dict(info),
           "precond": {"sigma_data": denoiser.sigma_data, "offset": denoiser.offset, "scale": denoiser.scale},
           "state_dict": {k: v.detach().cpu().contiguous() for k, v in denoiser.state_dict().items()}}
    torch.save(obj, path)
    return path


def network_shape(config: dict) -> dict:
    """The U-Net's constructor arguments for a training configuration: one input channel, or 2k+1
    for a 2.5D prior (``context`` k), or image + condition + presence flag for a conditional one."""
    k, conditional = int(config.get("context", 0)), bool(config.get("conditional", False))
    in_channels = 3 if conditional else 2 * k + 1
    return {"dims": config["dims"], "in_channels": in_channels, "out_channels": 1,
            "channels": tuple(config["channels"]), "emb_dim": config["emb_dim"]}


def load_file(path, *, device=None, expected_sha256: str | None = None):
    """Load a prior file as a :class:`SlicePrior` (2D networks) or :class:`PatchPrior` (3D)."""
    path = Path(path)
    if not path.is_file():
        raise PriorFileError(f"prior weights not found: {path}")
    digest = sha256(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise PriorFileError(f"prior weights {path} are corrupt: sha256 does not match its model card "
                             f"(reinstall tomodiff or re-export the prior)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PriorFileError(f"prior weights {path} could not be read ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise PriorFileError(f"{path} is not a tomodiff prior file (expected format {FORMAT!r})")
    c = obj["config"]
    den = EDMDenoiser(UNet(**network_shape(c)), **obj["precond"], context=c.get("context", 0),
                      conditional=c.get("conditional", False))
    try:
        den.load_state_dict(obj["state_dict"])
    except RuntimeError as err:
        raise PriorFileError(f"prior weights {path} do not match their stored configuration: {err}") from err
    den.eval().requires_grad_(False)
    if device is not None:
        den.to(device)
    info = dict(obj["info"])
    info.setdefault("sha256", digest)  # provenance and checkpoint keys name the weights by it
    cls = SlicePrior if c["dims"] == 2 else PatchPrior
    if c.get("context", 0):
        cls = SlabPrior
    elif c.get("conditional", False):
        cls = ConditionalPrior
    return cls(den, size=int(c["size"]), info=info)


def available() -> list[str]:
    """Names of the priors shipped in ``tomodiff/priors/weights``."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))


def card(name: str) -> dict:
    """The JSON model card of a shipped prior."""
    path = WEIGHTS_DIR / f"{name}.json"
    if not path.is_file():
        raise PriorFileError(f"model card not found: {path}")
    return json.loads(path.read_text())


def load(name: str, *, device=None, precision: str = "fp32"):
    """A shipped prior by name (e.g. ``"ct-slice"``), checked against its model card's sha256.

    Returns a prior whose ``.denoiser(x, sigma)`` takes and returns data in [0, 1] units.
    precision: ``"fp32"`` (default: the network bit for bit as trained) or ``"auto"`` (bf16
    autocast where the device supports it natively, measured 0.6-0.73x the fp32 time per network
    call on AVX-512-BF16 CPUs with denoising within 0.06 dB, see ``benchmarks/results/sampler_speed.md``;
    the CLI's single-process commands and the demo use it).
    """
    names = available()
    if name not in names:
        raise KeyError(f"no shipped prior named {name!r}; available: {names or 'none'} (in {WEIGHTS_DIR})")
    prior = load_file(WEIGHTS_DIR / f"{name}.pt", device=device, expected_sha256=card(name).get("sha256"))
    prior.precision = precision
    return prior
