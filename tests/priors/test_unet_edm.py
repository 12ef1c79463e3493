"""The U-Net (2D and 3D from one definition) and the EDM preconditioning."""

import pytest
import torch

from tomodiff.priors.edm import EDMDenoiser, heun_sample, karras_sigmas, sigma_per_sample
from tomodiff.priors.unet import UNet, n_params


@pytest.mark.parametrize("dims,shape", [(2, (3, 1, 16, 24)), (3, (2, 1, 8, 16, 8))])
def test_unet_shapes(dims, shape):
    net = UNet(dims, 1, (8, 16))
    net.head[-1].weight.data.normal_()  # the head starts at zero; make the output non-trivial
    y = net(torch.randn(shape), torch.zeros(shape[0]))
    assert y.shape == shape and y.abs().sum() > 0


def test_unet_rejects_bad_inputs():
    net = UNet(2, 1, (8, 16, 16))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 10, 12), torch.zeros(1))
    with pytest.raises(ValueError, match="4D input"):
        net(torch.randn(1, 1, 8, 8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match="dims"):
        UNet(1)


def test_3d_has_more_parameters_than_2d_for_the_same_widths():
    assert n_params(UNet(3, 1, (8, 16))) > n_params(UNet(2, 1, (8, 16)))


def test_sigma_per_sample_broadcasting():
    x = torch.zeros(3, 1, 4, 4)
    assert sigma_per_sample(0.1, x).shape == (3, 1, 1, 1)
    assert torch.equal(sigma_per_sample(torch.tensor([1.0, 2.0, 3.0]), x).flatten(), torch.tensor([1.0, 2.0, 3.0]))
    assert sigma_per_sample(torch.ones(3, 1, 1, 1), x).shape == (3, 1, 1, 1)
    with pytest.raises(ValueError, match="batch of 3"):
        sigma_per_sample(torch.ones(2), x)


def test_preconditioning_limits():
    """Any network: D(x, σ→0) → x (c_skip → 1, c_out → 0); and data-unit scaling is consistent."""
    torch.manual_seed(0)
    net = UNet(2, 1, (8, 16))
    net.head[-1].weight.data.normal_()
    den = EDMDenoiser(net, sigma_data=0.6, offset=0.5, scale=2.0)
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(den(x, 1e-8), x, atol=1e-5, rtol=0)
    assert (den(x, 1.0) - x).abs().mean() > 1e-3


def test_heun_sampler_on_a_known_denoiser():
    """With the exact denoiser of a point mass at c, D(x, σ) = c, the sampler must land on c."""
    c = torch.full((2, 1, 4, 4), 0.3)
    out = heun_sample(lambda x, s: c.expand_as(x), (2, 1, 4, 4), steps=6, sigma_max=20.0,
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, c)
    s = karras_sigmas(5, 0.01, 10.0)
    assert abs(float(s[0]) - 10.0) < 1e-9 and s[-1] == 0 and torch.all(s[:-1] > s[1:])
