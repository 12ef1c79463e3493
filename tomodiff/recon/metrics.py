"""Image-quality and data-fit metrics for reconstructions (PSNR, SSIM, relative data residual).

``psnr``/``ssim`` take torch tensors or numpy arrays: a single image ``(Y, X)`` or volume
``(Z, Y, X)`` gives a float; a batch ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)`` gives a ``(B, C)``
numpy array, one value per item. They wrap scikit-image's implementations.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..operators.base import LinearOperator


def _numpy(a, what: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim not in (2, 3, 4, 5):
        raise ValueError(f"{what} must be (Y, X), (Z, Y, X), (B, C, Y, X) or (B, C, Z, Y, X), "
                         f"got shape {a.shape}")
    return a


def _pairwise(metric, x, ref, data_range, name: str):
    x, ref = _numpy(x, f"{name}: x"), _numpy(ref, f"{name}: ref")
    if x.shape != ref.shape:
        raise ValueError(f"{name}: x and ref must have the same shape, got {x.shape} and {ref.shape}")
    if not (np.isfinite(x).all() and np.isfinite(ref).all()):
        raise ValueError(f"{name}: x or ref contains NaN or Inf")
    if x.ndim <= 3:
        return float(metric(x, ref, data_range))
    out = np.empty(x.shape[:2])
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[b, c] = metric(x[b, c], ref[b, c], data_range)
    return out


def _range(ref: np.ndarray, data_range) -> float:
    r = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    if not r > 0:
        raise ValueError(f"data_range must be > 0 (default: ref.max() - ref.min()), got {r}")
    return r


def psnr(x, ref, data_range: float | None = None):
    """Peak signal-to-noise ratio of ``x`` against ``ref`` in dB.

    ``data_range`` is the peak value range; by default ``ref.max() − ref.min()`` of each item.
    """
    def one(a, r, dr):
        return peak_signal_noise_ratio(r, a, data_range=_range(r, dr))
    return _pairwise(one, x, ref, data_range, "psnr")


def ssim(x, ref, data_range: float | None = None):
    """Structural similarity (2D or 3D, 7-voxel window, scikit-image defaults) of ``x`` vs ``ref``."""
    def one(a, r, dr):
        return structural_similarity(r, a, data_range=_range(r, dr))
    return _pairwise(one, x, ref, data_range, "ssim")


def data_residual(A: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Relative data misfit ``‖A x − y‖ / ‖y‖`` per item, shape ``(B, C)``."""
    with torch.no_grad():
        r = A.forward(x) - y
        dims = tuple(range(2, r.dim()))
        num = r.pow(2).sum(dim=dims).sqrt()
        den = y.pow(2).sum(dim=dims).sqrt()
    if bool((den == 0).any()):
        raise ValueError("data_residual: y is zero for some item; the relative residual is undefined")
    return num / den
