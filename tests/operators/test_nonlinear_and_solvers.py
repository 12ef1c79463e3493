import torch

from tomodiff.operators import BeerLambert, Downsample, GaussianBlur, conjugate_gradient


def test_beer_lambert_gradient_matches_finite_differences():
    op = BeerLambert(GaussianBlur((6, 6), 1.0, boundary="zero"), i0=1000.0)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(op, (x.requires_grad_(True),))
    y = op(x)
    assert y.shape == (1, 2, 6, 6) and (y > 0).all() and (y <= 1000.0).all()


def test_beer_lambert_backward_uses_the_registered_adjoint():
    A = Downsample((8, 8), 2)
    calls = []
    original = A._adjoint
    A._adjoint = lambda y: (calls.append(1), original(y))[1]
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    BeerLambert(A, 10.0)(x).sum().backward()
    assert calls, "backward did not go through the operator's adjoint"


def test_cg_reports_convergence_per_item():
    diag = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    b = torch.stack([torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]).view(2, 1, 3)
    x, info = conjugate_gradient(lambda v: v * diag, b, tol=1e-12, max_iter=10, return_info=True)
    torch.testing.assert_close(x[0, 0], 1.0 / diag)
    assert torch.equal(x[1], torch.zeros_like(x[1]))  # zero right-hand side gives zero
    assert info.converged and info.iterations <= 3 and info.relative_residual.shape == (2, 1)


def test_cg_stops_at_the_iteration_cap():
    diag = torch.logspace(0, 6, 50, dtype=torch.float64)
    b = torch.ones(1, 1, 50, dtype=torch.float64)
    _, info = conjugate_gradient(lambda v: v * diag, b, tol=1e-14, max_iter=5, return_info=True)
    assert info.iterations == 5 and not info.converged


def test_cg_result_of_an_item_does_not_depend_on_its_batch():
    diag = torch.logspace(0, 3, 40, dtype=torch.float64)
    easy = torch.zeros(40, dtype=torch.float64)
    easy[0], easy[1:] = 1.0, 1e-5  # within tol after one iteration, but not exactly solved
    hard = torch.ones(40, dtype=torch.float64)
    alone = conjugate_gradient(lambda v: v * diag, easy.view(1, 1, 40), tol=1e-3, max_iter=100)
    both = conjugate_gradient(lambda v: v * diag, torch.stack([easy, hard]).view(2, 1, 40), tol=1e-3, max_iter=100)
    assert torch.equal(both[0], alone[0])
    # iterating it further would have changed it: the check above is not vacuous
    longer = conjugate_gradient(lambda v: v * diag, easy.view(1, 1, 40), tol=1e-12, max_iter=100)
    assert not torch.equal(longer[0], alone[0])
