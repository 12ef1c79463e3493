"""DDS-style data consistency (Chung, Lee & Ye, "Decomposed diffusion sampler", ICLR 2024).

No backpropagation through the denoiser: ``x̂0`` is replaced by a few conjugate-gradient
iterations, started at ``x̂0`` (DDS's Krylov argument: a few iterations stay near the data
manifold), on one of two problems:

- ``prox=True`` (default): the proximal problem
  ``min_x ‖y − A x‖² / (2σ_y²) + ‖x − x̂0‖² / (2 r_t²)``, i.e.
  ``(AᵀA + λ_t I) x = Aᵀ y + λ_t x̂0`` with ``λ_t = σ_y² / r_t²``. Fully converged, it is the mean
  of ``N(x̂0, r_t² I)`` conditioned on ``y``: for an isotropic Gaussian prior the same correction
  as ΠGDM. With ``σ_y = 0`` it is the plain least-squares problem below.
- ``prox=False``: DDS as its paper runs it, ``AᵀA x = Aᵀ y``, regularised only by stopping
  after ``cg_iters`` iterations from ``x̂0``.

For volumes ``(N, C, Z, Y, X)``, ``tv_z=(rho, lam)`` adds TV along Z by ADMM, one ADMM iteration
per sampling step with the splitting variables kept across steps (DiffusionMBIR / DDS 3D):

    x ← CG on (AᵀA + λ_t I + ρ D_zᵀD_z) x = Aᵀy + λ_t x̂0 + ρ D_zᵀ(z − u)    (from x̂0)
    z ← soft(D_z x + u, lam/ρ);   u ← u + D_z x − z

``D_z`` the forward difference along Z; ``rho``, ``lam`` in the units of ``‖Ax − y‖²/2`` (the
paper's ρ 10, λ 0.04 are for its own operator scaling; ours are chosen by the sweep).

Notation map: ``denoised`` → ``x̂0``; ``cg_iters`` → ``M`` (DDS's number of CG steps);
``r2`` → ``r_t² = data_var·σ_t²/(data_var + σ_t²)``; ``lam_t`` → ``λ_t``; ``rho``, ``lam`` → the
ADMM penalty and TV weight; ``z``, ``u`` → the ADMM split variable and scaled dual.
"""

from __future__ import annotations

import torch

from tomodiff.operators.solvers import conjugate_gradient

from ._common import Guidance, StepContext, check_measurement, check_sigma_y, match_batch

__all__ = ["dds", "DDS", "diff_z", "diff_z_adjoint"]


def diff_z(x: torch.Tensor) -> torch.Tensor:
    """Forward difference along Z of ``(N, C, Z, Y, X)``: ``(N, C, Z−1, Y, X)``."""
    return x[:, :, 1:] - x[:, :, :-1]


def diff_z_adjoint(d: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`diff_z`: ``(N, C, Z−1, Y, X)`` → ``(N, C, Z, Y, X)``."""
    out = d.new_zeros((*d.shape[:2], d.shape[2] + 1, *d.shape[3:]))
    out[:, :, :-1] -= d
    out[:, :, 1:] += d
    return out


class DDS(Guidance):
    """The DDS data-consistency step; build it with :func:`dds`."""

    needs_grad = False

    def __init__(self, A, y, sigma_y, *, cg_iters=5, data_var=1.0, prox=True, tv_z=None):
        if not hasattr(A, "adjoint"):
            raise TypeError(f"dds: A must be a LinearOperator, got {type(A).__name__}")
        self.A, self.y = A, check_measurement(A, y, "dds")
        self.sigma_y = check_sigma_y(sigma_y, "dds")
        if int(cg_iters) != cg_iters or cg_iters < 1:
            raise ValueError(f"dds: cg_iters must be a positive integer, got {cg_iters}")
        if not data_var > 0:
            raise ValueError(f"dds: data_var must be > 0, got {data_var}")
        if tv_z is not None:
            if len(tv_z) != 2 or not (tv_z[0] > 0 and tv_z[1] >= 0):
                raise ValueError(f"dds: tv_z must be (rho > 0, lam >= 0), got {tv_z!r}")
            tv_z = (float(tv_z[0]), float(tv_z[1]))
        self.cg_iters, self.data_var, self.prox, self.tv_z = int(cg_iters), float(data_var), bool(prox), tv_z
        self._z = self._u = None  # ADMM state, kept across the steps of one run

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        x0 = ctx.denoised.detach()
        y = match_batch(self.y, x0, "dds")
        # 1. proximal weight λ_t = σ_y² / r_t² (0 for the paper's plain least squares)
        r2 = self.data_var * ctx.sigma**2 / (self.data_var + ctx.sigma**2)
        lam = self.sigma_y**2 / r2 if (self.prox and r2 > 0) else 0.0
        A = self.A
        volume = x0.dim() == 5 and x0.shape[2] > 1
        if self.tv_z is None or not volume:
            # 2. M CG iterations on (AᵀA + λI) x = Aᵀy + λ x̂0 from x̂0; tol=0 runs exactly M per item,
            #    so an item's result does not depend on the rest of the batch
            x = conjugate_gradient(lambda v: A.adjoint(A.forward(v)) + lam * v, A.adjoint(y) + lam * x0,
                                   x0=x0, tol=0.0, max_iter=self.cg_iters)
            return x - x0
        rho, tv_lam = self.tv_z
        if self._z is None or self._z.shape != diff_z(x0).shape:
            self._z, self._u = diff_z(x0), torch.zeros_like(diff_z(x0))
        # 2'. ADMM x-update: M CG iterations from x̂0 with the TV-along-Z penalty ρ‖D_z x − z + u‖²/2
        rhs = A.adjoint(y) + lam * x0 + rho * diff_z_adjoint(self._z - self._u)
        x = conjugate_gradient(lambda v: A.adjoint(A.forward(v)) + lam * v + rho * diff_z_adjoint(diff_z(v)),
                               rhs, x0=x0, tol=0.0, max_iter=self.cg_iters)
        # 3. z-update (soft threshold) and dual update
        dz = diff_z(x)
        w = dz + self._u
        self._z = torch.sign(w) * (w.abs() - tv_lam / rho).clamp_min(0)
        self._u = self._u + dz - self._z
        return x - x0

    def __repr__(self):
        return (f"dds({self.A!r}, sigma_y={self.sigma_y!r}, cg_iters={self.cg_iters}, prox={self.prox}, "
                f"tv_z={self.tv_z!r})")


def dds(A, y: torch.Tensor, sigma_y: float, *, cg_iters: int = 5, data_var: float = 1.0, prox: bool = True,
        tv_z: tuple[float, float] | None = None) -> DDS:
    """DDS data consistency: ``cg_iters`` CG steps on ``x̂0`` (no VJP), ``r_t²`` from ``data_var``.

    ``prox``: solve the proximal problem (True) or the paper's plain least squares (False);
    ``tv_z``: ``(rho, lam)`` for TV along Z by one ADMM iteration per step (volumes only). Build a
    new guidance for every run: the ADMM variables live in it.
    """
    return DDS(A, y, sigma_y, cg_iters=cg_iters, data_var=data_var, prox=prox, tv_z=tv_z)
