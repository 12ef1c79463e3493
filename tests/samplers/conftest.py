"""Shared helpers for the sampler tests: a dense-matrix operator and Monte-Carlo tolerances.

The finite-step law of the samplers for a Gaussian target is derived here from first principles
(not by calling the samplers): for a target ``N(m, P)`` and an exact conditional denoiser,
each eigenmode of ``P`` with variance ``v`` evolves as a scalar linear-Gaussian recursion.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from scipy import stats

from tomodiff.operators import LinearOperator


class MatrixOperator(LinearOperator):
    """A dense ``(m, H·W)`` matrix acting on ``(H, W)`` images: a stand-in for a small CT projector."""

    def __init__(self, matrix: torch.Tensor, image_shape):
        super().__init__(image_shape, (matrix.shape[0],))
        self.matrix = matrix

    def _forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.matrix.T.to(x)

    def _adjoint(self, y):
        return (y @ self.matrix.to(y)).reshape(y.shape[0], *self.domain_shape)


def ct_like(image_shape=(8, 8), n_rows=40, seed=0):
    """Random nonnegative 'ray' matrix: each row sums a random band of pixels (full column rank not needed)."""
    g = torch.Generator().manual_seed(seed)
    d = math.prod(image_shape)
    M = (torch.rand(n_rows, d, generator=g, dtype=torch.float64) < 0.25).double() * 0.5
    return MatrixOperator(M, image_shape)


def step_law(v: torch.Tensor, sigmas, *, kind: str, eta: float = 0.0, start_var: float | None = None):
    """Exact output variance of ddpm / ddim(η) for a scalar Gaussian target of variance ``v`` (tensor).

    With ``x̂0 = m + v/(v + σ_t²)(x_t − m)`` (the exact conditional mean) a step is
    ``x_s − m = a (x_t − m) + σ_up z``; ``a = (v + σ_down σ_t)/(v + σ_t²)``, ``σ_down = sqrt(σ_s² − σ_up²)``,
    ``σ_up = η σ_s sqrt(1 − σ_s²/σ_t²)`` (η = 1 for ddpm). Returns ``(variance, mean_factor)``:
    the law's variance and the factor multiplying the start's offset from ``m``.
    """
    var = torch.full_like(v, float(sigmas[0]) ** 2 if start_var is None else start_var)
    factor = torch.ones_like(v)
    if kind == "ddpm":
        eta = 1.0
    for t, s in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        up = min(s, eta * s * math.sqrt(max(0.0, 1 - (s / t) ** 2)))
        down = math.sqrt(max(0.0, s * s - up * up))
        a = (v + down * t) / (v + t * t)
        var = a * a * var + up * up
        factor = factor * a
    return var, factor


def law_covariance(P: torch.Tensor, sigmas, *, kind: str, eta: float = 0.0):
    """The sampler's exact output covariance for target covariance ``P`` (dense ``(d, d)``)."""
    evals, V = torch.linalg.eigh(P)
    evals = evals.clamp_min(0)
    var, _ = step_law(evals, sigmas, kind=kind, eta=eta)
    return (V * var) @ V.T


def mc_tolerances(cov: torch.Tensor, n: int, alpha: float = 1e-3):
    """Tolerances from the sample count for Gaussian samples of covariance ``cov`` (``d × d``).

    mean: the ``1 − alpha`` quantile of ``χ²_d`` for ``n (m̂ − m)ᵀ cov⁻¹ (m̂ − m)``.
    var_pixel: per-pixel bound on ``ŝ²/λ − 1`` (Bonferroni over ``d`` pixels, ``Var = 2/(n−1)``).
    var_avg: bound on the pixel-average of ``ŝ²/λ − 1``, whose variance is
    ``2/(n−1)·mean_ij ρ_ij²`` (``ρ`` the correlation matrix), at the same ``alpha``.
    """
    d = cov.shape[0]
    sd = cov.diagonal().sqrt()
    rho = cov / sd[:, None] / sd[None, :]
    z_pix = stats.norm.ppf(1 - alpha / (2 * d))
    z_avg = stats.norm.ppf(1 - alpha / 2)
    return SimpleNamespace(
        mean=float(stats.chi2.ppf(1 - alpha, d)),
        var_pixel=float(z_pix * math.sqrt(2 / (n - 1))),
        var_avg=float(z_avg * math.sqrt(2 / (n - 1) * float((rho**2).mean()))),
    )


def moment_errors(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor):
    """Observed statistics matching :func:`mc_tolerances` for ``samples`` ``(n, d)``."""
    n = samples.shape[0]
    diff = samples.mean(0) - mean
    maha = float(n * diff @ torch.linalg.solve(cov, diff))
    rel = samples.var(0, correction=1) / cov.diagonal() - 1
    return SimpleNamespace(mean=maha, var_pixel=float(rel.abs().max()), var_avg=float(rel.mean().abs()))


@pytest.fixture
def helpers():
    return SimpleNamespace(MatrixOperator=MatrixOperator, ct_like=ct_like, step_law=step_law,
                           law_covariance=law_covariance, mc_tolerances=mc_tolerances,
                           moment_errors=moment_errors)


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: with 2 threads on a loaded 2-core machine, OpenMP synchronisation
    dominates (measured 50x slower per elementwise op); run single-threaded, restore afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
