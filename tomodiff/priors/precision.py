"""Arithmetic precision of a prior's network: which one a device supports, and the autocast context.

``precision`` is one of ``"auto" | "fp32" | "bf16" | "fp16"``:

- ``"fp32"``: plain float32, bit-for-bit the network as trained.
- ``"bf16"``: the network's convolutions and linear layers under ``torch.autocast`` in bfloat16
  (CPUs with AVX-512 BF16 or AMX, CUDA GPUs with bf16 support). The EDM preconditioning around the
  network (``c_skip·x + c_out·F``) stays in float32, so only the network's correction is rounded.
- ``"fp16"``: float16 autocast, CUDA only (CPUs have no fast float16 convolutions).
- ``"auto"``: ``"bf16"`` where the device supports it natively, otherwise ``"fp32"`` (chosen by
  measurement: ``benchmarks/results/sampler_speed.md``; a prior with ``precision="auto"`` also
  runs its no-gradient calls channels-last, see :class:`~tomodiff.priors.slice_prior.Prior`).

An explicit ``"bf16"``/``"fp16"`` on a device without support warns once and falls back to fp32:
emulated bf16 convolutions are slower than fp32 ones.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_bf16_supported() -> bool:
    """Whether this CPU has native bf16 arithmetic for oneDNN (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def supported(precision: str, device) -> bool:
    """Whether ``precision`` (``"fp32" | "bf16" | "fp16"``) runs natively on ``device``."""
    device = torch.device(device)
    if precision == "fp32":
        return True
    if device.type == "cuda":
        if precision == "bf16":
            return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.cuda.is_available()
    if device.type == "cpu":
        return precision == "bf16" and cpu_bf16_supported()
    return False


def check_precision(precision: str) -> str:
    """``precision`` itself, or a one-line ``ValueError`` naming the allowed values."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def resolve(precision: str, device) -> str:
    """The precision actually used on ``device``: ``"auto"`` picks bf16 where native (fp32
    otherwise); an explicit ``"bf16"``/``"fp16"`` without support warns and gives ``"fp32"``."""
    check_precision(precision)
    device = torch.device(device)
    if precision == "auto":
        return "bf16" if supported("bf16", device) else "fp32"
    if not supported(precision, device):
        why = ("this CPU has no native bf16 (AVX-512 BF16 / AMX)" if precision == "bf16" and device.type == "cpu"
               else f"{precision} is not supported on {device.type}")
        warnings.warn(f"precision={precision!r} requested but {why}: using fp32", RuntimeWarning, stacklevel=3)
        return "fp32"
    return precision


def autocast(precision: str, device):
    """The autocast context for a resolved ``precision`` on ``device`` (a null context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])
