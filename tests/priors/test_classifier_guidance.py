"""Classifier guidance: D_c = D + s·σ²·∇ log p(c | x_t, σ) (tomodiff/priors/classifier.py).

The reference is a Gaussian mixture, where everything is exact: the prior's denoiser, the
noise-aware classifier p(k | x_t, σ) (the responsibilities) and the class-conditional denoiser
E[x0 | x_t, k] (component k's Gaussian posterior mean). With s = 1 classifier guidance must give the
latter to rounding; with a trained classifier it must steer samples into the requested class.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tomodiff.priors.analytic import GaussianMixturePrior
from tomodiff.priors.classifier import (CleanClassifier, ClassifierGuidance, ClassifierGuidedPrior,
                                        NoiseAwareClassifier, accuracy, class_index, grad_log_prob,
                                        load_classifier, save_classifier, train_noise_aware)
from tomodiff.priors.edm import sigma_per_sample
from tomodiff.priors.schedules import karras_sigmas
from tomodiff.samplers import ddim

SHAPE = (1, 4, 4)


def mixture(dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    means = torch.stack([torch.full(SHAPE, 0.2), torch.full(SHAPE, 0.8)]) + 0.05 * torch.randn(2, *SHAPE, generator=g)
    return GaussianMixturePrior([0.7, 0.3], means, [0.01, 0.02], dtype=dtype)


class ExactMixtureClassifier(nn.Module):
    """p(k | x_t, σ) of a GaussianMixturePrior: its responsibilities, in closed form."""

    def __init__(self, prior):
        super().__init__()
        self.prior, self.classes = prior, ["low", "high"]

    def forward(self, x, sigma):
        B, K = x.shape[0], self.prior.weights.shape[0]
        s2 = sigma_per_sample(sigma, x).reshape(B, 1, 1) ** 2
        diff = x.reshape(B, 1, -1) - self.prior.means.to(x).reshape(1, K, -1)
        tot = self.prior.var.to(x).reshape(1, K, -1) + s2
        return self.prior.weights.to(x).log() - 0.5 * (diff ** 2 / tot + tot.log()).sum(-1)

    def log_prob(self, x, sigma, target):
        logp = F.log_softmax(self(x, sigma), dim=1)
        return logp.gather(1, class_index(self, target, x.shape[0], x.device)[:, None])[:, 0]


def component_denoiser(prior, k, x, sigma):
    """E[x0 | x_t, class k] = μ_k + v_k/(v_k + σ²)(x − μ_k)."""
    s2 = sigma_per_sample(sigma, x) ** 2
    mu, v = prior.means[k].to(x), prior.var[k].to(x)
    return mu + v / (v + s2) * (x - mu)


@pytest.mark.parametrize("sigma", [0.05, 0.3, 2.0])
def test_scale_one_with_the_exact_classifier_is_the_class_conditional_denoiser(sigma):
    prior = mixture()
    clf = ExactMixtureClassifier(prior)
    x = prior.sample(6, generator=torch.Generator().manual_seed(0)) + sigma * torch.randn(6, *SHAPE, dtype=torch.float64)
    for k in (0, 1):
        guided = ClassifierGuidedPrior(prior, clf, k, 1.0)
        want = component_denoiser(prior, k, x, sigma)
        got = guided.denoiser(x, sigma)
        assert torch.allclose(got, want, atol=1e-10, rtol=0), (got - want).abs().max()
        # and the unguided mixture denoiser is *not* that (the test can fail)
        assert (prior(x, sigma) - want).abs().max() > 1e-3


def test_guided_denoiser_is_d_plus_s_sigma2_grad_log_p():
    """On a tiny network: the wrapper's output equals D + s·σ²·∇ log p with ∇ by autograd, per-sample σ
    and per-sample targets."""
    torch.manual_seed(0)
    clf = NoiseAwareClassifier(["a", "b", "c"], channels=(4, 8), emb_dim=16, pool=1)
    D = lambda x, s: 0.9 * x  # noqa: E731 (any denoiser)
    x = torch.rand(3, 1, 8, 8)
    sig = torch.tensor([0.1, 0.5, 2.0])
    target = torch.tensor([0, 2, 1])
    xg = x.clone().requires_grad_(True)
    lp = F.log_softmax(clf(xg, sig), 1)[torch.arange(3), target].sum()
    (g,) = torch.autograd.grad(lp, xg)
    for s in (0.5, 3.0):
        out = ClassifierGuidedPrior(D, clf, target, s).denoiser(x, sig)
        assert torch.allclose(out, 0.9 * x + s * sig.view(-1, 1, 1, 1) ** 2 * g, atol=1e-6)
    # a class name and s = 0 (the prior exactly)
    assert torch.equal(ClassifierGuidedPrior(D, clf, "b", 0.0).denoiser(x, sig), 0.9 * x)
    by_name = ClassifierGuidedPrior(D, clf, "c", 1.0).correction(x, sig)
    by_index = ClassifierGuidedPrior(D, clf, 2, 1.0).correction(x, sig)
    assert torch.equal(by_name, by_index) and by_name.abs().max() > 0


def test_gradient_matches_finite_differences():
    torch.manual_seed(1)
    clf = NoiseAwareClassifier(["a", "b"], channels=(4, 8), emb_dim=16, pool=2).double()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    g = grad_log_prob(clf, x, 0.3, 1)
    assert g.dtype == torch.float64 and g.shape == x.shape and not g.requires_grad
    d = torch.randn_like(x)
    eps = 1e-6
    with torch.no_grad():
        fd = (clf.log_prob(x + eps * d, 0.3, 1) - clf.log_prob(x - eps * d, 0.3, 1)).sum() / (2 * eps)
    assert abs(float((g * d).sum()) - float(fd)) < 1e-6 * max(1.0, abs(float(fd)))


def test_shapes_window_and_bad_targets():
    clf = NoiseAwareClassifier(["a", "b"], channels=(4, 8), emb_dim=16)
    assert clf(torch.rand(5, 1, 16, 16), 0.2).shape == (5, 2)
    assert CleanClassifier(["a", "b"], channels=(4, 8))(torch.rand(5, 1, 16, 16)).shape == (5, 2)
    wrap = ClassifierGuidedPrior(lambda x, s: x, clf, 0, 2.0, sigma_range=(0.5, 10.0))
    x = torch.rand(2, 1, 16, 16)
    c = wrap.correction(x, torch.tensor([0.1, 1.0]))
    assert c[0].abs().max() == 0 and c[1].abs().max() > 0
    with pytest.raises(ValueError, match="unknown class"):
        ClassifierGuidedPrior(lambda x, s: x, clf, "z", 1.0).denoiser(x, 0.3)
    with pytest.raises(ValueError, match="entries for a batch"):
        ClassifierGuidedPrior(lambda x, s: x, clf, [0, 1, 0], 1.0).denoiser(x, 0.3)
    with pytest.raises(ValueError, match="expected"):
        clf(torch.rand(2, 2, 16, 16), 0.3)


def test_wrapper_and_sampler_guidance_give_the_same_samples():
    """The guided prior as a denoiser and ClassifierGuidance as a sampler guidance are one method."""
    prior = mixture(torch.float32)
    clf = ExactMixtureClassifier(prior)
    sig = karras_sigmas(12, 0.01, 5.0)
    x_T = 5.0 * torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(0))
    a = ddim(ClassifierGuidedPrior(prior, clf, 1, 2.0).denoiser, x_T, sig, eta=0.0, progress=False)
    b = ddim(prior, x_T, sig, eta=0.0, guidance=ClassifierGuidance(clf, 1, 2.0), progress=False)
    assert torch.allclose(a, b, atol=1e-5)


def _high_share(x, prior):
    """Share of samples nearer the 'high' component's mean."""
    d = ((x.reshape(len(x), 1, -1) - prior.means.reshape(1, 2, -1).to(x)) ** 2).sum(-1)
    return float((d.argmin(1) == 1).float().mean())


def test_a_trained_noise_aware_classifier_steers_sampling():
    """Train the guide on noisy mixture samples for a few seconds; guided ancestral sampling then puts
    (almost) every sample in the rarer class, unguided sampling about its prior weight 0.3."""
    torch.manual_seed(0)
    prior = mixture(torch.float32)
    g = torch.Generator().manual_seed(1)
    k = torch.multinomial(prior.weights, 2000, replacement=True, generator=g)
    x0 = (prior.means[k] + prior.var[k].sqrt() * torch.randn(2000, *SHAPE, generator=g)).float()
    clf = NoiseAwareClassifier(["low", "high"], channels=(4, 8), emb_dim=16, pool=1)
    fit = train_noise_aware(clf, x0, k, steps=150, batch=64, lr=5e-3, sigma_min=0.01, sigma_max=5.0)
    assert math.isfinite(fit["loss"])
    noisy = x0[:500] + 0.3 * torch.randn(500, *SHAPE, generator=g)
    assert accuracy(clf, noisy, k[:500], sigma=0.3) > 0.9
    sig = karras_sigmas(16, 0.01, 5.0)
    x_T = 5.0 * torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(2))
    plain = ddim(prior, x_T, sig, eta=1.0, generator=torch.Generator().manual_seed(3), progress=False)
    guided = ddim(ClassifierGuidedPrior(prior, clf, "high", 2.0).denoiser, x_T, sig, eta=1.0,
                  generator=torch.Generator().manual_seed(3), progress=False)
    assert _high_share(plain, prior) < 0.6
    assert _high_share(guided, prior) >= 0.95


def test_save_and_load_round_trip(tmp_path):
    for model in (NoiseAwareClassifier(["a", "b"], channels=(4, 8), emb_dim=16), CleanClassifier(["a", "b"], channels=(4, 8))):
        path = save_classifier(model.eval(), tmp_path / "c.pth", {"note": 1})
        back = load_classifier(path)
        x = torch.rand(2, 1, 16, 16)
        assert torch.equal(back(x, 0.2), model(x, 0.2)) and back.info == {"note": 1}
    torch.save({"format": "other"}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a tomodiff classifier"):
        load_classifier(tmp_path / "bad.pth")


def test_shipped_classifiers_are_small_and_accurate():
    from tomodiff.demos import classifier_guidance as demo

    if not (demo.GUIDE_FILE.is_file() and demo.JUDGE_FILE.is_file()):
        pytest.skip("the family classifiers are not shipped")
    assert demo.GUIDE_FILE.stat().st_size < 1e6 and demo.JUDGE_FILE.stat().st_size < 1e6
    guide, judge = load_classifier(demo.GUIDE_FILE), load_classifier(demo.JUDGE_FILE)
    assert type(guide).__name__ != type(judge).__name__  # the judge is another network
    x, y = demo.family_slices(10, per_phantom=2, test=True)  # held-out phantoms
    keep = demo.filled(x)
    assert accuracy(judge, x[keep], y[keep]) >= 0.8
    assert accuracy(guide, x[keep] + 0.1 * torch.randn_like(x[keep]), y[keep], sigma=0.1) >= 0.8
