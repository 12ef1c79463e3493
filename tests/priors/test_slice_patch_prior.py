"""SlicePrior / PatchPrior: the denoiser contract on 2D and 3D inputs, blending, gradients."""

import pytest
import torch

from tomodiff.priors.edm import EDMDenoiser
from tomodiff.priors.patch_prior import PatchPrior
from tomodiff.priors.slice_prior import SlicePrior
from tomodiff.priors.unet import UNet


def _den(dims):
    torch.manual_seed(0)
    net = UNet(dims, 1, (8, 16, 16))
    net.head[-1].weight.data.normal_(std=0.1)
    return EDMDenoiser(net, sigma_data=0.6).eval()


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 3, 13, 18), (2, 1, 5, 16, 16), (1, 2, 3, 11, 20)])
def test_slice_prior_shapes(shape):
    p = SlicePrior(_den(2), size=16, max_batch=4)
    x = torch.rand(shape)
    assert p.denoiser(x, 0.1).shape == shape
    assert p.denoiser(x, torch.full((shape[0],), 0.1)).shape == shape


def test_slice_prior_is_slice_wise():
    """Denoising a volume = denoising each axial slice on its own (batched over Z)."""
    p = SlicePrior(_den(2), size=16, max_batch=3)
    vol = torch.rand(2, 1, 4, 16, 16)
    sig = torch.tensor([0.05, 0.2])
    out = p.denoiser(vol, sig)
    for b in range(2):
        ref = p.denoiser(vol[b, 0].unsqueeze(1), sig[b])  # (Z, 1, Y, X)
        torch.testing.assert_close(out[b, 0], ref[:, 0], atol=1e-5, rtol=1e-5)


def test_patch_prior_shapes_and_errors():
    p = PatchPrior(_den(3), size=8, max_batch=5)
    for shape in [(1, 1, 8, 8, 8), (2, 1, 12, 17, 9), (1, 1, 5, 6, 20)]:
        assert p.denoiser(torch.rand(shape), 0.1).shape == shape
    with pytest.raises(ValueError, match="slice prior"):
        p.denoiser(torch.rand(1, 1, 8, 8), 0.1)


def test_patch_blending_is_a_partition_of_unity():
    """A 'network' that doubles its input must give exactly 2x after overlapping blending."""
    p = PatchPrior(lambda x, s: 2 * x, size=8, stride=3)
    x = torch.rand(2, 1, 13, 10, 17)
    torch.testing.assert_close(p.denoiser(x, [0.1, 0.2]), 2 * x)


@pytest.mark.parametrize("kind", ["slice", "patch"])
def test_denoiser_is_differentiable_in_x(kind):
    p = SlicePrior(_den(2), 16) if kind == "slice" else PatchPrior(_den(3), 8)
    x = torch.rand(1, 1, 8, 16, 16, requires_grad=True)
    (p.denoiser(x, 0.3) ** 2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
