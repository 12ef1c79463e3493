"""Classifier guidance with the phantom prior ``slice-64``: samples of a requested phantom family.

``slice-64`` was trained on axial 64² slices of four phantom families (``shepp_logan``,
``ellipsoids``, ``foam``, ``texture``; its model card), so "family" is a class it knows without
labels. Two classifiers of that family:

- the *guide*, :class:`~tomodiff.priors.classifier.NoiseAwareClassifier`, trained on slices with
  noise σ log-uniform in [0.005, 20] (the noise levels the sampler visits), gives
  ``∇ log p(c | x_t, σ)``; the sampler's denoiser is ``D + s·σ²·∇ log p(c | x_t, σ)``
  (:class:`~tomodiff.priors.classifier.ClassifierGuidedPrior`);
- the *judge*, :class:`~tomodiff.priors.classifier.CleanClassifier`, a different network (plain
  CNN, batch norm, max pools, no noise input), another training seed and other phantoms (another
  run seed), trained on clean slices only. It labels the finished samples; it never guides.

Measured: the share of samples the judge puts in the requested class, unguided (s = 0, the same
starting noise) and at several scales s. Held-out accuracies of both classifiers are on phantoms
with seeds from ``BENCHMARK_SEEDS`` (never trained on).

``python -m tomodiff.demos.classifier_guidance`` (shipped classifiers, about 2-4 minutes on one
thread) writes ``classifier_guidance.md``, ``.json`` and ``.png`` to ``--out``;
``--train`` retrains both classifiers first (a few minutes on one CPU thread) and ``--save``
writes them to ``tomodiff/priors/weights``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .. import phantoms as P
from ..priors.classifier import (CleanClassifier, ClassifierGuidedPrior, NoiseAwareClassifier, accuracy,
                                 load_classifier, save_classifier, train_clean, train_noise_aware)
from ..priors.registry import WEIGHTS_DIR, load
from ..priors.schedules import karras_sigmas

PRIOR = "slice-64"
CLASSES = ("shepp_logan", "ellipsoids", "foam", "texture")
GUIDE_FILE = WEIGHTS_DIR / "classifier-family-noisy.pth"
JUDGE_FILE = WEIGHTS_DIR / "classifier-family-clean.pth"
GUIDE_RUN_SEED, JUDGE_RUN_SEED = 101, 202  # phantom draws of the two training sets (disjoint seeds)
TEST_SEED0 = P.BENCHMARK_SEEDS.start + 50_000  # held-out phantoms for the accuracies
Z_MAX = 0.9  # as slice-64's training slices (tomodiff.phantoms.training_slices)


def family_slices(n_per_class: int, *, size: int = 64, run_seed: int = 0, per_phantom: int = 4,
                  test: bool = False, z_max: float = Z_MAX) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (N, 1, size, size), labels (N,))``: ``n_per_class`` axial slices of each family in
    :data:`CLASSES`, ``per_phantom`` per phantom at uniform heights in ``[-z_max, z_max]``.
    Phantom seeds: :func:`tomodiff.phantoms.training_seed` of ``run_seed`` (``test=False``) or
    consecutive seeds from ``TEST_SEED0`` (held out)."""
    rng = np.random.default_rng([int(run_seed), 17, int(test)])
    images, labels = [], []
    for c, fam in enumerate(CLASSES):
        got, k = 0, 0
        while got < n_per_class:
            m = min(per_phantom, n_per_class - got)
            seed = TEST_SEED0 + 1000 * c + k if test else P.training_seed(run_seed, c, k)
            z = np.sort(rng.uniform(-z_max, z_max, m))
            images.append(P.generate_slices(fam, (size, size), seed, z))
            labels += [c] * m
            got, k = got + m, k + 1
    return torch.cat(images).unsqueeze(1), torch.tensor(labels)


def filled(images: torch.Tensor, level: float = 0.02, share: float = 0.1) -> torch.Tensor:
    """Which images are not near-empty: more than ``share`` of the pixels above ``level`` (the
    model cards' rule for benchmark slices)."""
    return (images > level).flatten(1).float().mean(1) > share


def train_classifiers(*, n_per_class: int = 1000, guide_steps: int = 4000, judge_steps: int = 1000,
                      log=print) -> dict:
    """Train the guide and the judge (see the module docstring). Returns the two models and facts."""
    t0 = time.time()
    xg, yg = family_slices(n_per_class, run_seed=GUIDE_RUN_SEED)
    xj, yj = family_slices(n_per_class, run_seed=JUDGE_RUN_SEED)
    data_s = time.time() - t0
    log(f"training data: 2 x {len(yg)} slices in {data_s:.0f} s")
    torch.manual_seed(0)
    guide = NoiseAwareClassifier(CLASSES)
    g_fit = train_noise_aware(guide, xg, yg, steps=guide_steps, seed=0, log=log)
    torch.manual_seed(1)
    judge = CleanClassifier(CLASSES)
    j_fit = train_clean(judge, xj, yj, steps=judge_steps, seed=1, log=log)
    return {"guide": guide, "judge": judge, "guide_fit": g_fit, "judge_fit": j_fit, "data_seconds": data_s,
            "n_train": len(yg)}


def held_out_accuracy(guide, judge, *, n_per_class: int = 200, sigmas=(0.0, 0.1, 0.5, 1.0, 2.0, 5.0),
                      seed: int = 0) -> dict:
    """Accuracies on held-out phantoms: the judge on clean slices (all, and not near-empty), the
    guide at each noise level σ (noise added with ``seed``)."""
    x, y = family_slices(n_per_class, per_phantom=2, test=True)
    keep = filled(x)
    g = torch.Generator().manual_seed(seed)
    guide_acc = {}
    for s in sigmas:
        xn = x + s * torch.randn(x.shape, generator=g)
        guide_acc[f"{s:g}"] = accuracy(guide, xn, y, sigma=max(s, 1e-3))
    return {"n": len(y), "n_filled": int(keep.sum()), "judge": accuracy(judge, x, y),
            "judge_filled": accuracy(judge, x[keep], y[keep]), "guide_clean": accuracy(guide, x, y, sigma=1e-3),
            "guide_by_sigma": guide_acc}


def sample(prior, guide, targets: torch.Tensor, scale: float, *, steps: int = 32, eta: float = 1.0,
           seed: int = 0, sigma_range=(0.0, math.inf), progress: bool = False) -> torch.Tensor:
    """Samples ``(len(targets), 1, 64, 64)`` of ``prior`` guided towards ``targets`` at ``scale``,
    with :func:`tomodiff.samplers.ddim` (η = ``eta``; 1: ancestral) from σ_max = ``prior.sigma_max``.
    The same ``seed`` gives the same starting noise and step noise at every scale."""
    from ..samplers import ddim  # samplers sit below demos; imported here to keep the module light

    guided = ClassifierGuidedPrior(prior, guide, targets, scale, sigma_range=sigma_range)
    sig = karras_sigmas(steps, 0.002, prior.sigma_max)
    g = torch.Generator().manual_seed(seed)
    x_T = float(sig[0]) * torch.randn(len(targets), 1, prior.size, prior.size, generator=g)
    out = ddim(guided.denoiser, x_T, sig, eta=eta, generator=g, progress=progress)
    return out.clamp(0.0, 1.0)


@torch.no_grad()
def judge_labels(judge, x: torch.Tensor) -> torch.Tensor:
    return judge(x).argmax(1)


def run(*, scales=(0.0, 1.0, 2.0, 4.0, 8.0), n_per_class: int = 16, steps: int = 32, eta: float = 1.0,
        seed: int = 0, guide=None, judge=None, prior=None, log=print) -> dict:
    """Sample ``n_per_class`` images per family at each guidance scale and judge them.

    Returns per scale: the judge's hit rate (overall, per requested class), its confusion matrix
    (requested × judged), the guide's own hit rate on the same samples, the share of near-empty
    samples, the wall time; and ``samples`` (scale → tensor) for the figure.
    """
    prior = load(PRIOR) if prior is None else prior
    guide = load_classifier(GUIDE_FILE) if guide is None else guide
    judge = load_classifier(JUDGE_FILE) if judge is None else judge
    targets = torch.arange(len(CLASSES)).repeat_interleave(n_per_class)
    rows, samples = [], {}
    for s in scales:
        t0 = time.time()
        x = sample(prior, guide, targets, s, steps=steps, eta=eta, seed=seed)
        sec = time.time() - t0
        got = judge_labels(judge, x)
        with torch.no_grad():
            by_guide = guide(x, 0.002).argmax(1)
        conf = torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.long)
        for t, j in zip(targets.tolist(), got.tolist()):
            conf[t, j] += 1
        per_class = {c: float((got[targets == i] == i).float().mean()) for i, c in enumerate(CLASSES)}
        row = {"scale": float(s), "hit_rate": float((got == targets).float().mean()), "per_class": per_class,
               "guide_hit_rate": float((by_guide == targets).float().mean()),
               "empty_share": float((~filled(x)).float().mean()), "confusion": conf.tolist(),
               "seconds": sec, "n": len(targets)}
        log(f"s={s:g}: judge hit rate {row['hit_rate']:.3f} {per_class} guide {row['guide_hit_rate']:.3f} "
            f"({sec:.0f} s)")
        rows.append(row)
        samples[float(s)] = x
    return {"prior": PRIOR, "classes": list(CLASSES), "steps": steps, "eta": eta, "seed": seed,
            "n_per_class": n_per_class, "rows": rows, "samples": samples}


def figure(result: dict, path, *, per_row: int = 6) -> Path:
    """Rows = requested classes, one panel per scale, ``per_row`` samples each; a red frame marks
    the samples the judge puts in another class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = [r["scale"] for r in result["rows"]]
    n, k = result["n_per_class"], len(CLASSES)
    per_row = min(per_row, n)
    fig, axes = plt.subplots(k, len(scales), figsize=(2.0 * len(scales) * per_row / 4, 2.1 * k), squeeze=False)
    for j, (s, row) in enumerate(zip(scales, result["rows"])):
        x = result["samples"][s]
        conf_ok = [None] * len(x)
        for i in range(k):
            tiles = x[i * n:i * n + per_row, 0]
            ax = axes[i, j]
            ax.imshow(torch.cat(list(tiles), dim=1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(CLASSES[i], fontsize=9)
            if i == 0:
                ax.set_title(f"s = {s:g}: {100 * row['hit_rate']:.0f}% hit", fontsize=9)
        del conf_ok
    fig.suptitle(f"classifier guidance with {PRIOR}: rows = requested family (hit = judged by an independent "
                 f"clean-image classifier, all {n} samples per class)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: dict, acc: dict, fits: dict | None, out) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    png = figure(result, out / "classifier_guidance.png")
    L = ["# Classifier guidance: samples of a requested phantom family",
         "",
         f"Written by `python -m tomodiff.demos.classifier_guidance` (`tomodiff/demos/classifier_guidance.py`). "
         f"Prior `{PRIOR}` (trained on the four families, unlabelled); sampler `tomodiff.samplers.ddim`, "
         f"η = {result['eta']:g}, {result['steps']} steps (Karras σ from {load(PRIOR).sigma_max:g} to 0.002), "
         f"denoiser `D + s·σ²·∇ log p(c | x_t, σ)` (`ClassifierGuidedPrior`). "
         f"{result['n_per_class']} samples per requested class, the same starting noise at every s "
         f"(s = 0 is the unguided prior).",
         "",
         "A sample *hits* when the **judge** — an independent clean-image classifier (other architecture, "
         "training seed and phantoms; it never guides) — puts it in the requested class.",
         "",
         "| s | hit rate (judge) | " + " | ".join(CLASSES) + " | guide agrees | near-empty | time (s) |",
         "|---:|---:|" + "---:|" * len(CLASSES) + "---:|---:|---:|"]
    for r in result["rows"]:
        L.append(f"| {r['scale']:g} | **{100 * r['hit_rate']:.1f}%** | "
                 + " | ".join(f"{100 * r['per_class'][c]:.0f}%" for c in CLASSES)
                 + f" | {100 * r['guide_hit_rate']:.1f}% | {100 * r['empty_share']:.0f}% | {r['seconds']:.0f} |")
    L += ["", "Unguided (s = 0), the judge's classes of all samples (what the prior draws by itself): "
          + ", ".join(f"{c} {sum(r[i] for r in result['rows'][0]['confusion'])}"
                      for i, c in enumerate(CLASSES)) + f" of {result['rows'][0]['n']}.",
          "", "Confusion (rows requested, columns judged) at each s:", ""]
    for r in result["rows"]:
        L.append(f"- s = {r['scale']:g}: " + "; ".join(f"{CLASSES[i]} → {row}" for i, row in enumerate(r["confusion"])))
    L += ["", "## The classifiers (held-out phantoms, seeds from `BENCHMARK_SEEDS`)", "",
          f"{acc['n']} held-out slices ({acc['n_filled']} not near-empty: > 10% of pixels above 0.02).", "",
          f"- judge (`CleanClassifier`, clean slices): accuracy {100 * acc['judge']:.1f}% "
          f"(not near-empty: {100 * acc['judge_filled']:.1f}%)",
          "- guide (`NoiseAwareClassifier`) by noise level σ: "
          + ", ".join(f"σ {s}: {100 * a:.1f}%" for s, a in acc["guide_by_sigma"].items())]
    if fits:
        L += ["", f"Training (1 CPU thread, shared machine): data {fits['data_seconds']:.0f} s for 2 × "
              f"{fits['n_train']} slices; guide {fits['guide_fit']['steps']} steps in "
              f"{fits['guide_fit']['seconds']:.0f} s; judge {fits['judge_fit']['steps']} steps in "
              f"{fits['judge_fit']['seconds']:.0f} s."]
    L += ["", f"![samples]({png.name})", ""]
    (out / "classifier_guidance.md").write_text("\n".join(L))
    js = {k: v for k, v in result.items() if k != "samples"}
    (out / "classifier_guidance.json").write_text(json.dumps({"result": js, "accuracy": acc,
                                                             "fits": {k: v for k, v in (fits or {}).items()
                                                                      if k not in ("guide", "judge")}}, indent=1))
    return out / "classifier_guidance.md"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tomodiff.demos.classifier_guidance", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="classifier_guidance_out", help="folder for the report, figure and JSON")
    ap.add_argument("--scales", default="0,1,2,4,8", help="guidance scales s (comma-separated; 0 = unguided)")
    ap.add_argument("--n", type=int, default=16, help="samples per class")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", action="store_true", help="retrain both classifiers first")
    ap.add_argument("--save", action="store_true", help="with --train: write them to tomodiff/priors/weights")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    fits, guide, judge = None, None, None
    if a.train:
        fits = train_classifiers()
        guide, judge = fits["guide"], fits["judge"]
        if a.save:
            info = {k: v for k, v in fits.items() if k not in ("guide", "judge")}
            save_classifier(guide, GUIDE_FILE, {**info, "fit": fits["guide_fit"], "run_seed": GUIDE_RUN_SEED})
            save_classifier(judge, JUDGE_FILE, {**info, "fit": fits["judge_fit"], "run_seed": JUDGE_RUN_SEED})
    guide = load_classifier(GUIDE_FILE) if guide is None else guide.eval()
    judge = load_classifier(JUDGE_FILE) if judge is None else judge.eval()
    if fits is None and "fit" in getattr(guide, "info", {}):
        fits = {**guide.info, "guide_fit": guide.info["fit"], "judge_fit": judge.info["fit"]}
    acc = held_out_accuracy(guide, judge)
    print(f"held-out accuracy: {acc}")
    res = run(scales=[float(s) for s in a.scales.split(",")], n_per_class=a.n, steps=a.steps, eta=a.eta,
              seed=a.seed, guide=guide, judge=judge)
    print(f"wrote {write_report(res, acc, fits, a.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
