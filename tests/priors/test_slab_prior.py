"""The 2.5D prior: neighbour stacks, a network that sees them, and training data drawn as slabs."""

import numpy as np
import pytest
import torch

from tomodiff.training.ct_data import Volume, random_slab_crop
from tomodiff.priors.edm import EDMDenoiser
from tomodiff.priors.slab_prior import SlabPrior, neighbour_stacks
from tomodiff.priors.unet import UNet


def test_neighbour_stacks_hold_slices_z_minus_k_to_z_plus_k_mirrored_at_the_ends():
    x = torch.arange(5, dtype=torch.float32).view(1, 1, 5, 1, 1).expand(1, 1, 5, 2, 2)
    st = neighbour_stacks(x, 2)  # (5, 5, 2, 2)
    assert st.shape == (5, 5, 2, 2)
    assert st[:, :, 0, 0].tolist() == [[2, 1, 0, 1, 2], [1, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 3],
                                       [2, 3, 4, 3, 2]]
    short = neighbour_stacks(x[:, :, :2], 2)  # too short to mirror: the edge slice repeats
    assert short[:, :, 0, 0].tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]


def _slab_prior(k=1):
    torch.manual_seed(0)
    net = UNet(dims=2, in_channels=2 * k + 1, out_channels=1, channels=(8, 16), emb_dim=16)
    for p in net.head[-1].parameters():  # the head starts at zero: give the network something to say
        torch.nn.init.normal_(p, std=0.1)
    return SlabPrior(EDMDenoiser(net, sigma_data=0.5, context=k), size=16)


def test_each_slice_is_denoised_from_its_own_neighbours():
    prior = _slab_prior()
    x = torch.rand(2, 1, 6, 16, 16, generator=torch.Generator().manual_seed(1))
    out = prior.denoiser(x, torch.tensor([0.3, 0.5]))
    assert out.shape == x.shape
    # slice 3 of item 1, directly from the network on its stack (slices 2, 3, 4)
    direct = prior.net(x[1:2, 0, 2:5], torch.tensor([0.5]))
    torch.testing.assert_close(out[1, 0, 3], direct[0, 0], rtol=1e-5, atol=1e-6)
    changed = x.clone()
    changed[0, 0, 0] += 1.0  # a change at slice 0 reaches slices 0 and 1 (and 1 again by mirroring) only
    diff = (prior.denoiser(changed, torch.tensor([0.3, 0.5])) - out).abs().amax(dim=(-1, -2))[0, 0]
    assert diff[:2].min() > 0 and diff[2:].max() == 0


def test_gradients_flow_through_the_stacks_for_guidance():
    prior = _slab_prior()
    x = torch.rand(1, 1, 4, 16, 16, requires_grad=True)
    prior.denoiser(x, 0.2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_a_2d_image_is_a_stack_of_copies():
    prior = _slab_prior(k=2)
    img = torch.rand(3, 1, 16, 16)
    out = prior.denoiser(img, 0.1)
    assert out.shape == img.shape
    torch.testing.assert_close(out, prior.denoiser(img[:, :, None].expand(3, 1, 1, 16, 16).contiguous(), 0.1)[:, :, 0])


def test_random_slab_crop_keeps_slices_apart_in_millimetres():
    z = torch.arange(40, dtype=torch.float32).view(40, 1, 1) / 40
    vol = Volume("ramp", z.expand(40, 64, 64).contiguous(), spacing=(2.0, 1.0, 1.0))
    rng = np.random.default_rng(0)
    for _ in range(20):
        st = random_slab_crop(vol, 32, 2, rng, scale_range=(1.0, 1.0), thickness_range=(1.0, 1.0))
        assert st.shape == (5, 32, 32)
        steps = (st[1:, 0, 0] - st[:-1, 0, 0]).abs()
        # 1 mm pixels, slices 1 mm apart on a 2 mm grid: half a voxel of the ramp (1/40 per voxel)
        torch.testing.assert_close(steps, torch.full_like(steps, 0.5 / 40), rtol=0, atol=1e-5)


def test_edm_context_loss_targets_the_centre_slice():
    torch.manual_seed(0)
    den = EDMDenoiser(UNet(dims=2, in_channels=3, out_channels=1, channels=(8, 16), emb_dim=16), context=1)
    u0 = torch.randn(2, 3, 16, 16)
    s = torch.full((2, 1, 1, 1), 0.3)
    loss = den.loss(u0, s, torch.zeros_like(u0))
    # with a zero head the network says nothing: D = c_skip · centre, so the loss is about the centre only
    c_skip = 0.25 / (0.09 + 0.25)
    w = (0.09 + 0.25) / (0.09 * 0.25)
    expected = (w * ((c_skip - 1) * u0[:, 1:2]) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(loss, expected)


def test_conditional_denoiser_without_a_condition_is_its_dropped_branch():
    torch.manual_seed(0)
    net = UNet(dims=2, in_channels=3, out_channels=1, channels=(8, 16), emb_dim=16)
    for p in net.head[-1].parameters():
        torch.nn.init.normal_(p, std=0.1)
    den = EDMDenoiser(net, conditional=True)
    x, c = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    none = den(x, 0.5)
    with_c = den(x, 0.5, c)
    assert not torch.allclose(none, with_c)
    u = (x - 0.5) * 2
    dropped = den.precond(u, torch.full((2, 1, 1, 1), 1.0), (c - 0.5) * 2, keep=torch.zeros(2)) / 2 + 0.5
    torch.testing.assert_close(dropped, none)
    with pytest.raises(ValueError):
        UNet(dims=4)
