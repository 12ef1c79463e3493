"""Bring your own prior: a VP (DDPM-style) network from another library as a tomodiff prior.

A network trained with diffusers or MONAI predicts ε, v or x0 from ``(x_vp, t)`` in its own value
range (usually [-1, 1]) at integer timesteps of its scheduler. tomodiff's samplers want the VE
denoiser ``D(x, sigma) -> x0_hat`` in data units ([0, 1] after the CLI's scale step). Notation map
(``_net``: the network's units; ``k = (b − a)/(hi − lo)`` for data range ``[lo, hi]`` and network
range ``[a, b]``; default ``k = 2``):

| step | formula |
|---|---|
| data (VE, what samplers see) | ``x = x0 + σ·n``, ``x`` and ``σ`` in data units |
| network range | ``x_net = a + (x − lo)·k``, ``σ_net = k·σ`` (noise scales, with no offset) |
| VE → VP | ``ᾱ = 1/(1 + σ_net²)``, ``x_vp = sqrt(ᾱ)·x_net`` |
| σ → timestep | ``σ_t = sqrt((1 − ᾱ_t)/ᾱ_t)`` on the scheduler's ``alphas_cumprod``, ``t`` fractional |
| prediction → x0 | ε: ``x0 = x_net − σ_net·ε``; v: ``x0 = sqrt(ᾱ)·x_vp − sqrt(1 − ᾱ)·v``; x0: as is |
| back to data | ``x0 = lo + (x0_net − a)/k`` |

Why fractional timesteps by default: the conversion then uses the true σ of the input, so the
result is the network's estimate at exactly the noise the sampler put in, and it is continuous in
σ (Karras schedules fall between training timesteps). diffusers' and MONAI's U-Nets embed ``t``
with sinusoids of a float tensor, so a fractional ``t`` is defined and, with 1000 training steps,
lies within half a step of one the network was trained at. ``timestep="nearest"`` is for networks
that take only integers (diffusers' ``time_embedding_type="learned"``, an ``nn.Embedding``); there
the conversion uses ``σ_t`` of the rounded step (the network's own noise level), which differs from
the input's σ by up to half a timestep. A schedule on the network's own timesteps
(:meth:`ExternalDenoiser.timestep_sigmas`) makes both modes exact.

This module needs neither diffusers nor MONAI: :mod:`~tomodiff.priors.diffusers_prior` and
:mod:`~tomodiff.priors.monai_prior` build the :class:`NetworkCall` for each library, and
:func:`~tomodiff.priors.external_files.load_external` opens saved models (local files only).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .adapters import VPDenoiser, batch_sigma
from .patch_prior import PatchPrior
from .registry import sha256
from .slice_prior import SlicePrior

__all__ = ["ExternalDenoiser", "ExternalPatchPrior", "ExternalSlicePrior", "NetworkCall", "check_channels",
           "external_prior", "files_sha256", "prediction_kind", "require", "spatial_dims"]

# the libraries' names of the prediction types (diffusers and MONAI share them) -> VPDenoiser's
PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
TIMESTEPS = ("interpolate", "nearest")
# EDM's σ_max in a [-1, 1] network's units: cosine schedules reach σ ≈ 3e4, where no image is left
SIGMA_MAX_NET = 80.0
# diffusers' floor for ᾱ_T of a zero-terminal-SNR schedule (ᾱ_T = 0 would be σ = ∞)
ALPHA_FLOOR = 2.0 ** -24


def require(package: str, extra: str):
    """Import an optional library, or an ImportError that says how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ImportError(f"this prior needs {package}, which is not installed: pip install 'tomodiff[{extra}]' "
                          f"(or pip install {package})") from err


def prediction_kind(prediction_type: str) -> str:
    """``"eps" | "v" | "x0"`` for a scheduler's ``prediction_type`` (``"epsilon"``, ``"v_prediction"``,
    ``"sample"``; tomodiff's own names pass through), else a ValueError naming the supported ones."""
    if prediction_type in PREDICTION_TYPES.values():
        return prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type {prediction_type!r} is not supported; tomodiff adapts "
                         f"{sorted(PREDICTION_TYPES)} (ε, v and x0 prediction of a VP/DDPM network)")
    return PREDICTION_TYPES[prediction_type]


def check_channels(in_channels: int, out_channels: int, *, learned_variance: bool = False) -> int:
    """The number of output channels that hold the prediction (1), after checking the network
    maps one channel to one (or to two: prediction + learned variance). ValueError otherwise."""
    if in_channels != 1:
        raise ValueError(f"the network takes {in_channels} input channels; tomodiff priors denoise single-channel "
                         "images (one CT slice or volume; a volume's channels are denoised one by one), so it needs "
                         "in_channels=1 (an RGB or multi-modal model cannot be used as a CT prior)")
    if out_channels == 1:
        return 1
    if learned_variance and out_channels == 2:
        return 1  # the second channel is the variance (scheduler variance_type "learned*"): unused
    raise ValueError(f"the network returns {out_channels} channels for one input channel; expected 1 "
                     "(or 2 with a scheduler of variance_type 'learned' / 'learned_range')")


def spatial_dims(network: nn.Module) -> int:
    """2 or 3: the dimension of the network's first convolution (how it was built)."""
    for m in network.modules():
        if isinstance(m, nn.Conv2d):
            return 2
        if isinstance(m, nn.Conv3d):
            return 3
    raise ValueError(f"cannot tell whether {type(network).__name__} is a 2D or a 3D network (no Conv2d/Conv3d); "
                     "pass spatial_dims=")


class NetworkCall(nn.Module):
    """An external network behind one signature: ``forward(x_vp, t) -> prediction``.

    x_vp: ``(B, 1, *spatial)`` in the network's units (any float dtype; cast to the network's).
    t: ``(B,)`` timesteps: fractional (passed as float32), or rounded (``integer_timesteps``: a long tensor).
    call: ``call(network, x, t) -> tensor`` in the library's signature; ``keep``: leading output
    channels that hold the prediction. ``dims`` and ``multiple`` (the network's total downsampling,
    for padding) are what :class:`~tomodiff.priors.SlicePrior` reads, as on tomodiff's own U-Net.
    """

    def __init__(self, network: nn.Module, call: Callable, *, dims: int, multiple: int, keep: int = 1,
                 integer_timesteps: bool = False):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims!r}")
        self.network, self.call = network, call
        self.dims, self.multiple, self.keep = int(dims), int(multiple), int(keep)
        self.integer_timesteps = bool(integer_timesteps)

    def forward(self, x_vp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        p = next(self.network.parameters(), None)
        dtype = p.dtype if p is not None else x_vp.dtype
        t = t.round().long() if self.integer_timesteps else t.float()  # not bf16: it rounds t ~ 1000 to a step of 4
        out = self.call(self.network, x_vp.to(dtype), t)
        return out[:, :self.keep].to(x_vp.dtype)


class ExternalDenoiser(nn.Module):
    """``D(x, sigma) -> x0_hat`` in data units around a :class:`NetworkCall` (see the module's table).

    x: ``(B, 1, *spatial)`` in data units; sigma: float or B values, the noise std in data units.
    alphas_cumprod: the scheduler's ``ᾱ_t``, ``(T,)``. prediction: ``"eps" | "v" | "x0"``.
    data_range ``(lo, hi)`` maps onto network_range ``(a, b)``. timestep: ``"interpolate"`` or
    ``"nearest"`` (see the module docstring). sigma_data: the data's std in the network's units,
    only for ΠGDM/DDS's ``r_t²`` (0.5, EDM's value for [-1, 1] images, as tomodiff's own priors).
    """

    def __init__(self, net: NetworkCall, alphas_cumprod, *, prediction: str, data_range=(0.0, 1.0),
                 network_range=(-1.0, 1.0), timestep: str = "interpolate", sigma_data: float = 0.5):
        super().__init__()
        if timestep not in TIMESTEPS:
            raise ValueError(f"timestep must be one of {TIMESTEPS}, got {timestep!r}")
        lo, hi = map(float, data_range)
        a, b = map(float, network_range)
        if not (hi > lo and b > a):
            raise ValueError(f"need data_range lo < hi and network_range a < b, got {data_range}, {network_range}")
        ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu().clone()
        if len(ac) > 1 and ac[-1] <= 0:  # zero terminal SNR: σ_T would be ∞; diffusers' own floor
            ac[-1] = min(ALPHA_FLOOR, float(ac[-2]) / 2)
        self.net, self.timestep, self.sigma_data = net, timestep, float(sigma_data)
        self.lo, self.net_lo, self.scale = lo, a, (b - a) / (hi - lo)   # scale = k: network units per data unit
        self.data_range, self.network_range = (lo, hi), (a, b)
        self.vp = VPDenoiser(net, ac, prediction=prediction,
                             timestep="discrete" if timestep == "interpolate" else "rounded")
        self.prediction = prediction

    @property
    def sigma_max(self) -> float:
        """Where sampling starts, in data units: the schedule's top σ, capped at EDM's 80 (network units)."""
        return min(self.vp.sigma_max, SIGMA_MAX_NET) / self.scale

    @property
    def sigma_min(self) -> float:
        """The smallest trained noise level (timestep 0), in data units."""
        return self.vp.sigma_min / self.scale

    def timestep_sigmas(self, n: int, *, sigma_max: float | None = None) -> torch.Tensor:
        """A schedule on the network's own timesteps: ``n`` integer timesteps evenly spaced from the
        highest one with ``σ_t ≤ sigma_max`` (data units; default :attr:`sigma_max`) down to 0, as
        decreasing VE sigmas in data units followed by 0; float64, shape ``(n + 1,)``. Pass it to the
        samplers as ``sigmas=``: the network then sees exactly the noise levels it was trained on."""
        grid = self.vp.sigmas / self.scale                       # (T,) increasing
        top = self.sigma_max if sigma_max is None else float(sigma_max)
        t_top = int((grid <= top * (1 + 1e-12)).sum()) - 1
        if isinstance(n, bool) or int(n) != n or not 1 <= n <= t_top + 1:
            raise ValueError(f"n must be an integer in [1, {t_top + 1}] (the timesteps up to sigma_max), got {n!r}")
        t = torch.linspace(t_top, 0, int(n), dtype=torch.float64).round().long()
        return torch.cat([grid[t], grid.new_zeros(1)])

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = batch_sigma(sigma, x)                                 # (B, 1, ..., 1), data units
        u = self.net_lo + (x - self.lo) * self.scale              # network range
        u0 = self.vp(u, s * self.scale)                           # σ scales by k, with no offset
        return self.lo + (u0 - self.net_lo) / self.scale

    def extra_repr(self) -> str:
        return (f"prediction={self.prediction!r}, timestep={self.timestep!r}, T={len(self.vp.sigmas)}, "
                f"data_range={self.data_range}, network_range={self.network_range}")


class _External:
    """What an external prior adds to tomodiff's wrappers: σ_max from its schedule, and the schedule."""

    @property
    def sigma_max(self) -> float:
        return self.net.sigma_max

    def timestep_sigmas(self, n: int, **kw) -> torch.Tensor:
        return self.net.timestep_sigmas(n, **kw)


class ExternalSlicePrior(_External, SlicePrior):
    """A 2D external network as a slice prior: images ``(B, C, H, W)`` or volumes ``(B, C, Z, Y, X)``
    denoised slice by slice (see :class:`~tomodiff.priors.SlicePrior`)."""


class ExternalPatchPrior(_External, PatchPrior):
    """A 3D external network as a patch prior on ``(B, C, Z, Y, X)`` volumes (see
    :class:`~tomodiff.priors.PatchPrior`); ``size`` is the patch edge."""


def external_prior(denoiser: ExternalDenoiser, *, size: int | None, info: dict, **prior_kwargs):
    """The :class:`ExternalSlicePrior` (2D network) or :class:`ExternalPatchPrior` (3D) around it.

    size: the training image size (2D: informational, 0 if unknown) or the patch edge (3D: required,
    a multiple of the network's downsampling). prior_kwargs: ``max_batch``, ``precision``, ... of
    :class:`~tomodiff.priors.slice_prior.Prior` (``stride`` for 3D). The network is put in eval mode
    with its weights' gradients off, as tomodiff's own priors (the samplers differentiate in x only).
    """
    denoiser.eval().requires_grad_(False)
    if denoiser.net.dims == 2:
        return ExternalSlicePrior(denoiser, size=int(size or 0), info=info, **prior_kwargs)
    m = denoiser.net.multiple
    if not size or int(size) % m:
        raise ValueError(f"a 3D network needs size= (the patch edge), a multiple of its downsampling {m}, got {size!r}")
    return ExternalPatchPrior(denoiser, size=int(size), info=info, **prior_kwargs)


def files_sha256(root, files) -> tuple[str, dict]:
    """``(digest, {relative path: sha256})`` for ``files`` under ``root``. The digest is the sha256 of
    the ``sha256sum``-style manifest (``"<sha256>  <path>\\n"`` lines sorted by path), so
    ``cd ROOT && sha256sum FILES | LC_ALL=C sort -k2 | sha256sum`` reproduces it."""
    root = Path(root)
    each = {Path(f).relative_to(root).as_posix(): sha256(f) for f in files}
    manifest = "".join(f"{each[p]}  {p}\n" for p in sorted(each))
    return hashlib.sha256(manifest.encode()).hexdigest(), each
