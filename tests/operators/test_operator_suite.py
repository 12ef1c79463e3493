"""Every registered operator: adjoint, autograd bridge, composition, gram solve, gradcheck."""

import pytest
import torch
from operator_cases import OPERATOR_CASES

from tomodiff.operators import LinearOperator, dot_test

CASES = [pytest.param(c, id=c.name, marks=c.marks) for c in OPERATOR_CASES]


def _rand(shape, seed, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("case", CASES)
def test_dot_test_float64(case):
    A = case.build()
    for seed in range(3):
        err = dot_test(A, generator=torch.Generator().manual_seed(seed), batch=(2, 3))
        assert err < case.dot_tol, f"{case.name}: dot-test error {err:.3e}"


@pytest.mark.parametrize("case", CASES)
def test_dot_test_method_is_the_function(case):
    A = case.build()
    options = dict(generator=torch.Generator().manual_seed(5), batch=(2, 1), dtype=torch.float64)
    err = A.dot_test(**options)
    assert err == dot_test(A, **{**options, "generator": torch.Generator().manual_seed(5)})
    assert A.dot_test() == dot_test(A) < case.dot_tol


@pytest.mark.parametrize("case", CASES)
def test_float32_dot_test_and_dtype(case):
    A = case.build()
    assert dot_test(A, dtype=torch.float32) < 1e-5
    x = _rand((1, 1, *A.domain_shape), 0, torch.float32)
    assert A.forward(x).dtype == torch.float32


@pytest.mark.parametrize("case", CASES)
def test_autograd_gradient_is_the_adjoint(case):
    A = case.build()
    x = _rand((2, 1, *A.domain_shape), 1).requires_grad_(True)
    g = _rand((2, 1, *A.range_shape), 2)
    (A(x) * g).sum().backward()
    torch.testing.assert_close(x.grad, A.adjoint(g), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_call_matches_forward_and_batches_independently(case):
    A = case.build()
    x = _rand((3, 2, *A.domain_shape), 3)
    y = A(x)
    assert y.shape == (3, 2, *A.range_shape)
    torch.testing.assert_close(y, A.forward(x))
    torch.testing.assert_close(y[1:2, 1:2], A.forward(x[1:2, 1:2]))


@pytest.mark.parametrize("case", CASES)
def test_transpose_cached_and_composition_adjoint(case):
    A = case.build()
    assert A.T is A.T and A.T.T is A
    B = A.T @ A  # (AᵀA)ᵀ = AᵀA applied, and (A @ B).T == B.T @ A.T
    C = A @ B
    y = _rand((1, 2, *C.range_shape), 4)
    torch.testing.assert_close(C.T.forward(y), (B.T @ A.T).forward(y))
    torch.testing.assert_close(C.T.forward(y), B.adjoint(A.adjoint(y)))


@pytest.mark.parametrize("case", CASES)
def test_exact_and_cg_gram_solves_agree(case):
    A = case.build()
    y = _rand((2, 1, *A.range_shape), 5)
    r = torch.tensor([0.3, 2.0], dtype=torch.float64).view(2, 1, *([1] * len(A.range_shape)))
    z_cg = A.gram_solve(y, sigma=0.05, r=r, method="cg", tol=1e-12, max_iter=2000)
    residual = 0.05**2 * z_cg + r**2 * A.forward(A.adjoint(z_cg)) - y
    assert residual.norm() / y.norm() < 1e-9
    if not A.has_exact_gram_solve:
        pytest.skip("no closed form for this operator: CG checked against the system itself")
    z_exact = A.gram_solve(y, sigma=0.05, r=r, method="exact")
    assert ((z_exact - z_cg).norm() / z_exact.norm()).item() < 1e-6


@pytest.mark.parametrize("case", CASES)
def test_gradcheck(case):
    if not case.gradcheck:
        pytest.skip("too large for gradcheck")
    A = case.build()
    x = _rand((1, 2, *A.domain_shape), 6).requires_grad_(True)
    assert torch.autograd.gradcheck(A, (x,))
    assert torch.autograd.gradgradcheck(A, (x,))


@pytest.mark.parametrize("case", CASES)
def test_norm_matches_dense_spectral_norm(case):
    A = case.build()
    n = 1
    for s in A.domain_shape:
        n *= s
    if n > 400:
        pytest.skip("dense matrix too large")
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, *A.domain_shape)
    dense = A.forward(eye).reshape(n, -1).T
    exact = torch.linalg.matrix_norm(dense, ord=2).item()
    est = A.norm(n_iter=2000, tol=1e-12, generator=torch.Generator().manual_seed(0))
    assert abs(est - exact) <= 1e-4 * max(exact, 1e-12)


def test_registry_covers_each_operator_class():
    import tomodiff.operators as ops
    classes = {c for c in vars(ops).values()
               if isinstance(c, type) and issubclass(c, LinearOperator) and c is not LinearOperator}
    seen = {type(c.build()) for c in OPERATOR_CASES}
    assert classes <= seen, f"operators missing from tests/operator_cases.py: {classes - seen}"
