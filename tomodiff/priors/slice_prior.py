"""A 2D prior applied to images, or to volumes slice by slice (axial slices batched over Z)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from . import precision as _precision
from .edm import EDMDenoiser, sigma_per_sample


class Prior:
    """A trained denoiser with its model-card facts. ``denoiser(x, sigma)`` is the contract:
    x in data units ([0, 1] for phantoms), sigma the noise std in the same units.

    Speed options (inference only; the weights and ``net`` are never changed):

    precision: ``"fp32"`` (default: the network exactly as trained, bit for bit) or ``"auto"``
        (the fastest measured setting that keeps denoising PSNR within 0.1 dB: bf16 autocast where
        the device has native bf16, fp32 elsewhere, plus ``channels_last``), or ``"bf16"`` /
        ``"fp16"`` (see :mod:`tomodiff.priors.precision`; unsupported: a warning, then fp32).
        Settable: ``prior.precision = "auto"``.
    channels_last: calls that need no gradient (``torch.no_grad()`` or an input without
        ``requires_grad``) run a channels-last copy of a 2D network (faster on CPU); calls that
        backpropagate keep the standard layout (group norm's backward is slow in channels-last).
        ``None`` (default): on unless ``precision == "fp32"``.
    inference_mode: calls that need no gradient run under ``torch.inference_mode()`` (the output
        is an ordinary tensor). Off by default: measured no faster than ``torch.no_grad()`` here
        (``benchmarks/results/sampler_speed.md``).
    """

    def __init__(self, net: EDMDenoiser, size: int, info: dict | None = None, max_batch: int = 64, *,
                 precision: str = "fp32", channels_last: bool | None = None, inference_mode: bool = False):
        self.net, self.size, self.info, self.max_batch = net, int(size), dict(info or {}), int(max_batch)
        self.channels_last, self.inference_mode = channels_last, bool(inference_mode)
        self.precision = precision
        self._fast_net, self._fast_key = None, None

    @property
    def precision(self) -> str:
        """The requested precision (``"auto" | "fp32" | "bf16" | "fp16"``)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._precision = _precision.check_precision(value)
        self._resolved = {}

    def resolved_precision(self, device=None) -> str:
        """The precision used on ``device`` (default: the network's): ``"fp32" | "bf16" | "fp16"``.
        Warns once (and gives fp32) where an explicit bf16/fp16 is not supported."""
        if device is None:
            device = next((p.device for p in self._params()), torch.device("cpu"))
        device = torch.device(device)
        key = str(device)
        if key not in self._resolved:
            self._resolved[key] = _precision.resolve(self._precision, device)
        return self._resolved[key]

    @property
    def name(self) -> str:
        return self.info.get("name", type(self).__name__)

    @property
    def sigma_max(self) -> float:
        """Noise level (data units) to start sampling from: EDM's σ_max = 40 in the network's
        normalised space, the top of what training showed the network (its unconditional-sample
        grids start there too)."""
        return 40.0 / self.net.scale

    def to(self, device):
        self.net.to(device)
        self._fast_net = self._fast_key = None
        return self

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, size={self.size})"

    def __call__(self, x, sigma):
        return self.denoiser(x, sigma)

    def _chunked(self, x: torch.Tensor, s: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """The network on a batch in chunks of ``max_batch``; ``s`` is ``(B,)``; ``extra``: further
        per-sample network arguments (a conditional prior's condition and keep flags), chunked alike."""
        n = self.max_batch
        outs = [self._run(x[i:i + n], s[i:i + n], *(e[i:i + n] for e in extra)) for i in range(0, x.shape[0], n)]
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _run(self, x: torch.Tensor, s: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """One network call in the chosen precision; without a gradient to compute (grad mode off,
        or neither the input nor a weight requires one), the channels-last copy (2D) under
        ``no_grad`` or ``inference_mode``."""
        with _precision.autocast(self.resolved_precision(x.device), x.device):
            if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self._params())):
                return self.net(x, s, *extra)
            net = self._no_grad_net()
            if net is not self.net:
                x = x.contiguous(memory_format=torch.channels_last)
            if not self.inference_mode:
                with torch.no_grad():
                    return net(x, s, *extra).contiguous()
            with torch.inference_mode():
                out = net(x, s, *extra)
        return out.clone(memory_format=torch.contiguous_format)  # an ordinary tensor again

    def _params(self) -> list:
        """The network's parameters (none for a plain callable)."""
        return list(self.net.parameters()) if hasattr(self.net, "parameters") else []

    def _no_grad_net(self):
        """The network for calls without gradient: a channels-last copy of a 2D network (rebuilt
        when the weights change), else the network itself."""
        on = self._precision != "fp32" if self.channels_last is None else bool(self.channels_last)
        if not on or getattr(getattr(self.net, "net", None), "dims", None) != 2:
            return self.net
        key = tuple((p.data_ptr(), p._version, p.device) for p in self._params())
        if key != self._fast_key:
            fast = copy.deepcopy(self.net).requires_grad_(False)
            self._fast_net, self._fast_key = fast.to(memory_format=torch.channels_last), key
        return self._fast_net


def _pad_to(x: torch.Tensor, multiple: int):
    """Reflect-pad the trailing spatial dims up to a multiple; returns (padded, crop slices)."""
    pads, crop = [], []
    for n in reversed(x.shape[2:]):
        extra = (-n) % multiple
        pads += [extra // 2, extra - extra // 2]
    for n in x.shape[2:]:
        extra = (-n) % multiple
        crop.append(slice(extra // 2, extra // 2 + n))
    if not any(pads):
        return x, None
    mode = "reflect" if min(x.shape[2:]) > max(pads) else "replicate"
    return F.pad(x, pads, mode=mode), (slice(None), slice(None), *crop)


class SlicePrior(Prior):
    """2D prior. ``denoiser`` accepts ``(B, C, H, W)`` images or ``(B, C, Z, Y, X)`` volumes (each
    channel and axial slice denoised independently, all slices of the batch in chunks of
    ``max_batch``); sigma is a float or B values. Sizes that are not a multiple of the network's
    downsampling factor are reflect-padded and cropped back; the network was trained on
    ``size``² slices, other sizes work but are outside its training distribution."""

    def denoiser(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.dim() not in (4, 5):
            raise ValueError(f"SlicePrior: expected (B, C, H, W) or (B, C, Z, Y, X), got {tuple(x.shape)}")
        s = sigma_per_sample(sigma, x).reshape(-1)  # (B,)
        flat, per_item = as_slices(x)
        padded, crop = _pad_to(flat, self.net.net.multiple)
        out = self._chunked(padded, s.repeat_interleave(per_item))
        if crop is not None:
            out = out[crop]
        return out.reshape(x.shape)


def as_slices(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(B, C, H, W)`` images or ``(B, C, Z, Y, X)`` volumes as a ``(N, 1, Y, X)`` batch of slices,
    and the number of slices per batch item (``C`` or ``C·Z``), for repeating per-item values."""
    if x.dim() == 5:
        B, C, Z, Y, X = x.shape
        return x.reshape(B * C * Z, 1, Y, X), C * Z
    B, C, Y, X = x.shape
    return x.reshape(B * C, 1, Y, X), C
