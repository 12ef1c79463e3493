"""The 2D image tasks on one operator interface: the demo image, the five forward operators and
their simulated measurements ``y = A x + σ·n``.

The image is an axial slice of a held-out benchmark phantom (seeds in
``tomodiff.phantoms.BENCHMARK_SEEDS``, never seen in the priors' training), rendered at the
requested size, so a prior trained on phantom slices is tested on data it did not see.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import phantoms
from ..operators import (Downsample, GaussianBlur, GaussianNoise, LinearOperator, Mask, box_mask, center_mask,
                         random_pixel_mask, simulate)

# family -> (offset of its first benchmark phantom inside BENCHMARK_SEEDS, i.e. the "<family>_64_a"
# volume of phantoms/manifest.json; axial height z in [-1, 1] of a slice that shows its structure)
DEMO_PHANTOMS = {
    "shepp_logan": (0, -0.25),
    "ellipsoids": (2, 0.0),
    "foam": (4, 0.0),
    "texture": (6, 0.25),
}

# task key -> human-readable name (keys are what --tasks and the JSON output use)
TASK_NAMES = {
    "deblur": "deblur (Gaussian σ=2 px)",
    "sr4": "super-resolution ×4",
    "inpaint-pixels": "inpainting (70% pixels missing)",
    "inpaint-box": "inpainting (box)",
    "outpaint": "outpainting (centre 60% kept)",
}
TASKS = tuple(TASK_NAMES)


@dataclass
class Task:
    """One inverse problem: ``key`` (e.g. ``"sr4"``), display ``name``, operator ``A`` on
    ``(B, 1, H, W)`` images and the simulated measurement ``y`` ``(1, 1, *A.range_shape)``."""

    key: str
    name: str
    A: LinearOperator
    y: torch.Tensor


def demo_image(size: int = 64, family: str = "shepp_logan") -> torch.Tensor:
    """Slice of the held-out phantom ``<family>_64_a`` (see ``DEMO_PHANTOMS``) rendered at
    ``size``²: ``(1, 1, size, size)`` float32 in [0, 1]."""

    if family not in DEMO_PHANTOMS:
        raise ValueError(f"unknown phantom family {family!r}; choose from {tuple(DEMO_PHANTOMS)}")
    offset, z = DEMO_PHANTOMS[family]
    seed = phantoms.BENCHMARK_SEEDS.start + offset
    return phantoms.generate_slices(family, (size, size), seed, z=[z])[None].float().clamp(0, 1)


def task_operators(shape, *, seed: int = 0, keys=TASKS) -> dict[str, LinearOperator]:
    """The forward operators of the tasks ``keys`` for ``(H, W)`` images (H, W multiples of 4).

    Blur: Gaussian σ = 2 px, circular boundary. Super-resolution: 4×4 block averages. Pixel
    inpainting: 30% of pixels observed (mask drawn from ``seed``). Box inpainting: a box of a third of
    the height and half the width hidden. Outpainting: only the centred 60% of each side observed.
    """
    h, w = (int(s) for s in shape)
    unknown = [k for k in keys if k not in TASK_NAMES]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; choose from {TASKS}")
    make = {
        "deblur": lambda: GaussianBlur((h, w), 2.0, boundary="circular"),
        "sr4": lambda: Downsample((h, w), 4),
        "inpaint-pixels": lambda: Mask(random_pixel_mask((h, w), 0.3, generator=torch.Generator().manual_seed(seed))),
        "inpaint-box": lambda: Mask(box_mask((h, w), [(h // 3, w // 4, h // 3, w // 2)])),
        "outpaint": lambda: Mask(center_mask((h, w), 0.6)),
    }
    return {k: make[k]() for k in keys}


def make_tasks(image: torch.Tensor, *, noise_sigma: float = 0.01, seed: int = 0, keys=TASKS) -> list[Task]:
    """Simulate ``y = A x + σ·n`` for each task (noise seeded by ``seed`` and the task's position,
    so adding or dropping a task does not change the others' noise: the index is that in ``TASKS``)."""
    tasks = []
    for key, A in task_operators(tuple(image.shape[-2:]), seed=seed, keys=keys).items():
        g = torch.Generator().manual_seed(seed + 1 + TASKS.index(key))
        tasks.append(Task(key, TASK_NAMES[key], A, simulate(A, image, GaussianNoise(noise_sigma), generator=g)))
    return tasks


def pseudo_inverse(A: LinearOperator, y: torch.Tensor, lam: float) -> torch.Tensor:
    """``Aᵀ (λI + AAᵀ)⁻¹ y``: the minimum-norm Tikhonov estimate (closed form where A knows its
    spectrum, conjugate gradient otherwise). ``y``: ``(B, C, *A.range_shape)`` -> ``(B, C, H, W)``."""
    return A.adjoint(A.gram_solve(y, sigma=lam**0.5, r=1.0))
