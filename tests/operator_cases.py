"""The registry of every operator the parametrised suite checks.

Each later layer (CT projectors, ...) appends its cases here, so that every operator gets the
dot test, the autograd check, composition and gradcheck for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from tomodiff.operators import (Downsample, GaussianBlur, LinearOperator, Mask, box_mask,
                                center_mask, random_pixel_mask)


@dataclass(frozen=True)
class OperatorCase:
    name: str
    build: Callable[[], LinearOperator]
    dot_tol: float = 1e-10  # float64 dot-test bound; exact transposes reach ~1e-16
    gradcheck: bool = True  # small enough for torch.autograd.gradcheck
    marks: tuple = field(default_factory=tuple)


def _seeded(seed=0):
    return torch.Generator().manual_seed(seed)


OPERATOR_CASES: list[OperatorCase] = [
    OperatorCase("blur-circular", lambda: GaussianBlur((12, 10), 1.3, boundary="circular")),
    OperatorCase("blur-circular-wide", lambda: GaussianBlur((8, 8), 4.0, boundary="circular")),
    OperatorCase("blur-reflect", lambda: GaussianBlur((12, 10), 1.3, boundary="reflect")),
    OperatorCase("blur-zero", lambda: GaussianBlur((12, 10), 1.3, boundary="zero")),
    OperatorCase("downsample-2", lambda: Downsample((12, 10), 2)),
    OperatorCase("downsample-4", lambda: Downsample((16, 8), 4)),
    OperatorCase("mask-random", lambda: Mask(random_pixel_mask((12, 10), 0.4, generator=_seeded()))),
    OperatorCase("mask-box", lambda: Mask(box_mask((12, 10), [(2, 3, 4, 5)]))),
    OperatorCase("mask-center", lambda: Mask(center_mask((12, 10), 0.5))),
    OperatorCase("mask-soft", lambda: Mask(torch.rand((12, 10), generator=_seeded(1)))),
    OperatorCase("composed-blur-downsample",
                 lambda: Downsample((12, 10), 2) @ GaussianBlur((12, 10), 1.0, boundary="reflect")),
    OperatorCase("scaled-sum", lambda: 2.0 * GaussianBlur((12, 10), 1.0) - Mask(center_mask((12, 10), 0.5))),
    OperatorCase("adjoint-of-downsample", lambda: Downsample((12, 10), 2).T),
]
