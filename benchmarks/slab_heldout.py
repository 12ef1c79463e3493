"""The 2.5D prior ``ct-slab`` against the 2D ``ct-slice`` on HELD-OUT real CT (issue 19's report).

Held out: ``imageio_stent_abdomen_cta`` and ``lidc2_chest_cta_8bit`` (test volumes of every CT prior:
no slice was trained on, nothing was tuned on them). Two sizes: the benchmark set's 64³ crops
(``ct_abdomen_64``, ``ct_chest_64``) and the corpus volumes at native in-plane resolution (128² and
256²), in both cases the central ``--slices`` axial slices.

Three sections:

- **Denoising** whole held-out volumes, ``x + σ·n`` at σ 0.05 and 0.1 (data in [0, 1]): each prior's
  ``denoiser(x, σ)`` on the volume, against 3D TV denoising (``skimage.restoration.denoise_tv_chambolle``)
  with its weight tuned on the volume itself (an oracle: an upper reference for TV).
- **Reconstruction**, parallel beam at 8, 16 and 32 views, 1% Gaussian noise, σ_y known: FBP (Hann),
  SIRT, TV with the weight rule, oracle TV (weight tuned on the volume), and ``auto`` (the mean of
  ``--samples`` samples) with each prior, and one sample of auto with the new prior.
- **Speed**: the time per NFE per slice of each prior's denoiser on the same stack, one thread.

    OMP_NUM_THREADS=1 python -m benchmarks.slab_heldout --out benchmarks/results/slab_heldout.md
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from tomodiff import methods
from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.io.volumes import load_volume
from tomodiff.priors import load
from tomodiff.priors.registry import load_file
from tomodiff.recon import reconstruct
from tomodiff.recon.consistency import data_consistency

from .cfg_heldout import ORACLE_K, volume_psnr
from .volumes import central, shared_data

CROPS = ("ct_abdomen_64", "ct_chest_64")
NATIVE = ("imageio_stent_abdomen_cta", "lidc2_chest_cta_8bit")
TV_DENOISE_WEIGHTS = np.geomspace(0.005, 0.5, 19)


def _prior(name_or_path: str):
    """A shipped prior by name, or a prior file (e.g. one exported from a training checkpoint)."""
    if Path(name_or_path).is_file():
        prior = load_file(name_or_path)
        prior.precision = "auto"
        return prior
    return load(name_or_path, precision="auto")


def native_volume(name: str, slices: int, data_dir) -> torch.Tensor:
    """Central ``slices`` of ``ct_corpus/NAME.npz`` at native resolution, in [0, 1]."""
    v = np.load(Path(data_dir) / "ct_corpus" / f"{name}.npz")["volume"].astype(np.float32) / 65535
    return central(torch.from_numpy(v), slices)


def denoise_rows(name, vol, priors, sigmas, seed=0):
    out = []
    rng = float(vol.max() - vol.min())
    for s in sigmas:
        noisy = vol + s * torch.randn(vol.shape, generator=torch.Generator().manual_seed(seed))
        tv = max(volume_psnr(torch.from_numpy(denoise_tv_chambolle(noisy.numpy(), weight=w)), vol, rng)
                 for w in TV_DENOISE_WEIGHTS)
        row = {"volume": name, "sigma": s, "noisy": volume_psnr(noisy, vol, rng), "oracle 3D TV": tv}
        with torch.no_grad():
            for label, prior in priors.items():
                row[label] = volume_psnr(prior.denoiser(noisy[None, None], s)[0, 0], vol, rng)
        out.append(row)
        print(name, row, flush=True)
    return out


def recon_rows(name, vol, priors, views_list, samples):
    rows = []
    rng = float(vol.max() - vol.min())
    for views in views_list:
        y, geometry, sigma_y = simulate_scan(vol, views=views, noise=0.01, seed=1)
        A, ref = Projector(geometry), vol[None, None]

        def score(label, r):
            chi2 = data_consistency(A, r.mean, y, sigma_y)["chi2_per_m"]
            rows.append({"volume": name, "views": views, "method": label, "psnr": volume_psnr(r.mean, ref, rng),
                         "chi2": chi2, "seconds": r.seconds})
            print(f"{name:26s} {views:3d}  {label:28s} {rows[-1]['psnr']:6.2f} dB  chi2/m {chi2:6.2f}  "
                  f"{r.seconds:6.1f} s", flush=True)

        for m in ("fbp", "sirt"):
            score(m, reconstruct(A, y, method=m, progress=False))
        score("TV (weight rule)", reconstruct(A, y, method="tv", sigma_y=sigma_y, progress=False))
        lam0 = methods.default_tv_weight(A)
        best = max((reconstruct(A, y, method="tv", lam=lam0 * 2 ** (k / 2), scale=None, progress=False)
                    for k in ORACLE_K), key=lambda r: volume_psnr(r.mean, ref, rng))
        score("oracle TV (tuned on it)", best)
        for label, prior in priors.items():
            score(f"auto ({label})", reconstruct(A, y, method="auto", prior=prior, sigma_y=sigma_y,
                                                 n_samples=samples, progress=False, slab=None))
        last = list(priors)[-1]
        score(f"auto ({last}), 1 sample", reconstruct(A, y, method="auto", prior=priors[last], sigma_y=sigma_y,
                                                       n_samples=1, progress=False, slab=None))
    return rows


def speed_rows(priors, shape=(16, 64, 64), repeats=5):
    x = torch.rand(1, 1, *shape)
    out = {}
    with torch.no_grad():
        for label, prior in priors.items():
            prior.denoiser(x, 0.1)  # warm-up
            t0 = time.perf_counter()
            for _ in range(repeats):
                prior.denoiser(x, 0.1)
            out[label] = (time.perf_counter() - t0) / repeats / shape[0]
    return out


def _mean(rows, key, **match):
    v = [r[key] for r in rows if all(r[k] == m for k, m in match.items())]
    return float(np.mean(v)) if v else float("nan")


def report(den, rec, speed, args, seconds) -> str:
    labels = list(speed)
    new = labels[-1]
    lines = [f"# {new} against {labels[0]} on held-out real CT", "",
             f"`python -m benchmarks.slab_heldout` ({time.strftime('%Y-%m-%d', time.gmtime())}, {platform.machine()}, "
             f"1 torch thread, {seconds:.0f} s; two trainings shared the 2 cores, so times compare within a run "
             f"only). Central {args.slices} slices; PSNR over the whole volume, peak = the reference's range. "
             f"auto: `{methods.AUTO['options']}`, {methods.AUTO['steps']} steps, mean of {args.samples} samples.", "",
             "## Denoising whole held-out volumes", "",
             "| volume | σ | noisy | oracle 3D TV | " + " | ".join(labels) + f" | {new} − oracle TV |",
             "|---|---:|---:|---:|" + "---:|" * len(labels) + "---:|"]
    for r in den:
        lines.append(f"| {r['volume']} | {r['sigma']} | {r['noisy']:.2f} | {r['oracle 3D TV']:.2f} | "
                     + " | ".join(f"{r[k]:.2f}" for k in labels) + f" | {r[new] - r['oracle 3D TV']:+.2f} |")
    lines += ["", "## Reconstruction (parallel beam, 1% noise)", "",
              "| volume | views | method | PSNR (dB) | χ²/m | s |", "|---|---:|---|---:|---:|---:|"]
    for r in rec:
        lines.append(f"| {r['volume']} | {r['views']} | {r['method']} | {r['psnr']:.2f} | {r['chi2']:.2f} | "
                     f"{r['seconds']:.1f} |")
    lines += ["", "## Targets (issue 19; held-out volumes only)", "", "| target | measured | |", "|---|---|---|"]
    for s in (0.1,):
        gains = [r[new] - r["oracle 3D TV"] for r in den if r["sigma"] == s]
        g = float(np.mean(gains))
        lines.append(f"| denoising σ {s}: ≥ 2 dB above oracle 3D TV | {g:+.2f} dB (mean of {len(gains)}) | "
                     f"{'met' if g >= 2 else 'missed'} |")
    for group, names in (("64³", CROPS), ("native", NATIVE)):
        for views, what, need in ((8, "TV (weight rule)", 2.0), (8, "oracle TV (tuned on it)", 1.0),
                                  (16, "TV (weight rule)", 1.0)):
            a = np.mean([_mean(rec, "psnr", volume=n, views=views, method=f"auto ({new})") for n in names])
            b = np.mean([_mean(rec, "psnr", volume=n, views=views, method=what) for n in names])
            if np.isfinite(a) and np.isfinite(b):
                lines.append(f"| {group}, {views} views: auto ≥ {what} + {need:g} dB | {a - b:+.2f} dB | "
                             f"{'met' if a - b >= need else 'missed'} |")
    one = [(r, next(q for q in rec if q["volume"] == r["volume"] and q["views"] == r["views"]
                    and q["method"] == "TV (weight rule)")) for r in rec if r["method"] == f"auto ({new}), 1 sample"]
    if one:
        worst = min(a["psnr"] - b["psnr"] for a, b in one)
        lines.append(f"| one sample at least level with TV (rule) | worst {worst:+.2f} dB | "
                     f"{'met' if worst >= 0 else 'missed'} |")
    below = [r for r in rec if r["method"].startswith("auto") and r["psnr"] < _mean(
        rec, "psnr", volume=r["volume"], views=r["views"], method="sirt")]
    lines.append(f"| nothing below SIRT | {len(below)} rows below | {'met' if not below else 'missed'} |")
    ratio = speed[new] / speed[labels[0]]
    lines.append(f"| time per NFE per slice ≤ 1.3× {labels[0]} | {ratio:.2f}× ({speed[new] * 1e3:.1f} vs "
                 f"{speed[labels[0]] * 1e3:.1f} ms) | {'met' if ratio <= 1.3 else 'missed'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="ct-slab", help="the new prior: shipped name or prior file")
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--views", default="8,16,32")
    ap.add_argument("--native", action="store_true", help="also the native-resolution volumes (slow)")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    priors = {"ct-slice": load("ct-slice", precision="auto"), Path(args.prior).stem: _prior(args.prior)}
    vols = [(n, central(load_volume(n)[0], args.slices)) for n in CROPS]
    if args.native:
        d = shared_data(args.data_dir)
        vols += [(n, native_volume(n, args.slices, d)) for n in NATIVE]
    speed = speed_rows(priors)
    den = [r for n, v in vols for r in denoise_rows(n, v, priors, (0.05, 0.1))]
    rec = [r for n, v in vols for r in recon_rows(n, v, priors, [int(v) for v in args.views.split(",")],
                                                   args.samples)]
    text = report(den, rec, speed, args, time.perf_counter() - t0)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
