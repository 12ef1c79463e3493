"""Whitening (tomodiff.operators.whitened): W A is a linear operator with an exact adjoint, and
whiten() turns heteroscedastic noise into white noise of std s."""

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.operators import dot_test
from tomodiff.operators.whitened import Whitened, whiten


@pytest.fixture(scope="module")
def A():
    return Projector(parallel_beam((16, 16), np.linspace(0, np.pi, 12, endpoint=False), det_shape=(24,)), "torch")


def _variance(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (1e-4 * 10 ** (2 * torch.rand(shape, generator=g, dtype=torch.float64)))  # 1e-4 .. 1e-2


def test_adjoint_is_exact_shared_and_per_item(A):
    w = torch.rand(A.range_shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.1
    W = Whitened(A, w)
    assert dot_test(W) < 1e-12 and dot_test(W, batch=(2, 1)) < 1e-12
    x = torch.rand((2, 1, *A.domain_shape), dtype=torch.float64)
    torch.testing.assert_close(W.forward(x), w * A.forward(x))
    per_item = torch.stack([w, 2 * w])[:, None]                                    # (2, 1, A, U)
    Wb = Whitened(A, per_item)
    assert dot_test(Wb, batch=(2, 1)) < 1e-12
    torch.testing.assert_close(Wb.forward(x), per_item * A.forward(x))
    r = torch.randn((2, 1, *A.range_shape), dtype=torch.float64)
    torch.testing.assert_close(Wb.adjoint(r), A.adjoint(per_item * r))


@pytest.mark.parametrize("scale", [None, 1.0])
def test_whiten_gives_white_noise_of_std_s(A, scale):
    x = torch.rand((1, 1, *A.domain_shape), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    v = _variance(A.range_shape)
    trials = 400
    noise = torch.randn((trials, 1, *A.range_shape), generator=torch.Generator().manual_seed(3),
                        dtype=torch.float64) * v.sqrt()
    y = A.forward(x) + noise                                                       # (trials, 1, A, U)
    WA, Wy, s = whiten(A, y[:1], v, scale=scale)
    assert s == pytest.approx(float((1 / v).mean() ** -0.5) if scale is None else 1.0)
    white = (WA.w * y - WA.forward(x))                                             # every trial, same weights
    per_ray = white.std(dim=0) / s
    # each ray's whitened std is s (400 trials: ±3.5% at 1σ), though the raw stds span 10x
    assert float(per_ray.mean()) == pytest.approx(1.0, abs=0.01) and float((per_ray - 1).abs().max()) < 0.2
    assert float((noise.std(dim=0) / v.sqrt().mean()).max() / (noise.std(dim=0) / v.sqrt().mean()).min()) > 5
    torch.testing.assert_close(Wy, WA.w * y[:1])


def test_whiten_per_item_variance(A):
    v = _variance((2, 1, *A.range_shape))
    y = torch.randn((2, 1, *A.range_shape), dtype=torch.float64)
    WA, Wy, s = whiten(A, y, v, scale=1.0)
    torch.testing.assert_close(Wy, y / v.sqrt())
    assert dot_test(WA, batch=(2, 1)) < 1e-12


@pytest.mark.parametrize("make, msg", [
    (lambda A: Whitened(A, -torch.ones(A.range_shape)), "finite and positive"),
    (lambda A: Whitened(A, torch.ones(3, 3)), "w must have shape"),
    (lambda A: Whitened(A, np.ones(A.range_shape)), "must be a torch.Tensor"),
    (lambda A: whiten(A, torch.zeros((1, 1, *A.range_shape)), torch.zeros(A.range_shape)), "finite and positive"),
    (lambda A: whiten(A, torch.zeros((1, 1, *A.range_shape)), torch.ones(5)), "variance must have shape"),
    (lambda A: whiten(A, torch.zeros((1, 1, *A.range_shape)), torch.ones(A.range_shape), scale=0), "scale must be"),
])
def test_errors(A, make, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        make(A)
