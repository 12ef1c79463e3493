"""Bad input raises errors that name what was expected and what was received."""

import math

import pytest
import torch

from tomodiff.operators import (Downsample, GaussianBlur, GaussianNoise, Mask, PoissonNoise,
                                box_mask, center_mask, random_pixel_mask, simulate)


def test_wrong_spatial_shape_names_expected_and_received():
    A = GaussianBlur((16, 16), 1.0)
    with pytest.raises(ValueError, match=r"\(B, C, 16, 16\).*\(1, 1, 16, 15\)"):
        A.forward(torch.zeros(1, 1, 16, 15))


def test_wrong_number_of_dims():
    A = Downsample((8, 8), 2)
    with pytest.raises(ValueError, match=r"4 dims.*got 2 dims with shape \(8, 8\)"):
        A(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="measurement must have 4 dims"):
        A.adjoint(torch.zeros(1, 4, 4))


def test_non_tensor_and_integer_input():
    A = Mask(torch.ones(4, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        A.forward([[1.0]])
    with pytest.raises(TypeError, match="floating"):
        A.forward(torch.zeros(1, 1, 4, 4, dtype=torch.int64))


def test_mask_of_the_wrong_size():
    A = Mask(center_mask((8, 8)))
    with pytest.raises(ValueError, match=r"\(B, C, 8, 8\).*\(2, 1, 8, 9\)"):
        A.forward(torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match=r"mask must have shape \(H, W\) or \(C, H, W\), got \(8,\)"):
        Mask(torch.ones(8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Mask(torch.full((4, 4), 2.0))


def test_mask_helpers_validate():
    with pytest.raises(ValueError, match="does not fit"):
        box_mask((8, 8), [(6, 6, 4, 4)])
    with pytest.raises(ValueError, match="keep"):
        random_pixel_mask((8, 8), 1.5)
    with pytest.raises(ValueError, match="keep"):
        center_mask((8, 8), 0.0)


def test_operator_construction_errors():
    with pytest.raises(ValueError, match="not divisible by factor 3"):
        Downsample((8, 8), 3)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        GaussianBlur((8, 8), 0.0)
    with pytest.raises(ValueError, match="boundary must be one of"):
        GaussianBlur((8, 8), 1.0, boundary="wrap")
    with pytest.raises(ValueError, match="image_shape must be"):
        GaussianBlur((8, 8, 8), 1.0)


def test_composition_shape_mismatch_fails_when_built():
    with pytest.raises(ValueError, match=r"expects domain \(8, 8\).*produces range \(4, 4\)"):
        GaussianBlur((8, 8), 1.0) @ Downsample((8, 8), 2)
    with pytest.raises(ValueError, match="cannot add"):
        GaussianBlur((8, 8), 1.0) + Downsample((8, 8), 2)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_simulate_rejects_non_finite_input(bad):
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = bad
    with pytest.raises(ValueError, match="simulate: input x contains 1 non-finite"):
        simulate(GaussianBlur((8, 8), 1.0), x, GaussianNoise(0.1))


def test_noise_parameters_validated():
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="photons"):
        PoissonNoise(0.0)
    with pytest.raises(ValueError, match="non-negative"):
        simulate(Mask(torch.ones(2, 2)), -torch.ones(1, 1, 2, 2), PoissonNoise(10.0))


def test_gram_solve_argument_errors():
    A = Mask(torch.ones(4, 4))
    y = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="non-negative"):
        A.gram_solve(y, sigma=-1.0, r=1.0)
    with pytest.raises(ValueError, match="per-item shape"):
        A.gram_solve(y, sigma=0.1, r=torch.ones(3))
    with pytest.raises(ValueError, match="method"):
        A.gram_solve(y, sigma=0.1, r=1.0, method="lu")
    with pytest.raises(NotImplementedError, match="method='cg'"):
        GaussianBlur((4, 4), 1.0, boundary="zero").gram_solve(y, sigma=0.1, r=1.0, method="exact")
