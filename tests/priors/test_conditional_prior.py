"""The conditional prior: classifier-free guidance combines its conditional and unconditional halves."""

import pytest
import torch

from tomodiff.priors.conditional_prior import ConditionalPrior
from tomodiff.priors.edm import EDMDenoiser
from tomodiff.priors.registry import load_file, save_prior
from tomodiff.priors.unet import UNet


def _conditional_prior():
    torch.manual_seed(0)
    net = UNet(dims=2, in_channels=3, out_channels=1, channels=(8, 16), emb_dim=16)
    for p in net.head[-1].parameters():  # the head starts at zero: give the network something to say
        torch.nn.init.normal_(p, std=0.1)
    return ConditionalPrior(EDMDenoiser(net, sigma_data=0.5, conditional=True), size=16)


@pytest.mark.parametrize("w", [0.0, 0.7, 2.0])
def test_guided_is_one_plus_w_conditional_minus_w_unconditional(w):
    prior = _conditional_prior()
    g = torch.Generator().manual_seed(1)
    cond = torch.rand(1, 1, 3, 16, 16, generator=g)  # one measurement's condition ...
    x = torch.rand(2, 1, 3, 16, 16, generator=g)  # ... for two samples (sample-major batch)
    sigma = torch.tensor([0.4, 0.9])
    out = prior.guided(cond, w)(x, sigma)
    for b in range(2):
        slices, s = x[b, 0][:, None], sigma[b].expand(3)  # the network directly, slice by slice
        with torch.no_grad():
            c = prior.net(slices, s, cond[0, 0][:, None])
            u = prior.net(slices, s)
        torch.testing.assert_close(out[b, 0], ((1 + w) * c - w * u)[:, 0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(prior.guided(cond, 0.0)(x, sigma), prior.denoiser(x, sigma))  # the condition matters


def test_the_unconditional_denoiser_is_the_dropped_condition():
    prior = _conditional_prior()
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        keep0 = prior.net(x, 0.5, torch.rand(3, 1, 16, 16), torch.zeros(3))  # dropout zeroes the condition
    torch.testing.assert_close(prior.denoiser(x, 0.5), keep0)


def test_guided_rejects_what_it_cannot_combine():
    prior = _conditional_prior()
    with pytest.raises(ValueError, match="w must be >= 0"):
        prior.guided(torch.zeros(1, 1, 16, 16), -1.0)
    with pytest.raises(ValueError, match="does not match the condition"):
        prior.guided(torch.zeros(2, 1, 16, 16), 1.0)(torch.zeros(3, 1, 16, 16), 0.5)
    with pytest.raises(ValueError, match="must be"):
        prior.guided(torch.zeros(16, 16), 1.0)


def test_a_conditional_prior_file_loads_as_a_conditional_prior(tmp_path):
    prior = _conditional_prior()
    config = {"dims": 2, "size": 16, "channels": [8, 16], "emb_dim": 16, "conditional": True}
    path = save_prior(prior.net, config, {"name": "tiny-cond"}, tmp_path / "tiny-cond.pt")
    loaded = load_file(path)
    assert isinstance(loaded, ConditionalPrior)
    x, cond = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(loaded.guided(cond, 1.0)(x, 0.3), prior.guided(cond, 1.0)(x, 0.3))
