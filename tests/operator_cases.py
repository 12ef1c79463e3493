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


# ------------------------------------------------ CT projectors (torch and matrix_free backends)
# ASTRA's CPU projectors compute in float32, so they cannot meet the float64 CG / gradcheck
# tolerances of this suite; tests/ct/test_astra_backend.py runs their dot tests and autograd.
def _ct_case(name, make_geometry, backend="torch", **kw):
    def build():
        from tomodiff.ct import Projector
        return Projector(make_geometry(), backend=backend)
    return OperatorCase(f"ct-{name}-{backend}", build, **kw)


def _ct_angles(n, full=False):
    import math
    return [i * (2 if full else 1) * math.pi / n for i in range(n)]


def _ct_cases(backend):
    from tomodiff.ct import cone_beam, fan_beam, parallel_beam
    return [_ct_case(name, make, backend) for name, make in [
        ("parallel2d", lambda: parallel_beam((10, 8), _ct_angles(5))),
        ("parallel2d-offset", lambda: parallel_beam((8, 7), _ct_angles(4), det_shape=11,
                                                    det_spacing=1.3, center_offset=1.4)),
        ("fan", lambda: fan_beam((10, 8), _ct_angles(5, full=True), 14, 20.0, 10.0,
                                 voxel_size=0.9, center_offset=-0.6)),
        ("parallel3d", lambda: parallel_beam((2, 6, 5), _ct_angles(3))),
        ("parallel3d-row-interp", lambda: parallel_beam((3, 6, 5), _ct_angles(3), det_shape=(4, 8),
                                                        det_spacing=0.7, center_offset=0.3)),
        ("cone", lambda: cone_beam((3, 6, 5), _ct_angles(4, full=True), (4, 9), 12.0, 6.0,
                                   center_offset=0.5)),
    ]]


OPERATOR_CASES.extend(_ct_cases("torch"))
# the matrix-free projector: its adjoint is grid_sample's input gradient, exact to rounding
OPERATOR_CASES.extend(_ct_cases("matrix_free"))
