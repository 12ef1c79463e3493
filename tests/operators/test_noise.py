import torch

from tomodiff.operators import GaussianNoise, Mask, PoissonNoise, simulate


def _ones(shape=(2, 1, 32, 32)):
    return torch.full(shape, 0.5, dtype=torch.float64)


def test_same_seed_same_measurement_different_seed_differs():
    A = Mask(torch.ones(32, 32))
    for noise in (GaussianNoise(0.1), PoissonNoise(100.0)):
        y1 = simulate(A, _ones(), noise, generator=torch.Generator().manual_seed(3))
        y2 = simulate(A, _ones(), noise, generator=torch.Generator().manual_seed(3))
        y3 = simulate(A, _ones(), noise, generator=torch.Generator().manual_seed(4))
        assert torch.equal(y1, y2) and not torch.equal(y1, y3)


def test_gaussian_noise_statistics():
    y = simulate(Mask(torch.ones(32, 32)), _ones((8, 1, 32, 32)), GaussianNoise(0.2),
                 generator=torch.Generator().manual_seed(0))
    n = y.numel()
    # std of the sample mean is 0.2/sqrt(n); of the sample std about 0.2/sqrt(2n)
    assert abs(y.mean().item() - 0.5) < 4 * 0.2 / n**0.5
    assert abs(y.std().item() - 0.2) < 4 * 0.2 / (2 * n) ** 0.5


def test_poisson_noise_mean_and_variance():
    photons = 50.0
    y = simulate(Mask(torch.ones(32, 32)), _ones((8, 1, 32, 32)), PoissonNoise(photons),
                 generator=torch.Generator().manual_seed(0))
    counts = y * photons
    n = y.numel()
    assert torch.allclose(counts, counts.round())  # integer photon counts
    lam = 0.5 * photons
    assert abs(counts.mean().item() - lam) < 4 * (lam / n) ** 0.5
    assert abs(counts.var().item() / lam - 1.0) < 4 * (2 / n) ** 0.5 + 1 / lam


def test_nll_is_minimised_at_the_truth():
    y = _ones()
    for noise in (GaussianNoise(0.1), PoissonNoise(20.0)):
        assert noise.nll(y, y).shape == (2, 1)
        assert (noise.nll(y, y) < noise.nll(y, y + 0.05)).all()
        assert (noise.nll(y, y) < noise.nll(y, y - 0.05)).all()
