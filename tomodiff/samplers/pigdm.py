"""ΠGDM: pseudoinverse-guided diffusion (Song, Vahdat, Mardani & Kautz, ICLR 2023), noisy ``y`` included.

Likelihood approximation: ``p(y | x_t) ≈ N(A x̂0, σ_y² I + r_t² A Aᵀ)``, whose score through the
denoiser is ``g = (∂x̂0/∂x_t)ᵀ Aᵀ (σ_y² I + r_t² A Aᵀ)⁻¹ (y − A x̂0)``. The vector
``v = (σ_y² I + r_t² A Aᵀ)⁻¹ (y − A x̂0)`` is held fixed (detached) in the vector–Jacobian product:
``g`` is the gradient of the Gaussian log-likelihood, whose derivative with respect to ``x̂0`` is
``Aᵀ v``; differentiating through ``v`` as well gives a different, wrong vector.

Step form (our choice, documented): the Tweedie form ``E[x0 | x_t, y] ≈ x̂0 + σ_t²·g``, i.e. the
correction ``Δ = scale·σ_t²·g`` to ``x̂0``. For an isotropic Gaussian prior ``N(μ, s² I)`` with
``r_t² = s² σ_t²/(s² + σ_t²) = Var[x0 | x_t]`` this is exactly the conditional posterior mean, so
the samplers sample the exact posterior (up to their time discretisation). The paper's VP update
applies ``g`` with a heuristic weight instead; ``scale`` rescales ours.

``r_t²``: ``data_var·σ_t²/(data_var + σ_t²)`` — the paper's ``r_t² = σ_t²/(1 + σ_t²)`` (VE form of
``1 − ᾱ_t``, data of unit variance) scaled by the data variance; or any callable ``sigma -> r_t²``.

Jacobian (``jacobian``): ``"vjp"`` (the paper) backpropagates through the denoiser; ``"gaussian"``
takes ``∂x̂0/∂x_t ≈ (r_t²/σ_t²) I``, the Jacobian of the Gaussian ``x0 | x_t ~ N(x̂0, r_t² I)`` that
``r_t²`` already assumes, so the correction becomes the Gaussian conditioning (Kalman) update
``Δ = r_t²·Aᵀ(σ_y² I + r_t² A Aᵀ)⁻¹(y − A x̂0)``, with no backpropagation. Both are exact for an
isotropic Gaussian prior (its Jacobian is exactly that). With a trained network the VJP's error is
multiplied by σ_t² (the network part of ``∂x̂0/∂x_t`` scales like σ_data/σ_t), which is where ΠGDM
painted blobs on real CT at high σ; ``"gaussian"`` is bounded by construction
(``benchmarks/pigdm_jacobian.py``).

Notation map: ``x`` → ``x_t``; ``denoised`` → ``x̂0``; ``sigma`` → ``σ_t``; ``r2`` → ``r_t²``;
``sigma_y`` → ``σ_y``; ``v`` → ``(σ_y² I + r_t² A Aᵀ)⁻¹ (y − A x̂0)``; ``g`` → the ΠGDM guidance.
"""

from __future__ import annotations

import torch

from ._common import Guidance, StepContext, check_measurement, check_sigma_y, match_batch

__all__ = ["pigdm", "PiGDM"]


class PiGDM(Guidance):
    """The ΠGDM guidance; build it with :func:`pigdm`."""

    needs_grad = True

    def __init__(self, A, y, sigma_y, *, data_var=1.0, r2=None, scale=1.0, method="auto",
                 cg_tol=1e-6, cg_max_iter=100, jacobian="vjp"):
        if not hasattr(A, "gram_solve"):
            raise TypeError(f"pigdm: A must be a LinearOperator (with gram_solve), got {type(A).__name__}; "
                            "use dps for nonlinear operators")
        self.A, self.y = A, check_measurement(A, y, "pigdm")
        self.sigma_y = check_sigma_y(sigma_y, "pigdm")
        if r2 is None:
            if not data_var > 0:
                raise ValueError(f"pigdm: data_var must be > 0, got {data_var}")
            r2 = lambda s: data_var * s * s / (data_var + s * s)  # noqa: E731
        elif not callable(r2):
            raise TypeError("pigdm: r2 must be a callable sigma -> r_t² (or None)")
        if jacobian not in ("vjp", "gaussian"):
            raise ValueError(f"pigdm: jacobian must be 'vjp' or 'gaussian', got {jacobian!r}")
        self.r2, self.scale, self.method, self.jacobian = r2, float(scale), method, jacobian
        self.needs_grad = jacobian == "vjp"
        self.cg_tol, self.cg_max_iter = cg_tol, cg_max_iter

    def solve(self, residual: torch.Tensor, sigma: float) -> torch.Tensor:
        """``(σ_y² I + r_t² A Aᵀ)⁻¹ residual`` (exact where ``A`` knows its spectrum, CG otherwise)."""
        r2 = float(self.r2(sigma))
        return self.A.gram_solve(residual, sigma=self.sigma_y, r=r2**0.5, method=self.method,
                                 tol=self.cg_tol, max_iter=self.cg_max_iter)

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        y = match_batch(self.y, ctx.x, "pigdm")
        # 1. residual in measurement space, outside the graph
        residual = y - self.A.forward(ctx.denoised.detach())
        # 2. v = (σ_y² I + r_t² A Aᵀ)⁻¹ (y − A x̂0), held fixed
        v = self.solve(residual, ctx.sigma).detach()
        if self.jacobian == "gaussian":  # 3'. ∂x̂0/∂x_t ≈ (r_t²/σ_t²) I: Δ = r_t² Aᵀ v
            return self.scale * float(self.r2(ctx.sigma)) * self.A.adjoint(v)
        # 3. g = (∂x̂0/∂x_t)ᵀ Aᵀ v: one vector–Jacobian product through the denoiser
        (g,) = torch.autograd.grad(ctx.denoised, ctx.x, grad_outputs=self.A.adjoint(v), retain_graph=True)
        # 4. Tweedie: E[x0 | x_t, y] ≈ x̂0 + σ_t² g
        return self.scale * ctx.sigma**2 * g

    def __repr__(self):
        return f"pigdm({self.A!r}, sigma_y={self.sigma_y!r}, scale={self.scale!r}, jacobian={self.jacobian!r})"


def pigdm(A, y: torch.Tensor, sigma_y: float, *, data_var: float = 1.0, r2=None, scale: float = 1.0,
          method: str = "auto", cg_tol: float = 1e-6, cg_max_iter: int = 100, jacobian: str = "vjp") -> PiGDM:
    """ΠGDM guidance for a linear operator ``A`` and measurement ``y`` (``(B, C, *A.range_shape)``).

    ``sigma_y``: the measurement noise std (>= 0, data units). ``data_var``: the data variance in
    ``r_t² = data_var·σ_t²/(data_var + σ_t²)``; ``r2``: a callable ``sigma -> r_t²`` replacing it.
    ``method``: ``"auto" | "exact" | "cg"`` for :meth:`LinearOperator.gram_solve` (CG with
    ``cg_tol``, ``cg_max_iter``). ``scale`` multiplies the correction. ``jacobian``: ``"vjp"`` or
    ``"gaussian"`` (see the module docstring). The sample batch may be ``k·B`` (``k`` samples per
    measurement, sample-major).
    """
    return PiGDM(A, y, sigma_y, data_var=data_var, r2=r2, scale=scale, method=method, cg_tol=cg_tol,
                 cg_max_iter=cg_max_iter, jacobian=jacobian)
