"""The exact per-step solution of the emission–absorption equation."""

import torch

from tomodiff.render import composite, phi


def test_phi_is_stable_near_zero_and_matches_the_formula_elsewhere():
    tau = torch.tensor([0.0, 1e-12, 1e-6, 9.99e-4, 1.001e-3, 0.1, 1.0, 30.0, -0.5], dtype=torch.float64)
    exact = torch.where(tau == 0, torch.ones_like(tau), (1 - torch.exp(-tau)) / tau)
    exact[1] = 1 - 0.5e-12  # (1 − e^−τ)/τ itself loses every digit there
    torch.testing.assert_close(phi(tau), exact, rtol=1e-10, atol=0)
    t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(phi(t).sum(), t)
    assert g.item() == -0.5  # φ'(0) = −1/2, no NaN from 0/0


def test_steps_compose_like_the_ode_recursion():
    g = torch.Generator().manual_seed(0)
    e = torch.rand(7, 3, dtype=torch.float64, generator=g)
    k = 2 * torch.rand(7, 3, dtype=torch.float64, generator=g)
    step = torch.tensor([0.3, 1.0, 0.05], dtype=torch.float64)
    radiance = 0.8 * torch.ones(3, dtype=torch.float64)  # back-light, then step by step towards the camera
    for s in range(7):
        t = torch.exp(-k[s] * step)
        radiance = radiance * t + e[s] / k[s] * (1 - t)
    torch.testing.assert_close(composite(e, k, step, background=0.8), radiance, rtol=1e-13, atol=0)


def test_zero_absorption_is_the_line_integral_and_zero_emission_is_beer_lambert():
    e = torch.rand(5, 2, 4, dtype=torch.float64)
    k = torch.rand(5, 2, 4, dtype=torch.float64)
    step = torch.full((4,), 0.7, dtype=torch.float64)
    torch.testing.assert_close(composite(e, torch.zeros_like(e), step), (e * step).sum(0))
    torch.testing.assert_close(composite(torch.zeros_like(k), k, step, background=2.0),
                               2.0 * torch.exp(-(k * step).sum(0)))
