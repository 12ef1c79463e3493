"""Quality figures of a prior on the held-out benchmark set, and its model card.

``python -m benchmarks.model_card RUN_DIR`` (from the repository root) exports the run's EMA weights
into ``tomodiff/priors/weights/<name>.pt`` (``tomodiff train-prior RUN_DIR --export FILE`` writes
the weights alone), measures denoising PSNR at σ = 0.05, 0.1, 0.2 on the benchmark set's phantoms
(seeds disjoint from training) against a Gaussian filter whose width is tuned on the same data (an
oracle baseline), draws a grid of unconditional samples and writes the model card ``<name>.md`` +
``<name>.json`` (with the weights' sha256).

A prior trained on volume files (``ct-slice``) is scored instead on the run's held-out test
volumes (:class:`~tomodiff.training.heldout.HeldOutScore` at each σ, at native, 2× and 4× coarser
scale), with slice-64 on the same slices for comparison, and its card gains the data split with
each volume's source and licence (from the corpus's ``SOURCES.md``) and the held-out learning curve
(``heldout.jsonl``: denoising gain against steps and CPU hours).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # the object API: no pyplot, so no backend to choose
from scipy import ndimage

from tomodiff.training.ct_data import load_volumes
from tomodiff.training.heldout import FILTER_WIDTHS, ConditionalScore, HeldOutScore, psnr
from tomodiff.priors.registry import WEIGHTS_DIR, available, load, load_file, sha256
from tomodiff.training.train import TrainConfig, export, save_sample_grid

from .volumes import benchmark_volumes

SIGMAS = (0.05, 0.1, 0.2)


def _family(fname: str) -> str:
    return fname.rsplit("_", 2)[0] if fname.count("_") >= 2 else fname.split(".")[0]


def denoising_table(prior, volumes: dict, *, sigmas=SIGMAS, mode: str = "slice", slice_step: int = 2,
                    seed: int = 0, min_fill: float = 0.1) -> dict:
    """Mean PSNR (dB) of noisy input, best Gaussian filter and the prior's denoiser, per σ.

    mode "slice": axial slices (every ``slice_step``-th, skipping near-empty ones: fewer than
    ``min_fill`` of the pixels above 0.02, whose PSNR would flatter any denoiser) as a
    ``(N, 1, Y, X)`` batch, 2D filter; mode "volume": whole volumes ``(1, 1, Z, Y, X)``, 3D filter.
    Noise: ``x + σ·n``, n ~ N(0, 1) seeded by ``seed``; the filter width (voxels) is chosen per σ
    for the best mean PSNR. Also returns per-family means (family = file name without its suffix).
    """
    if mode == "slice":
        items, labels = [], []
        for f, v in volumes.items():
            sl = [z for z in v[::slice_step] if (z > 0.02).mean() >= min_fill]
            items += sl
            labels += [_family(f)] * len(sl)
        clean = np.stack(items)[:, None]  # (N, 1, Y, X)
        axes, fax = (1, 2, 3), (0, 0, 1, 1)
    else:
        clean = np.stack(list(volumes.values()))[:, None]  # (N, 1, Z, Y, X)
        labels = [_family(f) for f in volumes]
        axes, fax = (1, 2, 3, 4), (0, 0, 1, 1, 1)
    labels = np.array(labels)
    rng = np.random.default_rng(seed)
    rows, per_family = [], {}
    for s in sigmas:
        noisy = (clean + s * rng.standard_normal(clean.shape)).astype(np.float32)
        best = max(((w, psnr(ndimage.gaussian_filter(noisy, [f * w for f in fax]), clean, axes)) for w in FILTER_WIDTHS),
                   key=lambda t: t[1].mean())
        t0 = time.perf_counter()
        with torch.no_grad():
            den = torch.cat([prior.denoiser(torch.from_numpy(noisy[i:i + 64]), s)
                             for i in range(0, len(noisy), 64)]).numpy()
        dt = time.perf_counter() - t0
        p_prior = psnr(den, clean, axes)
        rows.append({"sigma": s, "noisy_psnr": round(float(psnr(noisy, clean, axes).mean()), 2),
                     "gaussian_psnr": round(float(best[1].mean()), 2), "gaussian_width_vox": best[0],
                     "prior_psnr": round(float(p_prior.mean()), 2), "prior_seconds": round(dt, 1)})
        for fam in sorted(set(labels)):
            m = labels == fam
            per_family.setdefault(fam, {})[str(s)] = {"gaussian_psnr": round(float(best[1][m].mean()), 2),
                                                      "prior_psnr": round(float(p_prior[m].mean()), 2)}
    return {"mode": mode, "n_items": int(len(clean)), "item_shape": list(clean.shape[2:]),
            "files": sorted(volumes), "slice_step": slice_step if mode == "slice" else None,
            "min_fill": min_fill if mode == "slice" else None, "rows": rows, "per_family": per_family}


def _table_md(t: dict) -> str:
    lines = ["| σ | noisy | Gaussian filter (best width, vox) | prior | gain over filter |", "|---|---|---|---|---|"]
    for r in t["rows"]:
        lines.append(f"| {r['sigma']} | {r['noisy_psnr']:.2f} | {r['gaussian_psnr']:.2f} ({r['gaussian_width_vox']}) | "
                     f"{r['prior_psnr']:.2f} | {r['prior_psnr'] - r['gaussian_psnr']:+.2f} |")
    fams = t.get("per_family", {})
    if len(fams) > 1:
        sig = [str(r["sigma"]) for r in t["rows"]]
        lines += ["", "Per family, prior / Gaussian filter (dB):", "", "| family | " + " | ".join(f"σ = {s}" for s in sig) + " |",
                  "|---|" + "---|" * len(sig)]
        for fam, d in fams.items():
            lines.append(f"| {fam} | " + " | ".join(f"{d[s]['prior_psnr']:.2f} / {d[s]['gaussian_psnr']:.2f}" for s in sig) + " |")
    return "\n".join(lines)


def write_model_card(weights: Path, info: dict, tables: dict[str, dict], grid_png: str | None, notes: str = "") -> Path:
    """``<weights>.json`` (machine-readable, with sha256) and ``<weights>.md`` next to the weights."""
    weights = Path(weights)
    tr = info["training"]
    card = {"name": info["name"], "file": weights.name, "sha256": sha256(weights), "kind": info["kind"],
            "size": info["size"], "n_params": info["n_params"], "training": tr, "denoising": tables,
            "samples_png": grid_png, "notes": notes}
    weights.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    cfg = tr["config"]
    data = (f"phantom families {', '.join(cfg['families'])} generated on the fly (seeds in TRAIN_SEEDS, "
            f"run seed {cfg['run_seed']})" if not cfg.get("data") else
            f"{len(_names(cfg['data']))} real CT volumes (see the data split below)")
    unit = "axial slices" if info["kind"] == "slice" else f"patches cut from {cfg['source_size']}³ phantoms"
    if cfg.get("data") and info["kind"] == "slice" and cfg.get("augment", False):
        lo, hi = cfg.get("scale_range", (1, 4))
        unit = (f"crops of slices in every orientation (axial; coronal and sagittal where voxels are near-isotropic), "
                f"a region of {lo:g}–{hi:g}× the edge resampled to {info['size']}² (voxels {lo:g}–{hi:g}× coarser than "
                f"the source), flips, 90° rotations, gain and window jitter; fully convolutional, so it applies to any "
                f"slice size (multiples of 8 directly, others padded)")
    md = [f"# Model card: `{info['name']}`", "",
          f"- Kind: {info['kind']} prior, {info['size']}{'²' if info['kind'] == 'slice' else '³'} {unit}; "
          f"`tomodiff.priors.load(\"{info['name']}\").denoiser(x, sigma)`, x and σ in [0, 1] data units.",
          f"- Network: tomodiff U-Net (`tomodiff/priors/unet.py`), widths {cfg['channels']}, "
          f"{info['n_params']:,} parameters, EDM preconditioning (σ_data = {cfg['sigma_data']:.3f} in the "
          f"network's [-1, 1] space); weights are the EMA (decay {cfg['ema_decay']}).",
          f"- Training data: {data}.",
          f"- Training: {tr['steps']} steps of batch {cfg['batch']} ({tr['steps'] * cfg['batch']:,} samples), "
          f"Adam lr {cfg['lr']}, {cfg['noise']} σ distribution, wall time {tr['wall_time_s'] / 60:.0f} min "
          f"({tr['wall_time_s'] / max(tr['steps'], 1):.2f} s/step) on {tr['hardware']}.",
          f"- File: `{weights.name}`, sha256 `{card['sha256']}`.", ""]
    for key, t in tables.items():
        md += [f"## Denoising PSNR (dB), {key}", "",
               f"{t['n_items']} {t['mode']}s of shape {t['item_shape']} from {', '.join(t['files'])}"
               + (f" (axial slices 0, {t['slice_step']}, {2 * t['slice_step']}, ... of each volume, without near-empty "
                  f"slices: < {t['min_fill']:.0%} of pixels above 0.02)" if t.get("slice_step") else "")
               + ". Noise x + σ·n; the Gaussian filter's width is tuned per σ on this same data (oracle).", "",
               _table_md(t), ""]
    if grid_png:
        md += ["## Unconditional samples", "", f"![samples]({grid_png})", ""]
    if notes:
        md += ["## Notes", "", notes, ""]
    weights.with_suffix(".md").write_text("\n".join(md))
    return weights.with_suffix(".json")


def real_ct_table(prior, volumes, sigmas=SIGMAS, n_per_volume: int = 12, *, context: int = 0) -> dict:
    """Denoising PSNR of ``prior`` vs the best Gaussian filter on held-out CT slices, per σ and scale.

    context k > 0: each item is a ``(1, 1, 2k + 1, H, W)`` stack of noisy neighbours, denoised as a
    volume and scored on its centre slice (a 2.5D prior sees the neighbours, a 2D one does not)."""
    rows = []
    for s in sigmas:
        score = HeldOutScore(volumes, sigma=s, n_per_volume=n_per_volume, context=context)
        r = score(prior.denoiser)
        for f, d in r["per_factor"].items():
            shape = tuple(score.sets[f][0][0].shape[2:])
            rows.append({"sigma": s, "factor": f, "n": len(score.sets[f][0]), "example_shape": list(shape), **d})
        rows.append({"sigma": s, "factor": "mean", "gain": r["gain"]})
    return {"volumes": [v.name for v in volumes], "rows": rows}


def real_ct_table_md(t: dict, compare: dict | None = None, compare_name: str = "slice-64") -> str:
    head = "| σ | scale | slices (e.g. shape) | Gaussian filter (oracle) | prior | gain |"
    sep = "|---|---|---|---:|---:|---:|"
    if compare:
        head, sep = head + f" {compare_name} | {compare_name} gain |", sep + "---:|---:|"
    lines = [head, sep]
    other = {(r["sigma"], r["factor"]): r for r in (compare or {}).get("rows", [])}
    for r in t["rows"]:
        o = other.get((r["sigma"], r["factor"]))
        if r["factor"] == "mean":
            line = f"| {r['sigma']} | **mean** | | | | **{r['gain']:+.2f}** |"
            if compare:
                line += f" | **{o['gain']:+.2f}** |"
        else:
            scale = "native" if r["factor"] == 1 else f"{r['factor']}× coarser"
            h, w = r["example_shape"][-2:]  # a 2.5D stack is (2k + 1, H, W)
            line = (f"| {r['sigma']} | {scale} | {r['n']} ({h}×{w}) | {r['gaussian_psnr']:.2f} "
                    f"| {r['prior_psnr']:.2f} | {r['gain']:+.2f} |")
            if compare:
                line += f" {o['prior_psnr']:.2f} | {o['gain']:+.2f} |"
        lines.append(line)
    return "\n".join(lines)


def plot_learning_curve(heldout_jsonl, png, ylabel: str = "gain over best Gaussian filter [dB]\n"
                        "(σ = 0.1, mean of 3 scales)") -> Path:
    """Held-out denoising gain (σ = 0.1) against steps and against CPU hours, validation and test."""
    recs = [json.loads(line) for line in Path(heldout_jsonl).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in recs]
    hours = [r["elapsed_s"] / 3600 for r in recs]
    fig = Figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 2)
    for ax, x, label in ((axes[0], steps, "training steps"), (axes[1], hours, "wall-clock hours (1 torch thread)")):
        ax.plot(x, [r["val"]["gain"] for r in recs], marker=".", label="validation (selects the checkpoint)")
        if "test" in recs[0]:
            ax.plot(x, [r["test"]["gain"] for r in recs], marker=".", label="test (reported only)")
        best = max(recs, key=lambda r: r["val"]["gain"])
        ax.axvline(best["step"] if x is steps else best["elapsed_s"] / 3600, color="k", lw=0.8, ls="--")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=8)
    fig.suptitle("held-out denoising during training (dashed: the shipped checkpoint)", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    return Path(png)


def corpus_rows(names, sources_md) -> list[str]:
    """The rows of the corpus's SOURCES.md table for these volume names (source and licence)."""
    text = Path(sources_md).read_text() if Path(sources_md).exists() else ""
    return [line for line in text.splitlines() if any(line.startswith(f"| `{n}`") for n in names)]


def _names(paths) -> list[str]:
    paths = [paths] if isinstance(paths, str) else list(paths or [])
    return [Path(p).name.split(".")[0] for p in paths]


def data_split_md(cfg: dict) -> str:
    """Markdown of the run's train / validation / test volumes, with the corpus's attribution."""
    train, val, test = _names(cfg.get("data")), _names(cfg.get("val_data")), _names(cfg.get("test_data"))
    corpus = next((Path(p).parent for p in ([cfg["data"]] if isinstance(cfg["data"], str) else cfg["data"])), Path("."))
    md = ["Split by whole volumes; no slice of a validation or test volume is ever trained on.", "",
          f"- **Train** ({len(train)}): " + ", ".join(f"`{n}`" for n in train),
          "- **Validation** (selects the shipped checkpoint): " + ", ".join(f"`{n}`" for n in val),
          "- **Test** (learning curve and the tables below only; never used for any choice): "
          + ", ".join(f"`{n}`" for n in test), ""]
    rows = corpus_rows(train + val + test, corpus / "SOURCES.md")
    if rows:
        md += ["Sources and licences (from the corpus's `SOURCES.md`; keep this attribution with the weights):", "",
               "| name | shape (z,y,x) / mm | kind | source (repository @ commit : path) | licence |",
               "|---|---|---|---|---|", *rows, ""]
    missing = [n for n in train + val + test if not any(r.startswith(f"| `{n}`") for r in rows)]
    if missing:
        md += ["Not from the corpus: " + ", ".join(f"`{n}`" for n in missing)
               + " (`real_head_vtk`: the benchmark set's VTK head CT, see `phantoms/README.md`).", ""]
    return "\n".join(md)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.model_card", description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", default=None, help="weights path (default tomodiff/priors/weights/<name>.pt)")
    ap.add_argument("--notes", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", type=int, default=16, help="number of unconditional samples in the PNG grid")
    ap.add_argument("--reuse-grid", action="store_true", help="keep an existing <name>-samples.png")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    ckpt = Path(a.run_dir) / "checkpoint.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    name = state["config"]["name"]
    out = Path(a.out) if a.out else WEIGHTS_DIR / f"{name}.pt"
    export(ckpt, out)
    prior = load_file(out)
    info = prior.info
    grid_png = out.with_name(f"{name}-samples.png")
    if state["config"].get("context", 0):  # a 2.5D network samples stacks, not the images of this grid
        grid_png = None
    elif not (a.reuse_grid and grid_png.exists()):
        save_sample_grid(prior.net, TrainConfig(**state["config"]), grid_png, a.grid, seed=0)
    tables = {}
    cfg = state["config"]
    if cfg.get("conditional") and cfg.get("test_data"):
        return _main_conditional(a, out, prior, info, state, grid_png)
    if info["kind"] == "slice" and cfg.get("test_data"):
        return _main_real_ct(a, out, prior, info, state, grid_png)
    if info["kind"] == "slice":
        tables["benchmark 64³ phantoms"] = denoising_table(prior, benchmark_volumes(), mode="slice")
        tables["real head CT (out of distribution)"] = denoising_table(prior, benchmark_volumes(real=True), mode="slice")
    else:
        vols = benchmark_volumes()
        sub = {k: vols[k] for k in sorted(vols)[::2]}
        tables["benchmark 64³ phantoms"] = denoising_table(prior, sub, mode="volume")
        if "slice-64" in available() and name != "slice-64":  # the 2D prior on the same volumes, for comparison
            tables["for comparison: slice-64 on the same volumes"] = denoising_table(
                load("slice-64", precision="fp32"), sub, mode="volume")
    write_model_card(out, info, tables, grid_png.name, a.notes)
    for k, t in tables.items():
        print(k)
        print(_table_md(t))
    return 0


def _main_real_ct(a, out: Path, prior, info: dict, state: dict, grid_png: Path) -> int:
    """Model card of a prior trained on volume files, scored on the run's held-out test volumes."""
    cfg = state["config"]
    test = load_volumes(cfg["test_data"])
    k = int(cfg.get("context", 0))
    t = real_ct_table(prior, test, context=k)
    if k:  # a 2.5D prior against the 2D one it extends, on the centre slices of the same stacks
        ref_name = "ct-slice"
        ref = real_ct_table(load("ct-slice", precision="fp32"), test, context=k)
    else:
        ref_name = "slice-64"
        ref = real_ct_table(load("slice-64", precision="fp32"), test) if info["name"] != "slice-64" else None
    curve_png = out.with_name(f"{info['name']}-curve.png")
    run_dir = Path(a.run_dir)
    if (run_dir / "heldout.jsonl").exists():
        plot_learning_curve(run_dir / "heldout.jsonl", curve_png)
    phantoms = denoising_table(prior, benchmark_volumes(), mode="slice")
    sel = info.get("selected_by", {})
    val_gain = sel.get("held_out_val", {}).get("gain", float("nan"))
    notes = "\n".join([
        "### Data split", "", data_split_md(cfg),
        "### Held-out learning curve", "",
        f"![learning curve]({curve_png.name})", "",
        f"Scored every {cfg['eval_every']} steps on fixed noisy slices of the validation and test volumes "
        "(σ = 0.1, native, 2× and 4× coarser; gain over the oracle Gaussian filter; `tomodiff/training/heldout.py`). "
        "The shipped weights are the EMA at the step with the best *validation* "
        f"gain (step {sel.get('step', state['step'])}, validation gain {val_gain:+.2f} dB); "
        "the test volumes never chose anything. Raw numbers: `heldout.jsonl` in the run directory.", "",
        "### Denoising held-out real CT", "",
        f"Test volumes {', '.join(t['volumes'])}: 12 axial slices each at native, 2× and 4× coarser scale (block "
        "averaging), noise x + σ·n, the Gaussian filter's width tuned per σ and scale on these same slices "
        "(an oracle). " + (f"{2 * k + 1}-slice stacks, scored on the centre slice; ct-slice (2D) on the same "
                            "stacks for comparison." if k else
                            "slice-64 (phantom-trained) on the same slices for comparison."), "",
        real_ct_table_md(t, ref, ref_name), "",
        "### Denoising the benchmark's 64³ phantoms (out of this prior's distribution)", "",
        _table_md(phantoms), "",
        *( [a.notes, ""] if a.notes else [] )])
    write_model_card(out, info, {}, None if grid_png is None else grid_png.name, notes)
    card = json.loads(out.with_suffix(".json").read_text())
    card["denoising"] = {"real_ct_test": t, f"{ref_name.replace('-', '')}_same_slices": ref,
                         "benchmark 64³ phantoms": phantoms}
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(real_ct_table_md(t, ref, ref_name))
    return 0


def conditional_table(prior, volumes, views=(4, 8, 16, 32), noise: float = 0.01, sigma: float = 1.0) -> dict:
    """One-step conditional estimates at ``sigma`` (x + σ·n given the FBP of a simulated scan) against
    that FBP, on held-out slices, per volume and view count (:class:`ConditionalScore`)."""
    score = ConditionalScore(volumes, views=views, noise=noise, sigma=sigma)
    guided = lambda x, s, c: prior.net(x, s, c)  # noqa: E731 (w = 0: the conditional half itself)
    return {"volumes": [v.name for v in volumes], "views": list(views), "noise": noise, "sigma": sigma,
            **score(guided, device="cpu")}


def conditional_table_md(t: dict) -> str:
    lines = ["| scale | views | FBP (Hann) | one-step estimate | gain |", "|---|---:|---:|---:|---:|"]
    for key, d in t["per_setting"].items():
        factor, views = key.rsplit("_", 1)  # e.g. "x2_8views": 2× coarser than the volume, 8 views
        where = "native" if factor == "x1" else f"{factor[1:]}× coarser"
        lines.append(f"| {where} | {views.replace('views', '')} | {d['fbp_psnr']:.2f} | {d['prior_psnr']:.2f} "
                     f"| {d['gain']:+.2f} |")
    lines.append(f"| **mean** | | | | **{t['gain']:+.2f}** |")
    return "\n".join(lines)


def _main_conditional(a, out: Path, prior, info: dict, state: dict, grid_png: Path) -> int:
    """Model card of a conditional prior (classifier-free guidance): held-out one-step conditional
    estimates against the FBP they were given, the unconditional half's denoising, the learning curve."""
    cfg = state["config"]
    test = load_volumes(cfg["test_data"])
    cond = conditional_table(prior, test)
    uncond = real_ct_table(prior, test, sigmas=(0.1,))
    curve_png = out.with_name(f"{info['name']}-curve.png")
    run_dir = Path(a.run_dir)
    if (run_dir / "heldout.jsonl").exists():
        plot_learning_curve(run_dir / "heldout.jsonl", curve_png, ylabel="gain over the FBP it is given [dB]\n"
                            "(one-step estimate at σ = 1, 8/16 views)")
    sel = info.get("selected_by", {})
    val_gain = sel.get("held_out_val", {}).get("gain", float("nan"))
    notes = "\n".join([
        "### What it is", "",
        "A conditional denoiser D(x, σ, c): c is the FBP (Hann) of a simulated parallel-beam scan of the same "
        f"slice, with {cfg.get('cond_views', (4, 64))[0]}–{cfg.get('cond_views', (4, 64))[1]} views (log-uniform), "
        f"a limited arc with probability {cfg.get('cond_arc_prob', 0.3)} and 0.2–3 % noise "
        "(`tomodiff/training/ct_pairs.py`). "
        f"The condition is dropped in {cfg.get('cond_dropout', 0.15):.0%} of the training samples, so the same "
        "network is also an unconditional prior. `reconstruct(..., method=\"cfg\")` samples with "
        "(1 + w)·D(x, σ, c) − w·D(x, σ) inside DDS's data consistency, c the FBP of the data "
        "(`tomodiff.methods.CFG`).", "",
        "### Data split", "", data_split_md(cfg),
        "### Held-out learning curve", "",
        f"![learning curve]({curve_png.name})", "",
        f"Scored every {cfg['eval_every']} steps: the one-step conditional estimate at σ = 1 from fixed noisy "
        "slices of the validation and test volumes, against the FBP it was given (8 and 16 views, 1% noise). "
        "The shipped weights are the EMA at the step with the best *validation* gain "
        f"(step {sel.get('step', state['step'])}, validation gain {val_gain:+.2f} dB); the test volumes chose nothing.",
        "",
        "### One-step conditional estimates on the held-out test volumes", "",
        f"Test volumes {', '.join(cond['volumes'])}; σ = {cond['sigma']:g}, noise {cond['noise']:.0%}; 6 slices per "
        "volume at each scale (block averaging), the mean over the volumes.", "",
        conditional_table_md(cond), "",
        "### The unconditional half: denoising the held-out test volumes", "",
        real_ct_table_md(uncond), "",
        "### Reconstructions", "",
        "Held-out reconstructions with `method=\"cfg\"` against FBP, SIRT, TV (weight rule), oracle TV and `auto`: "
        "`benchmarks/results/cfg_heldout.md`; the choice of w on training volumes: "
        "`benchmarks/results/cfg_weight.md`.", "",
        *([a.notes, ""] if a.notes else [])])
    write_model_card(out, info, {}, grid_png.name, notes)
    card = json.loads(out.with_suffix(".json").read_text())
    card["conditional"] = {"test_one_step": cond, "unconditional_denoising_test": uncond}
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(conditional_table_md(cond))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
