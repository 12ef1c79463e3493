"""Fixtures for the reconstruction tests: a small dense operator, CT projectors, a phantom.

The torch backend caches each geometry's system matrix process-wide (building one costs seconds),
so tests reuse a few geometries on purpose.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, available_backends
from tomodiff.operators import LinearOperator

#: Projector backends that run on this machine's CPU for 2D geometries.
CPU_BACKENDS_2D = [b for b in ("torch", "astra") if available_backends()[b]]


class Dense(LinearOperator):
    """``x ↦ M x`` for a matrix ``M`` (m × prod(domain_shape)); range ``(m,)``."""

    def __init__(self, M: torch.Tensor, domain_shape):
        super().__init__(domain_shape, (M.shape[0],))
        self.M = M

    def _forward(self, x):
        return x.reshape(x.shape[0], -1).to(self.M.dtype) @ self.M.T

    def _adjoint(self, y):
        return (y.to(self.M.dtype) @ self.M).reshape(y.shape[0], *self.domain_shape)


@pytest.fixture
def dense_op():
    """A non-negative, full-column-rank 60 × (6·8) operator in float64 (CT-like: sums of pixels)."""
    g = torch.Generator().manual_seed(0)
    M = torch.rand((60, 48), generator=g, dtype=torch.float64) ** 3
    return Dense(M, (6, 8))


@pytest.fixture
def dense_cls():
    return Dense


@pytest.fixture(params=CPU_BACKENDS_2D)
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def shepp64():
    """Shepp–Logan phantom resized to 64², float64 in [0, 1] (attenuation per world unit)."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize
    return torch.as_tensor(resize(shepp_logan_phantom(), (64, 64), anti_aliasing=True))


@pytest.fixture(scope="session")
def shepp32():
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize
    return torch.as_tensor(resize(shepp_logan_phantom(), (32, 32), anti_aliasing=True))


def full_angles(n, span=math.pi):
    return np.linspace(0.0, span, n, endpoint=False)


@pytest.fixture
def angles():
    """``angles(n, span=π)``: n equally spaced angles over ``span``, radians."""
    return full_angles


@pytest.fixture
def projector():
    """``projector(geometry, backend="auto")``: the project's CT operator."""
    return Projector
