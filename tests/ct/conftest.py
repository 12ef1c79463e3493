"""Shared fixtures for the CT tests: an analytic phantom whose line integrals are known."""

import math

import pytest
import torch

# (amplitude, centre x, centre y, centre z, std), world units
_BLOBS = [(1.0, -6.0, 4.0, 1.5, 5.0), (0.7, 8.0, -3.0, -2.0, 3.5), (0.5, 0.0, -10.0, 0.0, 2.5)]


def _axis(n, voxel_size, flip=False):
    c = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * voxel_size
    return -c if flip else c


class GaussianBlobs:
    """Sum of isotropic Gaussians: sampled on any grid, with exact parallel-beam line integrals."""

    def volume(self, shape, voxel_size=1.0):
        """Sample at voxel centres; ``shape`` is ``(Y, X)`` or ``(Z, Y, X)`` (tomodiff's axes)."""
        x = _axis(shape[-1], voxel_size)
        y = _axis(shape[-2], voxel_size, flip=True)  # row 0 is the top (+y)
        z = _axis(shape[0], voxel_size) if len(shape) == 3 else torch.zeros(1, dtype=torch.float64)
        Z, Y, X = torch.meshgrid(z, y, x, indexing="ij")
        f = torch.zeros_like(X)
        for a, cx, cy, cz, s in _BLOBS:
            r2 = (X - cx) ** 2 + (Y - cy) ** 2 + (0 if len(shape) == 2 else (Z - cz) ** 2)
            f += a * torch.exp(-r2 / (2 * s * s))
        return f if len(shape) == 3 else f[0]

    def parallel_sinogram(self, geometry):
        """Exact line integrals for a 2D parallel-beam geometry, ``(A, U)``."""
        g = geometry
        th = torch.tensor(g.angles, dtype=torch.float64)[:, None]
        (n_u,) = g.det_shape
        u = (torch.arange(n_u, dtype=torch.float64) - (n_u - 1) / 2 - g.center_offset) * g.det_spacing
        out = torch.zeros(len(g.angles), n_u, dtype=torch.float64)
        for a, cx, cy, _, s in _BLOBS:
            uc = cx * torch.cos(th) + cy * torch.sin(th)  # detector coordinate of the centre
            out += a * math.sqrt(2 * math.pi) * s * torch.exp(-(u[None] - uc) ** 2 / (2 * s * s))
        return out


@pytest.fixture
def blobs():
    return GaussianBlobs()


def rel_err(a, b):
    """‖a − b‖ / ‖b‖."""
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture
def rel():
    return rel_err
