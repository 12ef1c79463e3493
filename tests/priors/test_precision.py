"""Prior speed options: precision (fp32 / bf16 / fp16 / auto), channels-last and inference mode.

fp32 stays the network as trained bit for bit; the faster settings stay close to it, keep the
gradient path working, hand back ordinary tensors, and fall back to fp32 (with a warning) where a
device lacks the arithmetic.
"""

import warnings

import numpy as np
import pytest
import torch

from tomodiff.priors import precision as P
from tomodiff.priors.edm import EDMDenoiser
from tomodiff.priors.patch_prior import PatchPrior
from tomodiff.priors.slice_prior import SlicePrior
from tomodiff.priors.unet import UNet

BF16 = P.cpu_bf16_supported()


def _den(dims=2, seed=0):
    torch.manual_seed(seed)
    net = UNet(dims, 1, (8, 16, 16))
    for m in net.modules():  # non-trivial weights everywhere (zero-initialised layers too)
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)):
            m.weight.data.normal_(std=0.2)
    return EDMDenoiser(net, sigma_data=0.6).eval().requires_grad_(False)


def test_fp32_default_is_the_network_bit_for_bit():
    den = _den()
    p = SlicePrior(den, size=16)
    assert p.precision == "fp32" and p.resolved_precision() == "fp32"
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(p.denoiser(x, 0.2), den(x, 0.2))
    xg = x.clone().requires_grad_(True)
    assert torch.equal(p.denoiser(xg, 0.2), den(xg, 0.2))


def test_bad_precision_is_a_clear_error():
    p = SlicePrior(_den(), size=16)
    with pytest.raises(ValueError, match="precision must be one of"):
        p.precision = "float16"
    with pytest.raises(ValueError, match="precision must be one of"):
        SlicePrior(_den(), size=16, precision="half")


def test_auto_resolves_by_device_support(monkeypatch):
    assert P.resolve("auto", "cpu") == ("bf16" if BF16 else "fp32")
    monkeypatch.setattr(P, "cpu_bf16_supported", lambda: False)
    assert P.resolve("auto", "cpu") == "fp32"
    monkeypatch.setattr(P, "cpu_bf16_supported", lambda: True)
    assert P.resolve("auto", "cpu") == "bf16"


def test_unsupported_precision_warns_once_then_fp32(monkeypatch):
    monkeypatch.setattr(P, "cpu_bf16_supported", lambda: False)
    p = SlicePrior(_den(), size=16, precision="bf16")
    x = torch.rand(2, 1, 16, 16)
    with pytest.warns(RuntimeWarning, match="no native bf16"):
        out = p.denoiser(x, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # resolved once per device: no second warning
        out2 = p.denoiser(x, 0.1)
    assert p.resolved_precision() == "fp32" and out.dtype == torch.float32
    torch.testing.assert_close(out, out2)
    with pytest.warns(RuntimeWarning, match="fp16 is not supported on cpu"):
        assert P.resolve("fp16", "cpu") == "fp32"


def test_channels_last_and_inference_mode_match_fp32_and_return_ordinary_tensors():
    den = _den()
    plain = SlicePrior(den, size=16)
    fast = SlicePrior(den, size=16, precision="fp32", channels_last=True, inference_mode=True)
    x = torch.rand(2, 1, 3, 16, 16)
    with torch.no_grad():
        ref, out = plain.denoiser(x, 0.3), fast.denoiser(x, 0.3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert not out.is_inference() and out.is_contiguous()
    out.add_(1.0)  # in-place use outside inference mode is allowed
    # an input without requires_grad outside no_grad takes the fast path too, and stays usable in autograd
    w = torch.ones(1, requires_grad=True)
    (fast.denoiser(x, 0.3) * w).sum().backward()
    assert w.grad is not None


def test_channels_last_copy_follows_weight_changes():
    den = _den()
    p = SlicePrior(den, size=16, precision="fp32", channels_last=True)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        before = p.denoiser(x, 0.3)
        den.load_state_dict(_den(seed=1).state_dict())
        after, ref = p.denoiser(x, 0.3), den(x, 0.3)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, ref, atol=1e-5, rtol=1e-5)


def test_gradient_path_is_unchanged_by_no_grad_options():
    """channels_last / inference_mode act only without a gradient: the VJP equals fp32 eager's."""
    den = _den()
    plain = SlicePrior(den, size=16)
    fast = SlicePrior(den, size=16, precision="fp32", channels_last=True, inference_mode=True)
    x, v = torch.rand(3, 1, 16, 16), torch.randn(3, 1, 16, 16)
    grads = []
    for p in (plain, fast):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(p.denoiser(xg, 0.2), xg, grad_outputs=v)
        grads.append(g)
    assert torch.equal(grads[0], grads[1])


@pytest.mark.skipif(not BF16, reason="this CPU has no native bf16")
@pytest.mark.parametrize("grad", [False, True])
def test_bf16_close_to_fp32_in_both_paths(grad):
    den = _den()
    plain, fast = SlicePrior(den, size=16), SlicePrior(den, size=16, precision="auto")
    assert fast.resolved_precision() == "bf16"
    x, v = torch.rand(4, 1, 16, 16, dtype=torch.float64), torch.randn(4, 1, 16, 16, dtype=torch.float64)
    outs, grads = [], []
    for p in (plain, fast):
        xg = x.clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            d = p.denoiser(xg, 0.2)
        outs.append(d.detach())
        if grad:
            grads.append(torch.autograd.grad(d, xg, grad_outputs=v)[0])
    assert outs[1].dtype == torch.float64  # preconditioning in the caller's dtype, network in bf16
    err = (outs[1] - outs[0]).norm() / (outs[0] - x).norm()  # relative to the network's correction
    assert 0 < err < 0.05
    if grad:
        gerr = (grads[1] - grads[0]).norm() / grads[0].norm()
        assert 0 < gerr < 0.05


@pytest.mark.skipif(not BF16, reason="this CPU has no native bf16")
def test_bf16_keeps_shipped_prior_denoising_psnr():
    """The issue's bound on the shipped prior: denoising PSNR within 0.1 dB of fp32 (phantom slices)."""
    from tomodiff.io.volumes import load_volume
    from tomodiff.priors import load

    vols = [load_volume(f"{f}_64_{k}")[0].numpy() for f in ("shepp_logan", "ellipsoids", "foam", "texture")
            for k in "ab"]
    clean = torch.from_numpy(np.stack([v[z] for v in vols for z in (24, 40)])[:, None].astype(np.float32))
    base = load("slice-64")
    fast = SlicePrior(base.net, base.size, base.info, precision="auto")
    g = torch.Generator().manual_seed(0)
    for s in (0.05, 0.2):
        noisy = clean + s * torch.randn(clean.shape, generator=g)
        with torch.no_grad():
            ref, out = base.denoiser(noisy, s), fast.denoiser(noisy, s)
        psnr = [float(10 * torch.log10(1 / ((d - clean) ** 2).mean())) for d in (ref, out)]
        assert abs(psnr[1] - psnr[0]) < 0.1, (s, psnr)


def test_patch_prior_takes_the_speed_options():
    den = _den(3)
    plain = PatchPrior(den, size=8)
    fast = PatchPrior(den, size=8, precision="auto", channels_last=True)
    x = torch.rand(1, 1, 8, 12, 8)
    with torch.no_grad():
        ref, out = plain.denoiser(x, 0.2), fast.denoiser(x, 0.2)
    assert out.shape == x.shape
    if fast.resolved_precision() == "fp32":
        torch.testing.assert_close(out, ref)
    else:
        assert (out - ref).norm() / (ref - x).norm() < 0.05


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16", "auto"])
def test_cuda_half_precisions(precision):
    den = _den().to("cuda")
    plain, fast = SlicePrior(den, size=16), SlicePrior(den, size=16, precision=precision)
    x = torch.rand(4, 1, 16, 16, device="cuda")
    with torch.no_grad():
        ref, out = plain.denoiser(x, 0.2), fast.denoiser(x, 0.2)
    assert fast.resolved_precision() in ("fp16", "bf16") and out.dtype == torch.float32
    assert (out - ref).norm() / (ref - x).norm() < 0.05
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fast.denoiser(xg, 0.2), xg, grad_outputs=torch.ones_like(x))
    assert torch.isfinite(g).all()


def test_trainable_weights_keep_their_gradient():
    """A prior whose weights require grad (fine-tuning) is never switched to the no-grad path."""
    den = _den().requires_grad_(True)
    p = SlicePrior(den, size=16, precision="fp32", channels_last=True)
    p.denoiser(torch.rand(2, 1, 16, 16), 0.2).sum().backward()
    assert den.net.stem.weight.grad is not None
