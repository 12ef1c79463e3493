"""DiffPIR-style half-quadratic splitting (Zhu et al., CVPR 2023 workshops) with a CG proximal data step.

Each step splits the posterior into a prior step (the denoiser, ``x̂0 = D(x_t, σ_t)``) and a data
step, the proximal problem solved by conjugate gradient to a tolerance:

    x̂0' = argmin_x  ‖y − A x‖² / (2σ_y²) + λ ‖x − x̂0‖² / (2 r_t²)
         ⇔  (AᵀA + ρ_t I) x = Aᵀ y + ρ_t x̂0,   ρ_t = λ σ_y² / r_t²,

and the sampler (DDIM(η) here, DiffPIR's ζ playing η's part) continues from ``x̂0'``. DiffPIR's
``ρ_t = λ σ_y²/σ̄_t²`` uses the noise level of ``x_t``; we use ``r_t² = data_var·σ_t²/(data_var + σ_t²)``
(equal for ``σ_t² ≪ data_var``). With ``λ = 1`` the data step is the exact mean of
``N(x̂0, r_t² I)`` conditioned on ``y``: for an isotropic Gaussian prior this is the exact
conditional posterior mean ``E[x0 | x_t, y]``, so :func:`~tomodiff.samplers.ddpm` with it samples
the exact posterior (tested in closed form). ``λ > 1`` trusts the prior more, ``λ < 1`` the data.

Noiseless path (documented): with ``σ_y = 0``, ``ρ_t = 0`` and the data step is the least-squares
solution nearest ``x̂0`` (CG on ``AᵀA x = Aᵀy`` from ``x̂0``: a projection onto ``{A x = y}`` when
``y`` is in the range of ``A``).

CG that does not reach ``cg_tol`` within ``cg_max_iter`` leaves its last (finite) iterate and warns
once per run with the relative residual reached.

Notation map: ``denoised`` → ``x̂0``; ``lam`` → λ; ``rho`` → ``ρ_t``; ``r2`` → ``r_t²``.
"""

from __future__ import annotations

import math
import warnings

import torch

from tomodiff.operators.solvers import conjugate_gradient

from ._common import Guidance, StepContext, check_measurement, check_sigma_y, match_batch

__all__ = ["diffpir", "DiffPIR", "CGWarning"]


class CGWarning(RuntimeWarning):
    """Conjugate gradient stopped at its iteration limit before reaching its tolerance."""


class DiffPIR(Guidance):
    """The HQS proximal data step; build it with :func:`diffpir`."""

    needs_grad = False

    def __init__(self, A, y, sigma_y, *, lam=1.0, data_var=1.0, cg_tol=1e-4, cg_max_iter=50):
        if not hasattr(A, "adjoint"):
            raise TypeError(f"diffpir: A must be a LinearOperator, got {type(A).__name__}")
        self.A, self.y = A, check_measurement(A, y, "diffpir")
        self.sigma_y = check_sigma_y(sigma_y, "diffpir")
        if not (math.isfinite(lam) and lam > 0):
            raise ValueError(f"diffpir: lam must be finite and > 0, got {lam}")
        if not data_var > 0:
            raise ValueError(f"diffpir: data_var must be > 0, got {data_var}")
        if not cg_tol > 0 or int(cg_max_iter) != cg_max_iter or cg_max_iter < 1:
            raise ValueError(f"diffpir: need cg_tol > 0 and an integer cg_max_iter >= 1, got {cg_tol}, {cg_max_iter}")
        self.lam, self.data_var = float(lam), float(data_var)
        self.cg_tol, self.cg_max_iter = float(cg_tol), int(cg_max_iter)
        self.worst_residual = 0.0  # largest relative CG residual left at the iteration limit
        self._warned = False

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        x0 = ctx.denoised.detach()
        y = match_batch(self.y, x0, "diffpir")
        A = self.A
        # 1. ρ_t = λ σ_y² / r_t² (0 on the noiseless path)
        r2 = self.data_var * ctx.sigma**2 / (self.data_var + ctx.sigma**2)
        rho = self.lam * self.sigma_y**2 / r2 if r2 > 0 else 0.0
        if not math.isfinite(rho):
            return torch.zeros_like(x0)  # r_t → 0: the data step keeps x̂0
        # 2. (AᵀA + ρ_t I) x = Aᵀy + ρ_t x̂0 by CG from x̂0, to cg_tol
        x, info = conjugate_gradient(lambda v: A.adjoint(A.forward(v)) + rho * v, A.adjoint(y) + rho * x0,
                                     x0=x0, tol=self.cg_tol, max_iter=self.cg_max_iter, return_info=True)
        if not info.converged:
            res = float(info.relative_residual.max())
            self.worst_residual = max(self.worst_residual, res)
            if not self._warned:
                self._warned = True
                warnings.warn(f"diffpir: CG did not reach tol={self.cg_tol:g} in {self.cg_max_iter} iterations at "
                              f"step {ctx.index + 1} of {ctx.steps} (relative residual {res:.3g}); keeping its "
                              f"last iterate (raise cg_max_iter to solve further)", CGWarning, stacklevel=2)
        return x - x0

    def __repr__(self):
        return f"diffpir({self.A!r}, sigma_y={self.sigma_y!r}, lam={self.lam!r}, cg_tol={self.cg_tol!r})"


def diffpir(A, y: torch.Tensor, sigma_y: float, *, lam: float = 1.0, data_var: float = 1.0, cg_tol: float = 1e-4,
            cg_max_iter: int = 50) -> DiffPIR:
    """HQS data step for linear ``A`` and ``y`` (``(B, C, *A.range_shape)``): replace ``x̂0`` by the
    minimiser of ``‖y − Ax‖²/(2σ_y²) + λ‖x − x̂0‖²/(2r_t²)`` (CG to ``cg_tol``, at most
    ``cg_max_iter`` iterations). ``sigma_y >= 0`` (0: the noiseless projection, see the module doc)."""
    return DiffPIR(A, y, sigma_y, lam=lam, data_var=data_var, cg_tol=cg_tol, cg_max_iter=cg_max_iter)
