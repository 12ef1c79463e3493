"""Classifier guidance (Dhariwal & Nichol 2021; Song et al. 2021, "controllable generation").

A noise-aware classifier ``p(c | x_t, σ)`` trained on noisy images ``x_t = x0 + σ·n`` at the noise
levels a sampler visits turns an unconditional prior into a class-conditional one by Bayes' rule,

    ∇ log p(x_t | c) = ∇ log p(x_t) + ∇ log p(c | x_t),

and, with Tweedie's formula ``E[x0 | x_t] = x_t + σ² ∇ log p(x_t)``, the class-conditional denoiser is

    D_c(x, σ) = D(x, σ) + s · σ² · ∇_x log p(c | x, σ)            (s = 1: exact Bayes; s > 1: sharper)

Notation map (code → formula): ``prior.denoiser`` → D; ``classifier(x, sigma)`` → the logits of
p(·|x_t, σ); ``scale`` → s; ``target`` → c. :class:`ClassifierGuidedPrior` wraps a prior so that
``.denoiser(x, sigma)`` returns D_c and every sampler can use it unchanged;
:class:`ClassifierGuidance` is the same term as a sampler guidance (a correction Δ to x̂0), so that it
sums with measurement guidances (ΠGDM, DPS) in one sampler call.

Two networks live here: :class:`NoiseAwareClassifier` (guides: σ-conditioned, EDM input scaling)
and :class:`CleanClassifier` (a different, plain CNN trained on clean images only: used to *judge*
guided samples, never to guide them, so that samples which merely fool the guiding network do not
count). Training loops take tensors (images and labels), not phantoms:
:func:`train_noise_aware`, :func:`train_clean`. Files: :func:`save_classifier`, :func:`load_classifier`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .edm import sigma_per_sample
from .unet import NoiseEmbedding, ResBlock, _groups

__all__ = ["NoiseAwareClassifier", "CleanClassifier", "ClassifierGuidedPrior", "ClassifierGuidance",
           "grad_log_prob", "train_noise_aware", "train_clean", "save_classifier", "load_classifier",
           "accuracy", "FORMAT"]

FORMAT = "tomodiff-classifier/1"


# ------------------------------------------------------------------------------------------ networks
class NoiseAwareClassifier(nn.Module):
    """Logits of ``p(c | x_t, σ)`` for 2D images ``(B, 1, H, W)`` in data units, σ per sample.

    Input scaling as EDM's denoiser: ``u = (x − offset)·scale``, the network sees
    ``u / sqrt(σ_u² + σ_data²)`` (σ_u = σ·scale) and ``ln(σ_u)/4`` through a noise embedding that
    modulates every residual block. ``pool`` averages the input first (2: a 64² image is classified at
    32²); then one residual block and a 2× average pool per width in ``channels``, the global mean of
    the features with and without group norm, a linear head. Smooth (SiLU, average pools), so ``∇_x log p`` is well defined everywhere.
    """

    def __init__(self, classes, channels=(8, 16, 32, 64), emb_dim: int = 64, *, pool: int = 2,
                 sigma_data: float = 0.5, offset: float = 0.5, scale: float = 2.0):
        super().__init__()
        self.classes = [str(c) for c in classes]
        self.config = {"kind": "noise_aware", "classes": self.classes, "channels": list(channels),
                       "emb_dim": int(emb_dim), "pool": int(pool), "sigma_data": float(sigma_data),
                       "offset": float(offset), "scale": float(scale)}
        self.sigma_data, self.offset, self.scale, self.pool = float(sigma_data), float(offset), float(scale), int(pool)
        self.embed = NoiseEmbedding(emb_dim)
        self.stem = nn.Conv2d(1, channels[0], 3, padding=1)
        blocks, c_prev = [], channels[0]
        for c in channels:
            blocks.append(ResBlock(2, c_prev, c, emb_dim))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.GroupNorm(_groups(c_prev), c_prev)
        self.head = nn.Linear(2 * c_prev, len(self.classes))

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"NoiseAwareClassifier: expected (B, 1, H, W), got {tuple(x.shape)}")
        s = (sigma_per_sample(sigma, x) * self.scale).clamp_min(1e-8)
        u = (x - self.offset) * self.scale / (s ** 2 + self.sigma_data ** 2).sqrt()
        if self.pool > 1:
            u = F.avg_pool2d(u, self.pool)
        emb = self.embed(s.reshape(-1).log() / 4)
        h = self.stem(u)
        for i, block in enumerate(self.blocks):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            h = block(h, emb)
        # pooled features with and without normalisation: group norm alone would remove each channel's
        # mean over the image, and with it the intensity level, which tells classes apart too
        h = torch.cat([h.mean(dim=(2, 3)), F.silu(self.norm(h)).mean(dim=(2, 3))], dim=1)
        return self.head(h)

    def log_prob(self, x: torch.Tensor, sigma, target) -> torch.Tensor:
        """``log p(target | x, σ)`` per sample, ``(B,)``; ``target`` an index, a class name or ``(B,)`` indices."""
        logp = F.log_softmax(self(x, sigma), dim=1)
        return logp.gather(1, class_index(self, target, x.shape[0], x.device)[:, None])[:, 0]


class CleanClassifier(nn.Module):
    """A plain CNN on clean images ``(B, 1, H, W)``: a 5×5 then 3×3 convolutions, batch norm, ReLU and
    max pools (widths ``channels``), mean and max pooled features, dropout and a linear head. No noise
    input: it judges finished samples."""

    def __init__(self, classes, channels=(8, 16, 32, 64), dropout: float = 0.2):
        super().__init__()
        self.classes = [str(c) for c in classes]
        self.config = {"kind": "clean", "classes": self.classes, "channels": list(channels), "dropout": float(dropout)}
        layers, c_prev = [], 1
        for i, c in enumerate(channels):
            k = 5 if i == 0 else 3
            layers += [nn.Conv2d(c_prev, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_prev = c
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * c_prev, len(self.classes))

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"CleanClassifier: expected (B, 1, H, W), got {tuple(x.shape)}")
        h = self.features((x - 0.5) * 2.0)
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(self.drop(h))


def class_index(model, target, n: int, device) -> torch.Tensor:
    """``target`` (an index, a class name, or ``n`` indices) as a ``(n,)`` long tensor."""
    if isinstance(target, str):
        if target not in model.classes:
            raise ValueError(f"unknown class {target!r}; choose from {model.classes}")
        target = model.classes.index(target)
    t = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"target has {t.numel()} entries for a batch of {n}")
    if (t < 0).any() or (t >= len(model.classes)).any():
        raise ValueError(f"target indices must be in [0, {len(model.classes)}), got {t.tolist()}")
    return t


# ------------------------------------------------------------------------------------------ guidance
def grad_log_prob(classifier, x: torch.Tensor, sigma, target) -> torch.Tensor:
    """``∇_x log p(target | x, σ)`` (shape of ``x``), computed on a detached copy of ``x``.

    Samples are independent, so the gradient of the batch sum is each sample's own gradient.
    Gradients are switched on inside this call only; the result carries no graph.
    """
    params = list(classifier.parameters()) if isinstance(classifier, nn.Module) else []
    dtype = params[0].dtype if params else x.dtype  # the classifier's own precision
    with torch.enable_grad():
        xg = x.detach().to(dtype).requires_grad_(True)
        s = sigma_per_sample(sigma, xg).detach()
        lp = classifier.log_prob(xg, s, target).sum()
        (g,) = torch.autograd.grad(lp, xg)
    return g.to(x.dtype)


def _sigma_window(sigma, x, lo: float, hi: float) -> torch.Tensor:
    s = sigma_per_sample(sigma, x)
    return ((s >= lo) & (s <= hi)).to(x.dtype)


class ClassifierGuidedPrior:
    """A prior whose denoiser is ``D(x, σ) + s·σ²·∇_x log p(c | x, σ)`` (see the module docstring).

    prior: anything with ``.denoiser(x, sigma)`` (or a plain callable); classifier: a
    :class:`NoiseAwareClassifier` (or any module with ``log_prob(x, sigma, target)``); target: class
    index, class name, or one index per batch item; scale: s (0 gives the prior back, exactly);
    sigma_range: (lo, hi), guidance only for σ in that window (default: all σ).

    The guidance term is computed on a detached ``x`` and carries no graph, so a measurement guidance
    that backpropagates through this denoiser (DPS, ΠGDM's VJP) sees the prior's Jacobian only.
    Other attributes (``sigma_max``, ``size``, ``info``, ...) are the wrapped prior's.
    """

    def __init__(self, prior, classifier, target, scale: float = 1.0, *, sigma_range=(0.0, math.inf)):
        self.prior, self.classifier, self.target, self.scale = prior, classifier, target, float(scale)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        if isinstance(classifier, nn.Module):
            classifier.eval().requires_grad_(False)

    def __getattr__(self, name):  # only called for attributes not found on the wrapper
        if name == "prior":
            raise AttributeError(name)
        return getattr(self.prior, name)

    def __repr__(self):
        return (f"ClassifierGuidedPrior({self.prior!r}, target={self.target!r}, scale={self.scale:g}, "
                f"sigma_range={self.sigma_range})")

    def __call__(self, x, sigma):
        return self.denoiser(x, sigma)

    def _base(self, x, sigma):
        return self.prior.denoiser(x, sigma) if hasattr(self.prior, "denoiser") else self.prior(x, sigma)

    def correction(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The guidance term ``s·σ²·∇_x log p(c | x, σ)`` alone (zero outside ``sigma_range``)."""
        if self.scale == 0.0:
            return torch.zeros_like(x)
        s = sigma_per_sample(sigma, x)
        w = _sigma_window(sigma, x, *self.sigma_range)
        return self.scale * w * s ** 2 * grad_log_prob(self.classifier, x, sigma, self.target)

    def denoiser(self, x: torch.Tensor, sigma) -> torch.Tensor:
        x0 = self._base(x, sigma)
        if self.scale == 0.0:
            return x0
        return x0 + self.correction(x, sigma)


class ClassifierGuidance:
    """The same term as a sampler guidance: ``Δx̂0 = s·σ_t²·∇_{x_t} log p(c | x_t, σ_t)``.

    Pass it as ``guidance=`` to any sampler of :mod:`tomodiff.samplers`, alone or summed with a
    measurement guidance (``guidance=[pigdm(...), ClassifierGuidance(...)]``): the step then uses the
    class- and measurement-conditioned posterior mean. It computes its own gradient (of the
    classifier only), so it does not ask the sampler for a graph through the denoiser.
    """

    needs_grad = False

    def __init__(self, classifier, target, scale: float = 1.0, *, sigma_range=(0.0, math.inf)):
        self.classifier, self.target, self.scale = classifier, target, float(scale)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        if isinstance(classifier, nn.Module):
            classifier.eval().requires_grad_(False)

    def __repr__(self):
        return f"ClassifierGuidance(target={self.target!r}, scale={self.scale:g})"

    def __call__(self, ctx) -> torch.Tensor:
        x, sigma = ctx.x.detach(), float(ctx.sigma)
        if self.scale == 0.0 or not (self.sigma_range[0] <= sigma <= self.sigma_range[1]):
            return torch.zeros_like(x)
        return self.scale * sigma ** 2 * grad_log_prob(self.classifier, x, sigma, self.target)


# ------------------------------------------------------------------------------------------ training
def _log_uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * torch.rand(n, generator=g))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips and 90° rotations of a whole batch (the families have no preferred orientation)."""
    k = int(torch.randint(4, (1,), generator=g))
    x = torch.rot90(x, k, dims=(2, 3))
    if int(torch.randint(2, (1,), generator=g)):
        x = x.flip(3)
    return x


def _train(model, images, labels, logits, *, steps: int, batch: int, lr: float, seed: int, log, name: str) -> dict:
    """The cross-entropy loop both classifiers share: AdamW with a one-cycle schedule, batches drawn and
    augmented from one seeded generator; ``logits(x0, g)`` noises the augmented batch and runs the model."""
    g = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    t0, ema = time.time(), None
    for step in range(steps):
        idx = torch.randint(images.shape[0], (batch,), generator=g)
        loss = F.cross_entropy(logits(_augment(images[idx], g), g), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema = float(loss.detach()) if ema is None else 0.98 * ema + 0.02 * float(loss.detach())
        if log is not None and (step % 100 == 0 or step == steps - 1):
            log(f"{name} step {step + 1}/{steps} loss {ema:.4f} ({time.time() - t0:.0f} s)")
    model.eval()
    return {"steps": steps, "seconds": time.time() - t0, "loss": ema}


def train_noise_aware(model: NoiseAwareClassifier, images: torch.Tensor, labels: torch.Tensor, *, steps: int = 1500,
                      batch: int = 32, lr: float = 2e-3, sigma_min: float = 0.005, sigma_max: float = 20.0,
                      seed: int = 0, log=None) -> dict:
    """Train ``p(c | x0 + σn, σ)`` by cross-entropy, σ log-uniform in ``[sigma_min, sigma_max]`` (data
    units; EDM's sampling range for a [0, 1] prior with σ_max = 40 in [-1, 1] units is 0.001–20).
    ``images`` ``(N, 1, H, W)`` clean, ``labels`` ``(N,)``. Returns ``{"steps", "seconds", "loss"}``."""

    def logits(x0, g):
        s = _log_uniform(x0.shape[0], sigma_min, sigma_max, g)
        return model(x0 + s.view(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g), s)

    return _train(model, images, labels, logits, steps=steps, batch=batch, lr=lr, seed=seed, log=log,
                  name="noise-aware")


def train_clean(model: CleanClassifier, images: torch.Tensor, labels: torch.Tensor, *, steps: int = 800,
                batch: int = 32, lr: float = 2e-3, noise: float = 0.01, seed: int = 1, log=None) -> dict:
    """Train a clean-image classifier by cross-entropy (flips, 90° rotations, noise ≤ ``noise``)."""

    def logits(x, g):
        return model(x + noise * torch.rand(x.shape[0], 1, 1, 1, generator=g) * torch.randn(x.shape, generator=g))

    return _train(model, images, labels, logits, steps=steps, batch=batch, lr=lr, seed=seed, log=log, name="clean")


@torch.no_grad()
def accuracy(model, images: torch.Tensor, labels: torch.Tensor, sigma=None, *, batch: int = 256) -> float:
    """Share of ``images`` classified as ``labels`` (noise-aware models: at noise level ``sigma``,
    the caller adds the noise)."""
    model.eval()
    hits = 0
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch]
        logits = model(x, sigma if sigma is not None else 0.0) if isinstance(model, NoiseAwareClassifier) else model(x)
        hits += int((logits.argmax(1) == labels[i:i + batch]).sum())
    return hits / max(1, images.shape[0])


# ------------------------------------------------------------------------------------------ files
def save_classifier(model: nn.Module, path, info: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "config": dict(model.config), "info": dict(info or {}),
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}}, path)
    return path


def load_classifier(path) -> nn.Module:
    """A classifier written by :func:`save_classifier` (eval mode, no gradients on its weights)."""
    obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tomodiff classifier file (expected format {FORMAT!r})")
    c = dict(obj["config"])
    kind = c.pop("kind")
    if kind == "noise_aware":
        model = NoiseAwareClassifier(c.pop("classes"), c.pop("channels"), c.pop("emb_dim"), **c)
    elif kind == "clean":
        model = CleanClassifier(c.pop("classes"), c.pop("channels"), c.pop("dropout"))
    else:
        raise ValueError(f"{path}: unknown classifier kind {kind!r}")
    model.load_state_dict(obj["state_dict"])
    model.info = dict(obj.get("info", {}))
    return model.eval().requires_grad_(False)
