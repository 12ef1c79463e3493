"""Priors with exact denoisers and, for linear operators, exact posteriors.

These serve the sampler tests and let users sanity-check a set-up: a sampler run on one of
them can be compared with the closed-form answer.

An *item* is one ``(C, *spatial)`` tensor (what a ``(B, C, *spatial)`` batch holds ``B`` of);
``d = C·prod(spatial)`` is its number of entries. Operators act on ``(B, C, *domain_shape)``,
so ``item_shape = (C, *A.domain_shape)``.

* :class:`GaussianPrior` — ``x0 ~ N(μ, diag(v))``, isotropic when ``v`` is a scalar.
  Denoiser ``E[x0 | x0 + σn = x] = μ + v/(v + σ²)·(x − μ)``.
* :class:`GaussianMixturePrior` — ``Σ_k π_k N(μ_k, diag(v_k))``.
* :meth:`GaussianPrior.posterior` — for ``y = A x0 + σ_y z`` the posterior ``N(m, P)`` with
  ``S = A Σ Aᵀ + σ_y² I``, ``m = μ + Σ Aᵀ S⁻¹ (y − A μ)``, ``P = Σ − Σ Aᵀ S⁻¹ A Σ``:
  dense matrices for small problems, conjugate gradient in measurement space for larger ones.
* :meth:`GaussianMixturePrior.posterior_mean` — the same per component, weighted by each
  component's evidence ``π_k N(y; A μ_k, S_k)`` (dense; enumerates the components).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tomodiff.operators.solvers import conjugate_gradient

from .adapters import batch_sigma

__all__ = ["GaussianPrior", "GaussianMixturePrior", "GaussianPosterior", "dense_matrix"]


def _check_item(x: torch.Tensor, item_shape, who: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[1:]) != tuple(item_shape):
        raise ValueError(f"{who}: x must have shape (B, {', '.join(map(str, item_shape))}), got {tuple(x.shape)}")


def _gen_randn(shape, generator, dtype):
    return torch.randn(shape, generator=generator, dtype=dtype)


def dense_matrix(A, item_shape, *, dtype=torch.float64) -> torch.Tensor:
    """The ``(m, d)`` matrix of a linear operator acting on one item of shape ``item_shape = (C, *domain)``.

    Column ``j`` is ``A`` applied to the ``j``-th unit item (one batched call with ``B = d``);
    ``m = C·prod(range_shape)``. Only for small problems (``d`` up to a few thousand).
    """
    d = math.prod(item_shape)
    eye = torch.eye(d, dtype=dtype).reshape(d, *item_shape)
    return A.forward(eye).reshape(d, -1).T.contiguous()


def _solve_psd(S: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``S⁻¹ rhs`` for symmetric PSD ``S``; pseudo-inverse when singular (σ_y = 0 with rank-deficient A)."""
    try:
        L, info = torch.linalg.cholesky_ex(S)
        if int(info) == 0:
            return torch.cholesky_solve(rhs, L)
    except RuntimeError:
        pass
    return torch.linalg.pinv(S, hermitian=True) @ rhs


@dataclass(frozen=True)
class GaussianPosterior:
    """Posterior ``N(mean, cov)`` of a Gaussian prior under a linear-Gaussian measurement.

    mean: ``(B, *item_shape)``, one per measurement item. variance: ``item_shape``, per entry
    (the posterior covariance does not depend on ``y``). cov: ``(d, d)`` dense, or ``None`` when
    computed by CG (then use :meth:`cov_apply`).
    """

    mean: torch.Tensor
    variance: torch.Tensor
    cov: torch.Tensor | None
    _cov_apply: object = None

    def cov_apply(self, v: torch.Tensor) -> torch.Tensor:
        """``P v`` for ``v`` of shape ``(N, *item_shape)``."""
        if self.cov is not None:
            return (v.reshape(v.shape[0], -1) @ self.cov.T).reshape(v.shape)
        return self._cov_apply(v)


class GaussianPrior:
    """``x0 ~ N(mean, diag(var))`` on items of shape ``item_shape = (C, *spatial)``.

    ``mean``: a float or a tensor broadcastable to ``item_shape``; ``var``: a positive float
    (isotropic) or a tensor broadcastable to ``item_shape`` (diagonal). Calling the prior is its
    exact denoiser ``D(x, sigma) = mean + var/(var + σ²)·(x − mean)``.
    """

    def __init__(self, item_shape, mean=0.0, var=1.0, *, dtype=torch.float64):
        self.item_shape = tuple(int(s) for s in item_shape)
        self.mean = torch.broadcast_to(torch.as_tensor(mean, dtype=dtype), self.item_shape).clone()
        var_t = torch.as_tensor(var, dtype=dtype)
        if not torch.isfinite(var_t).all() or (var_t <= 0).any():
            raise ValueError("GaussianPrior: var must be finite and > 0")
        self.isotropic = var_t.numel() == 1
        self.var = torch.broadcast_to(var_t, self.item_shape).clone()

    @property
    def dim(self) -> int:
        return math.prod(self.item_shape)

    def _like(self, t, x):
        return t.to(dtype=x.dtype, device=x.device)

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Exact ``E[x0 | x]``; ``x`` of shape ``(B, *item_shape)``, ``sigma`` per item."""
        _check_item(x, self.item_shape, "GaussianPrior")
        s2 = batch_sigma(sigma, x) ** 2
        m, v = self._like(self.mean, x), self._like(self.var, x)
        return m + v / (v + s2) * (x - m)

    def posterior_variance_given_xt(self, sigma: float) -> torch.Tensor:
        """``Var[x0 | x_t]`` per entry, ``v σ² / (v + σ²)`` (ΠGDM's ``r_t²`` is exactly this when isotropic)."""
        return self.var * sigma**2 / (self.var + sigma**2)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws, shape ``(n, *item_shape)``."""
        return self.mean + self.var.sqrt() * _gen_randn((n, *self.item_shape), generator, self.mean.dtype)

    # ------------------------------------------------------------------ posterior
    def posterior(self, A, y: torch.Tensor, sigma_y: float, *, method: str = "auto",
                  cg_tol: float = 1e-10, cg_max_iter: int = 1000, variance: bool = True) -> GaussianPosterior:
        """Exact posterior for ``y = A x0 + sigma_y·z``, ``y`` of shape ``(B, C, *A.range_shape)``.

        ``method``: ``"dense"`` (materialises ``A``, ``d × d`` covariance), ``"cg"`` (conjugate
        gradient in measurement space; per-entry variance by ``d`` batched solves unless
        ``variance=False``), ``"auto"``: dense when ``d <= 4096``.
        """
        if method == "auto":
            method = "dense" if self.dim <= 4096 else "cg"
        if method not in ("dense", "cg"):
            raise ValueError(f"method must be 'auto', 'dense' or 'cg', got {method!r}")
        if not sigma_y >= 0:
            raise ValueError(f"sigma_y must be >= 0, got {sigma_y}")
        C = self.item_shape[0]
        if tuple(y.shape[1:]) != (C, *A.range_shape):
            raise ValueError(f"y must have shape (B, {C}, {', '.join(map(str, A.range_shape))}), got {tuple(y.shape)}")
        y = y.to(self.mean.dtype)
        mu, var = self.mean, self.var
        if method == "dense":
            M = dense_matrix(A, self.item_shape, dtype=mu.dtype)          # (m, d)
            v = var.reshape(-1)
            S = (M * v) @ M.T + sigma_y**2 * torch.eye(M.shape[0], dtype=mu.dtype)
            resid = y.reshape(y.shape[0], -1) - (M @ mu.reshape(-1))      # (B, m)
            SinvAS = _solve_psd(S, M * v)                                 # S⁻¹ A Σ, (m, d)
            mean = mu.reshape(-1) + resid @ SinvAS                        # Σ Aᵀ S⁻¹ r, S symmetric
            cov = torch.diag(v) - (M * v).T @ SinvAS
            cov = 0.5 * (cov + cov.T)
            return GaussianPosterior(mean.reshape(y.shape[0], *self.item_shape),
                                     cov.diagonal().reshape(self.item_shape), cov)

        def S_apply(z):
            return A.forward(var * A.adjoint(z)) + sigma_y**2 * z

        def solve(r):
            return conjugate_gradient(S_apply, r, tol=cg_tol, max_iter=cg_max_iter)

        mean = mu + var * A.adjoint(solve(y - A.forward(mu.expand(y.shape[0], *self.item_shape))))

        def cov_apply(w):
            return var * w - var * A.adjoint(solve(A.forward(var * w)))

        diag = None
        if variance:
            d, chunk = self.dim, 256
            out = []
            for start in range(0, d, chunk):
                idx = torch.arange(start, min(d, start + chunk))
                e = torch.zeros(len(idx), d, dtype=mu.dtype)
                e[torch.arange(len(idx)), idx] = 1.0
                out.append((cov_apply(e.reshape(-1, *self.item_shape)).reshape(len(idx), d) * e).sum(1))
            diag = torch.cat(out).reshape(self.item_shape)
        return GaussianPosterior(mean, diag, None, cov_apply)


class GaussianMixturePrior:
    """``x0 ~ Σ_k π_k N(μ_k, diag(v_k))`` on items of shape ``item_shape``.

    ``weights``: ``(K,)`` positive (normalised here); ``means``: ``(K, *item_shape)``;
    ``var``: ``(K,)`` (isotropic components) or ``(K, *item_shape)`` (diagonal). Calling the prior
    is its exact denoiser: responsibilities ``w_k(x) ∝ π_k N(x; μ_k, diag(v_k + σ²))`` and
    ``D(x, σ) = Σ_k w_k(x)·(μ_k + v_k/(v_k + σ²)·(x − μ_k))``.
    """

    def __init__(self, weights, means, var, *, dtype=torch.float64):
        w = torch.as_tensor(weights, dtype=dtype)
        means = torch.as_tensor(means, dtype=dtype)
        if w.dim() != 1 or means.shape[0] != w.shape[0] or means.dim() < 2:
            raise ValueError(f"weights must be (K,) and means (K, *item_shape), got {tuple(w.shape)} and "
                             f"{tuple(means.shape)}")
        if not torch.isfinite(w).all() or (w <= 0).any():
            raise ValueError("GaussianMixturePrior: weights must be finite and > 0")
        self.item_shape = tuple(means.shape[1:])
        K = w.shape[0]
        v = torch.as_tensor(var, dtype=dtype)
        if v.dim() == 1:
            v = v.reshape(K, *([1] * len(self.item_shape)))
        v = torch.broadcast_to(v, means.shape).clone()
        if not torch.isfinite(v).all() or (v <= 0).any():
            raise ValueError("GaussianMixturePrior: var must be finite and > 0")
        self.weights, self.means, self.var = w / w.sum(), means.clone(), v

    @property
    def dim(self) -> int:
        return math.prod(self.item_shape)

    @property
    def mean(self) -> torch.Tensor:
        """Mixture mean, ``item_shape``."""
        return torch.einsum("k,k...->...", self.weights, self.means)

    @property
    def variance(self) -> torch.Tensor:
        """Mixture variance per entry, ``item_shape``."""
        second = torch.einsum("k,k...->...", self.weights, self.var + self.means**2)
        return second - self.mean**2

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        _check_item(x, self.item_shape, "GaussianMixturePrior")
        B, K = x.shape[0], self.weights.shape[0]
        s2 = batch_sigma(sigma, x).reshape(B, 1, 1) ** 2                 # (B, 1, 1)
        xf = x.reshape(B, 1, -1)                                          # (B, 1, d)
        mu = self.means.to(x).reshape(1, K, -1)
        v = self.var.to(x).reshape(1, K, -1)
        tot = v + s2                                                      # (B, K, d)
        diff = xf - mu
        # 1. log π_k + log N(x; μ_k, diag(v_k + σ²)) up to a constant shared by all k
        logp = self.weights.to(x).log() - 0.5 * ((diff**2 / tot) + tot.log()).sum(-1)
        resp = torch.softmax(logp, dim=1).unsqueeze(-1)                   # (B, K, 1)
        # 2. per-component posterior mean, mixed by responsibility
        comp = mu + v / tot * diff
        return (resp * comp).sum(1).reshape(x.shape)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws, shape ``(n, *item_shape)``."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = _gen_randn((n, *self.item_shape), generator, self.means.dtype)
        return self.means[k] + self.var[k].sqrt() * z

    def posterior_mean(self, A, y: torch.Tensor, sigma_y: float, *, return_weights: bool = False):
        """Exact ``E[x0 | y]`` for ``y = A x0 + sigma_y·z`` by enumerating the components (dense).

        Returns ``(B, *item_shape)``; with ``return_weights`` also the posterior component
        probabilities ``(B, K)``. Needs ``sigma_y > 0`` or a full-rank ``A Σ_k Aᵀ``.
        """
        if not sigma_y >= 0:
            raise ValueError(f"sigma_y must be >= 0, got {sigma_y}")
        C = self.item_shape[0]
        if tuple(y.shape[1:]) != (C, *A.range_shape):
            raise ValueError(f"y must have shape (B, {C}, {', '.join(map(str, A.range_shape))}), got {tuple(y.shape)}")
        dt = self.means.dtype
        M = dense_matrix(A, self.item_shape, dtype=dt)                     # (m, d)
        yf = y.to(dt).reshape(y.shape[0], -1)                             # (B, m)
        eye = torch.eye(M.shape[0], dtype=dt)
        log_ev, means = [], []
        for k in range(self.weights.shape[0]):
            v, mu = self.var[k].reshape(-1), self.means[k].reshape(-1)
            S = (M * v) @ M.T + sigma_y**2 * eye
            L = torch.linalg.cholesky(S)
            r = yf - M @ mu                                               # (B, m)
            Sinv_r = torch.cholesky_solve(r.T, L).T                       # (B, m)
            # 1. evidence log N(y; A μ_k, S_k) (constant dropped), plus log π_k
            logdet = 2 * L.diagonal().log().sum()
            log_ev.append(self.weights[k].log() - 0.5 * (r * Sinv_r).sum(-1) - 0.5 * logdet)
            # 2. component posterior mean μ_k + Σ_k Aᵀ S_k⁻¹ (y − A μ_k)
            means.append(mu + v * (Sinv_r @ M))
        w = torch.softmax(torch.stack(log_ev, 1), dim=1)                  # (B, K)
        mean = torch.einsum("bk,kbd->bd", w, torch.stack(means)).reshape(y.shape[0], *self.item_shape)
        return (mean, w) if return_weights else mean
