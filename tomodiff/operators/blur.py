"""Gaussian blur of 2D images, ``(B, C, H, W) -> (B, C, H, W)``, with an exact adjoint."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import LinearOperator

BOUNDARIES = ("circular", "reflect", "zero")


def gaussian_kernel1d(sigma: float, radius: int | None = None, dtype=torch.float64) -> torch.Tensor:
    """Sampled, normalised 1D Gaussian of std ``sigma`` pixels over ``[-radius, radius]`` (default 3σ)."""
    if radius is None:
        radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _pad_index(n: int, radius: int, boundary: str) -> torch.Tensor:
    """Source index of each padded sample (length n + 2·radius); ``n`` marks a zero pad."""
    i = torch.arange(-radius, n + radius)
    if boundary == "circular":
        return i % n
    if boundary == "reflect":
        # half-sample symmetric ("symmetric" in numpy/scipy): ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
        period = 2 * n
        j = i % period
        return torch.where(j < n, j, period - 1 - j)
    return torch.where((i >= 0) & (i < n), i, torch.full_like(i, n))


class GaussianBlur(LinearOperator):
    """Blur with an isotropic Gaussian of std ``sigma`` pixels.

    ``boundary``: ``"circular"`` (periodic; applied by FFT, so ``(σ²I + r²AAᵀ)⁻¹`` is exact),
    ``"reflect"`` (half-sample symmetric) or ``"zero"``. The latter two are separable
    convolutions of a padded image; their adjoint scatters the padding back, so it is the
    exact transpose too (the ΠGDM term then goes through conjugate gradient).
    """

    def __init__(self, image_shape, sigma: float, boundary: str = "circular", radius: int | None = None):
        image_shape = tuple(image_shape)
        if len(image_shape) != 2:
            raise ValueError(f"GaussianBlur: image_shape must be (H, W), got {image_shape}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"GaussianBlur: sigma must be a positive number of pixels, got {sigma}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"GaussianBlur: boundary must be one of {BOUNDARIES}, got {boundary!r}")
        super().__init__(image_shape, image_shape)
        self.sigma, self.boundary = float(sigma), boundary
        self.kernel = gaussian_kernel1d(self.sigma, radius)
        self.radius = (self.kernel.numel() - 1) // 2
        if boundary == "reflect" and self.radius > min(image_shape):
            raise ValueError(f"GaussianBlur: kernel radius {self.radius} exceeds the image size {image_shape}")
        self._index = [_pad_index(n, self.radius, boundary) for n in image_shape]
        self._spectrum_cache: dict = {}

    # -- circular: FFT ---------------------------------------------------------------
    def _spectrum(self, like: torch.Tensor) -> torch.Tensor:
        """Real transfer function on the rfft2 grid (the kernel is symmetric about 0)."""
        key = (like.dtype, like.device)
        if key not in self._spectrum_cache:
            H, W = self.domain_shape
            spec = []
            for n in (H, W):
                k1 = torch.zeros(n, dtype=torch.float64)
                idx = torch.arange(-self.radius, self.radius + 1) % n
                k1.index_add_(0, idx, self.kernel)  # wrap the kernel around the period
                spec.append(torch.fft.fft(k1).real)
            full = spec[0][:, None] * spec[1][None, : W // 2 + 1]
            self._spectrum_cache[key] = full.to(dtype=like.dtype, device=like.device)
        return self._spectrum_cache[key]

    def _fft_filter(self, x, transfer):
        return torch.fft.irfft2(torch.fft.rfft2(x) * transfer, s=self.domain_shape)

    # -- padded separable convolution --------------------------------------------------
    def _conv_axis(self, x, axis, transpose):
        n = x.shape[axis]
        k = self.kernel.to(dtype=x.dtype, device=x.device)
        xt = x.movedim(axis, -1)
        lead = xt.shape[:-1]
        flat = xt.reshape(-1, 1, xt.shape[-1])
        idx = self._index[axis - 1].to(x.device)
        if not transpose:
            src = torch.cat([flat, flat.new_zeros(flat.shape[0], 1, 1)], dim=-1)  # slot n = zero pad
            out = F.conv1d(src[..., idx], k.view(1, 1, -1))
        else:
            full = F.conv_transpose1d(flat, k.view(1, 1, -1))  # length n + 2·radius
            out = flat.new_zeros(flat.shape[0], 1, n + 1).index_add_(-1, idx, full)[..., :n]
        return out.reshape(*lead, n).movedim(-1, axis)

    def _separable(self, x, transpose):
        # kernel symmetric: correlation == convolution, and the two axes commute
        return self._conv_axis(self._conv_axis(x, 1, transpose), 2, transpose)

    def _forward(self, x):
        if self.boundary == "circular":
            return self._fft_filter(x, self._spectrum(x))
        return self._separable(x, transpose=False)

    def _adjoint(self, y):
        if self.boundary == "circular":
            return self._fft_filter(y, self._spectrum(y))  # real symmetric spectrum: self-adjoint
        return self._separable(y, transpose=True)

    def _gram_solve_exact(self, y, sigma2, r2):
        if self.boundary != "circular":
            return NotImplemented
        lam = self._spectrum(y) ** 2
        denom = sigma2 + r2 * lam  # broadcasts per item: (N, 1, 1) against (H, W//2+1)
        safe = torch.where(denom > 0, denom, torch.ones_like(denom))
        inv = torch.where(denom > 0, 1.0 / safe, torch.zeros_like(denom))
        return self._fft_filter(y, inv)

    @property
    def has_exact_gram_solve(self) -> bool:
        return self.boundary == "circular"

    def __repr__(self):
        return f"GaussianBlur({self.domain_shape}, sigma={self.sigma!r}, boundary={self.boundary!r})"
