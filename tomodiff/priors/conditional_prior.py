"""A conditional 2D prior ``D(x, σ, c)`` and its classifier-free-guided denoiser.

The network was trained on pairs (a clean slice, the FBP of a simulated sparse-view scan of it),
with the condition dropped in a share of the steps (:mod:`tomodiff.training.ct_pairs`), so one
network gives both the conditional and the unconditional denoiser. Classifier-free guidance
(Ho & Salimans 2022) in denoiser form, which is the same combination as on the scores or on ε at a
fixed σ:

    D_w(x, σ) = (1 + w)·D(x, σ, c) − w·D(x, σ)

``w = 0`` is the conditional denoiser itself; ``w > 0`` pushes further from the unconditional
estimate, towards what the condition implies. Both halves run as one batch of the network.
"""

from __future__ import annotations

import torch

from .edm import sigma_per_sample
from .slice_prior import SlicePrior, _pad_to, as_slices


class ConditionalPrior(SlicePrior):
    """A conditional slice prior. ``denoiser(x, sigma)`` is its unconditional denoiser (the
    condition dropped, as in training); :meth:`guided` gives the classifier-free-guided denoiser for
    a condition."""

    def guided(self, cond: torch.Tensor, w: float = 0.0) -> "GuidedDenoiser":
        """``D_w(x, sigma)`` for condition ``cond`` (shaped like the volumes or images it will denoise,
        ``(B, C, Z, Y, X)`` or ``(B, C, H, W)``, in data units; a batch of ``n·B`` samples, sample-major,
        reuses it for every sample) and guidance weight ``w >= 0``."""
        return GuidedDenoiser(self, cond, w)


class GuidedDenoiser:
    """Callable ``D(x, sigma) -> x0_hat``: classifier-free guidance of a :class:`ConditionalPrior`
    with a fixed condition (see the module docstring)."""

    def __init__(self, prior: ConditionalPrior, cond: torch.Tensor, w: float):
        if not float(w) >= 0:
            raise ValueError(f"classifier-free guidance: the weight w must be >= 0, got {w!r}")
        if cond.dim() not in (4, 5):
            raise ValueError(f"classifier-free guidance: the condition must be (B, C, H, W) or (B, C, Z, Y, X), "
                             f"got shape {tuple(cond.shape)}")
        self.prior, self.cond, self.w = prior, cond, float(w)

    def _condition_for(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cond
        if x.shape[1:] != c.shape[1:] or x.shape[0] % c.shape[0]:
            raise ValueError(f"classifier-free guidance: x of shape {tuple(x.shape)} does not match the condition "
                             f"{tuple(c.shape)} (same item shape, a batch that is a multiple of the condition's)")
        return c.to(x).repeat(x.shape[0] // c.shape[0], *([1] * (c.dim() - 1)))

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        prior = self.prior
        s = sigma_per_sample(sigma, x).reshape(-1)
        flat, per_item = as_slices(x)
        cond, _ = as_slices(self._condition_for(x))
        padded, crop = _pad_to(flat, prior.net.net.multiple)
        cond, _ = _pad_to(cond, prior.net.net.multiple)
        s = s.repeat_interleave(per_item)
        n = padded.shape[0]
        if self.w == 0:
            out = prior._chunked(padded, s, cond)
        else:  # conditional and unconditional halves in one batch: keep = 1, then 0
            keep = torch.cat([torch.ones(n, device=x.device), torch.zeros(n, device=x.device)])
            both = prior._chunked(torch.cat([padded, padded]), torch.cat([s, s]), torch.cat([cond, cond]), keep)
            out = (1 + self.w) * both[:n] - self.w * both[n:]
        if crop is not None:
            out = out[crop]
        return out.reshape(x.shape)

    def __repr__(self):
        return f"GuidedDenoiser({self.prior!r}, w={self.w:g}, cond={tuple(self.cond.shape)})"
