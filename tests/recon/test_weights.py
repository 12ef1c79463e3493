"""PWLS weights in SIRT, CGLS and TV (tomodiff.recon.weights): uniform weights change nothing,
weights that down-weight corrupted rays reduce the error, and bad weights are one clear error."""

import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.recon import cgls, sirt, tv
from tomodiff.recon.solvers import solve_classical

SOLVERS = {"sirt": (sirt, {"n_iter": 200}), "cgls": (cgls, {"n_iter": 15}), "tv": (tv, {"lam": 0.02, "n_iter": 150})}


@pytest.fixture
def problem(shepp32, angles):
    A = Projector(parallel_beam((32, 32), angles(30), det_shape=(48,)), "torch")
    x = shepp32[None, None]
    y = A.forward(x)
    g = torch.Generator().manual_seed(5)
    var = torch.full(A.range_shape, (0.002 * float(y.max())) ** 2, dtype=y.dtype)
    bad = torch.rand(A.range_shape, generator=g) < 0.1                         # 10% of rays: 50x the noise std
    var[bad] *= 2500
    return A, x, y + var.sqrt() * torch.randn(y.shape, generator=g, dtype=y.dtype), var


@pytest.mark.parametrize("name", list(SOLVERS))
def test_uniform_weights_equal_unweighted(problem, name):
    A, _, y, _ = problem
    solve, kw = SOLVERS[name]
    if name == "cgls":  # equal in exact arithmetic; past ~10 iterations CGLS amplifies rounding (1e-14 -> 1e-4)
        kw = {"n_iter": 6}
    plain = solve(A, y, progress=False, **kw)
    torch.testing.assert_close(solve(A, y, weights=torch.full(A.range_shape, 3.7), progress=False, **kw), plain)
    torch.testing.assert_close(solve(A, y, weights=torch.ones_like(y), progress=False, **kw), plain)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_pwls_downweights_corrupted_rays(problem, name):
    A, x, y, var = problem
    solve, kw = SOLVERS[name]
    err = lambda z: float((z - x).norm() / x.norm())  # noqa: E731
    plain, pwls = err(solve(A, y, progress=False, **kw)), err(solve(A, y, weights=1 / var, progress=False, **kw))
    assert pwls < 0.7 * plain, (name, plain, pwls)


def test_zero_weight_ignores_rays(problem):
    A, _, y, var = problem
    w = (var < var.max()).to(y.dtype)                                            # 0 on the corrupted rays
    garbage = torch.where(w.bool(), y, torch.full_like(y, 1e3))
    torch.testing.assert_close(cgls(A, garbage, weights=w, n_iter=10, progress=False),
                               cgls(A, y, weights=w, n_iter=10, progress=False))


def test_solve_classical_records_and_refuses(problem):
    A, _, y, var = problem
    _, used, notes = solve_classical(A, y, "sirt", {"weights": 1 / var, "n_iter": 5}, progress=False)
    assert notes["weights"]["rule"].startswith("PWLS") and "mean 1" in used["weights"]
    with pytest.raises(ValueError, match="apply to sirt, cgls and tv, not fbp"):
        solve_classical(A, y, "fbp", {"weights": 1 / var})


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("weights, msg", [
    (lambda s: torch.ones(5), "weights must have shape"),
    (lambda s: torch.full(s, float("nan")), "must be finite and >= 0"),
    (lambda s: -torch.ones(s), "must be finite and >= 0"),
    (lambda s: torch.zeros(s), "weights are all zero"),
])
def test_bad_weights(problem, name, weights, msg):
    A, _, y, _ = problem
    solve, kw = SOLVERS[name]
    with pytest.raises(ValueError, match=msg):
        solve(A, y, weights=weights(A.range_shape), progress=False, **kw)
