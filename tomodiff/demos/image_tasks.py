"""The 2D image tasks on one operator interface: deblurring, super-resolution, inpainting and
outpainting of a bundled test image, each solved with the regularised pseudo-inverse
``x̂ = Aᵀ (λI + AAᵀ)⁻¹ y`` (no diffusion yet; the samplers add it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..operators import (Downsample, GaussianBlur, GaussianNoise, LinearOperator, Mask, box_mask,
                         center_mask, random_pixel_mask, simulate)


@dataclass
class TaskResult:
    name: str
    operator: LinearOperator
    measurement: torch.Tensor  # (1, 1, *range_shape)
    estimate: torch.Tensor  # (1, 1, H, W)
    psnr: float
    ssim: float
    seconds: float


def test_image(size: int = 128) -> torch.Tensor:
    """The Shepp–Logan image from scikit-image, resized to ``(1, 1, size, size)`` float32 in [0, 1]."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    img = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    return torch.from_numpy(np.clip(img, 0.0, 1.0).astype(np.float32))[None, None]


def default_tasks(shape, *, seed: int = 0) -> dict[str, LinearOperator]:
    g = torch.Generator().manual_seed(seed)
    h, w = shape
    return {
        "deblur (Gaussian σ=2 px)": GaussianBlur(shape, 2.0, boundary="circular"),
        "super-resolution ×4": Downsample(shape, 4),
        "inpainting (70% pixels missing)": Mask(random_pixel_mask(shape, 0.3, generator=g)),
        "inpainting (box)": Mask(box_mask(shape, [(h // 3, w // 4, h // 3, w // 2)])),
        "outpainting (centre 60% kept)": Mask(center_mask(shape, 0.6)),
    }


def pseudo_inverse(A: LinearOperator, y: torch.Tensor, lam: float) -> torch.Tensor:
    """``Aᵀ (λI + AAᵀ)⁻¹ y``: the minimum-norm Tikhonov estimate (closed form where A knows its
    spectrum, conjugate gradient otherwise)."""
    return A.adjoint(A.gram_solve(y, sigma=lam**0.5, r=1.0))


def run_tasks(image: torch.Tensor, *, noise_sigma: float = 0.01, lam: float = 1e-3,
              seed: int = 0) -> list[TaskResult]:
    import time

    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    truth = image[0, 0].numpy()
    results = []
    for i, (name, A) in enumerate(default_tasks(tuple(image.shape[-2:]), seed=seed).items()):
        g = torch.Generator().manual_seed(seed + 1 + i)
        y = simulate(A, image, GaussianNoise(noise_sigma), generator=g)
        t0 = time.perf_counter()
        x_hat = pseudo_inverse(A, y, lam)
        seconds = time.perf_counter() - t0
        est = x_hat[0, 0].numpy()
        results.append(TaskResult(
            name, A, y, x_hat,
            psnr=float(peak_signal_noise_ratio(truth, est, data_range=1.0)),
            ssim=float(structural_similarity(truth, est, data_range=1.0)),
            seconds=seconds))
    return results


def _display(t: torch.Tensor, shape) -> np.ndarray:
    """A measurement as an image of ``shape`` (nearest-neighbour upsampling for low-res ones)."""
    img = t[0, 0].numpy()
    fy, fx = shape[0] // img.shape[0], shape[1] // img.shape[1]
    return np.kron(img, np.ones((fy, fx))) if (fy, fx) != (1, 1) else img


def save_figure(image: torch.Tensor, results: list[TaskResult], path) -> None:
    """PNG grid: one row per task with measurement, estimate and truth side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shape = tuple(image.shape[-2:])
    fig, axes = plt.subplots(len(results), 3, figsize=(7.5, 2.6 * len(results)), squeeze=False)
    for row, res in zip(axes, results):
        panels = [(_display(res.measurement, shape), f"{res.name}\nmeasurement"),
                  (res.estimate[0, 0].numpy(), f"Aᵀ(λI+AAᵀ)⁻¹y\nPSNR {res.psnr:.1f} dB"),
                  (image[0, 0].numpy(), "truth")]
        for ax, (img, title) in zip(row, panels):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
