"""What a result records about how it was made: versions, the prior, the options used."""

from __future__ import annotations

import platform
import time

import torch

from .._version import __version__


def versions() -> dict:
    return {"tomodiff": __version__, "torch": torch.__version__, "python": platform.python_version()}


def prior_info(prior) -> dict:
    """Name, sha256 of the weights (``None`` for a prior without a weights file) and class of a prior."""
    if prior is None:
        return {}
    info = dict(getattr(prior, "info", {}) or {})
    return {"name": info.get("name", getattr(prior, "name", type(prior).__name__)),
            "sha256": info.get("sha256"), "class": type(prior).__name__}


def prior_key(prior) -> dict:
    """What identifies a prior in checkpoint keys: the sha256 of its weights where it has them,
    else its name and class (a plain callable ``D(x, sigma)``: only its class is known)."""
    info = prior_info(prior)
    return {"sha256": info["sha256"]} if info.get("sha256") else info


def plain_options(options: dict) -> dict:
    """The options that are plain values (numbers, strings, flags, tuples of numbers such as DDS's
    ``tv_z``), tuples as lists: what enters provenance and checkpoint keys."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()
            if isinstance(v, (int, float, str, bool, type(None)))
            or (isinstance(v, tuple) and all(isinstance(e, (int, float)) for e in v))}


def used_options(used: dict) -> dict:
    """Options as used, defaults included (callables and tensors by ``repr``)."""
    return {k: repr(v) for k, v in used.items() if k != "callback"}


def created() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
