"""DDS-style data consistency (Chung, Lee & Ye, "Decomposed diffusion sampler", ICLR 2024).

No backpropagation through the denoiser: ``x̂0`` is replaced by a few conjugate-gradient
iterations on the proximal problem

    min_x  ‖y − A x‖² / (2σ_y²) + ‖x − x̂0‖² / (2 r_t²),
    i.e.  (AᵀA + λ_t I) x = Aᵀ y + λ_t x̂0,   λ_t = σ_y² / r_t²,

started at ``x̂0`` (DDS's Krylov argument: a few iterations stay near the data manifold). With
``σ_y = 0`` it is DDS's ``AᵀA x = Aᵀ y``. Fully converged, it is the mean of ``N(x̂0, r_t² I)``
conditioned on ``y``: for an isotropic Gaussian prior the same correction as ΠGDM.

Notation map: ``denoised`` → ``x̂0``; ``cg_iters`` → ``M`` (DDS's number of CG steps);
``r2`` → ``r_t² = data_var·σ_t²/(data_var + σ_t²)``; ``lam`` → ``λ_t``.
"""

from __future__ import annotations

import torch

from tomodiff.operators.solvers import conjugate_gradient

from ._common import Guidance, StepContext, check_measurement, check_sigma_y, match_batch

__all__ = ["dds", "DDS"]


class DDS(Guidance):
    """The DDS data-consistency step; build it with :func:`dds`."""

    needs_grad = False

    def __init__(self, A, y, sigma_y, *, cg_iters=5, data_var=1.0):
        if not hasattr(A, "adjoint"):
            raise TypeError(f"dds: A must be a LinearOperator, got {type(A).__name__}")
        self.A, self.y = A, check_measurement(A, y, "dds")
        self.sigma_y = check_sigma_y(sigma_y, "dds")
        if int(cg_iters) != cg_iters or cg_iters < 1:
            raise ValueError(f"dds: cg_iters must be a positive integer, got {cg_iters}")
        if not data_var > 0:
            raise ValueError(f"dds: data_var must be > 0, got {data_var}")
        self.cg_iters, self.data_var = int(cg_iters), float(data_var)

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        x0 = ctx.denoised.detach()
        y = match_batch(self.y, x0, "dds")
        # 1. proximal weight λ_t = σ_y² / r_t²
        r2 = self.data_var * ctx.sigma**2 / (self.data_var + ctx.sigma**2)
        lam = self.sigma_y**2 / r2 if r2 > 0 else 0.0
        A = self.A
        # 2. M CG iterations on (AᵀA + λI) x = Aᵀy + λ x̂0 from x̂0; tol=0 runs exactly M per item,
        #    so an item's result does not depend on the rest of the batch
        x = conjugate_gradient(lambda v: A.adjoint(A.forward(v)) + lam * v, A.adjoint(y) + lam * x0,
                               x0=x0, tol=0.0, max_iter=self.cg_iters)
        return x - x0

    def __repr__(self):
        return f"dds({self.A!r}, sigma_y={self.sigma_y!r}, cg_iters={self.cg_iters})"


def dds(A, y: torch.Tensor, sigma_y: float, *, cg_iters: int = 5, data_var: float = 1.0) -> DDS:
    """DDS data consistency: ``cg_iters`` CG steps on ``x̂0`` (no VJP), ``r_t²`` from ``data_var``."""
    return DDS(A, y, sigma_y, cg_iters=cg_iters, data_var=data_var)
