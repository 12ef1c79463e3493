"""Rendering primitives on separable grids: ellipsoids, spheres, random Fourier fields.

A *grid* is a triple of 1D coordinate vectors ``(z, y, x)`` (float32 tensors) in the phantom's
normalised frame, where the object lives in the ball of radius 1 around the origin. Regular grids
come from :func:`grid`; a 2D slice is a grid whose ``z`` has one entry. Every primitive renders
onto such a grid, so the same parameters give a volume or any of its slices exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch

Grid = tuple  # (z, y, x) 1D float32 tensors


def axis_coords(n: int, scale: float) -> torch.Tensor:
    """Voxel-centre coordinates of an axis of ``n`` voxels, ``scale`` voxels per unit of length."""
    return (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) / scale


def grid(shape, z: float | list | None = None) -> Grid:
    """Grid of a ``(Z, Y, X)`` volume: the larger in-plane dimension (Y or X) spans [-1, 1], voxels are
    isotropic, so the object always fits the field of view; Z extends as far as the voxel count reaches.

    ``z`` overrides the z coordinates (a float or a list of floats, normalised units), which gives
    slices at arbitrary heights with the in-plane sampling of ``shape``.
    """
    Z, Y, X = (int(s) for s in shape)
    if min(Z, Y, X) < 1:
        raise ValueError(f"grid: shape must be positive, got {shape}")
    scale = max(Y, X) / 2.0
    zc = axis_coords(Z, scale) if z is None else torch.as_tensor(np.atleast_1d(z), dtype=torch.float32)
    return zc, axis_coords(Y, scale), axis_coords(X, scale)


def _shape(g: Grid):
    return tuple(len(a) for a in g)


def _window(axis: torch.Tensor, lo: float, hi: float) -> slice:
    """Index range of the (sorted) axis coordinates inside [lo, hi]."""
    i0 = int(torch.searchsorted(axis, torch.tensor(lo, dtype=axis.dtype)))
    i1 = int(torch.searchsorted(axis, torch.tensor(hi, dtype=axis.dtype), right=True))
    return slice(i0, i1)


def rotation(angles) -> np.ndarray:
    """Rotation matrix (3x3, acting on (x, y, z) column vectors) from z-y-z Euler angles (radians)."""
    a, b, c = angles

    def rz(t):
        return np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])

    def ry(t):
        return np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]])

    return rz(a) @ ry(b) @ rz(c)


def ellipsoid_mask(g: Grid, center, axes, rot: np.ndarray, soft: float = 0.0):
    """Indicator of an ellipsoid on the grid, restricted to its bounding box.

    ``center`` and ``axes`` are (x, y, z) in normalised units, ``rot`` maps the ellipsoid frame to
    the world frame. Returns ``(window, values)``: ``values`` (float32, in [0, 1]) covers the
    sub-block ``out[window]``; with ``soft > 0`` the edge is a ramp of that width (normalised units).
    """
    z, y, x = g
    axes = np.asarray(axes, dtype=np.float64)
    # half-extent of the bounding box along world axis i: sqrt(sum_j (R_ij a_j)^2)
    half = np.sqrt(((rot * axes[None, :]) ** 2).sum(axis=1)) + soft
    cx, cy, cz = center
    win = (_window(z, cz - half[2], cz + half[2]), _window(y, cy - half[1], cy + half[1]),
           _window(x, cx - half[0], cx + half[0]))
    dz, dy, dx = (z[win[0]] - cz)[:, None, None], (y[win[1]] - cy)[None, :, None], (x[win[2]] - cx)[None, None, :]
    R = torch.as_tensor(rot, dtype=torch.float32)
    q = 0.0
    for j in range(3):  # coordinate along the ellipsoid's own axis j: (R^T d)_j
        u = R[0, j] * dx + R[1, j] * dy + R[2, j] * dz
        q = q + (u / float(axes[j])) ** 2
    if soft > 0:
        # distance-like ramp: r = sqrt(q) is 1 on the surface; scale by the mean semi-axis
        r = torch.sqrt(q)
        val = torch.clamp((1.0 - r) * float(axes.mean()) / soft + 0.5, 0.0, 1.0)
    else:
        val = (q <= 1.0).to(torch.float32)
    return win, val


def paint_ellipsoid(out: torch.Tensor, g: Grid, value: float, center, axes, rot, mode: str = "set",
                    soft: float = 0.0) -> None:
    """Paint an ellipsoid into ``out`` (Z, Y, X): ``mode="set"`` overwrites, ``"add"`` adds ``value``."""
    win, m = ellipsoid_mask(g, center, axes, rot, soft)
    if m.numel() == 0:
        return
    block = out[win]
    if mode == "add":
        block += value * m
    else:
        block.mul_(1.0 - m).add_(value * m)


def fourier_field(g: Grid, rng: np.random.Generator, n_waves: int, f_lo: float, f_hi: float,
                  spectrum: float = 0.0) -> torch.Tensor:
    """Random field ``sum_k a_k cos(w_k·r + phi_k)``, normalised to unit variance (in expectation).

    Frequencies ``|w_k| / 2π`` are in cycles per normalised unit, log-uniform in [f_lo, f_hi],
    directions isotropic, amplitudes ∝ |f|^-spectrum. The sum is separable on the grid, so it
    costs one complex matmul of size ``(Z·Y, K) @ (K, X)``.
    """
    f = np.exp(rng.uniform(math.log(f_lo), math.log(f_hi), n_waves))
    d = rng.normal(size=(n_waves, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    w = 2 * math.pi * f[:, None] * d  # (K, 3) as (x, y, z)
    amp = f ** (-spectrum)
    amp = amp * math.sqrt(2.0 / float((amp ** 2).sum()))
    coef = torch.as_tensor(amp * np.exp(1j * rng.uniform(0, 2 * math.pi, n_waves)), dtype=torch.complex64)
    z, y, x = g
    W = torch.as_tensor(w, dtype=torch.float32)
    ez = torch.exp(1j * W[:, 2:3] * z[None, :])  # (K, Z)
    ey = torch.exp(1j * W[:, 1:2] * y[None, :])  # (K, Y)
    ex = torch.exp(1j * W[:, 0:1] * x[None, :])  # (K, X)
    a = coef[:, None, None] * ez[:, :, None] * ey[:, None, :]  # (K, Z, Y)
    K, Z, Y = a.shape
    field = (a.reshape(K, Z * Y).T @ ex).real  # (Z*Y, X)
    return field.reshape(Z, Y, len(x)).contiguous()


def cylinder_mask(g: Grid, radius: float, half_height: float, soft: float) -> torch.Tensor:
    """Soft-edged cylinder along z (values in [0, 1]) of the given radius and half-height."""
    z, y, x = g
    r = torch.sqrt(y[None, :, None] ** 2 + x[None, None, :] ** 2)
    radial = torch.clamp((radius - r) / soft + 0.5, 0.0, 1.0)
    axial = torch.clamp((half_height - z.abs()) / soft + 0.5, 0.0, 1.0)[:, None, None]
    return radial * axial


def smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = torch.clamp(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def empty(g: Grid) -> torch.Tensor:
    return torch.zeros(_shape(g), dtype=torch.float32)
