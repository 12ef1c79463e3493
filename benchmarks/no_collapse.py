"""No collapse, and the data fit with the noise known: every diffusion method at its defaults against SIRT
and TV, on HELD-OUT volumes only (issue 20).

Volumes: the benchmark set's real-CT group ``ct_abdomen_64`` and ``ct_chest_64`` (test volumes of
ct-slice and ct-cond: nothing was trained or tuned on them) and the held-out 64³ phantoms
``shepp_logan_64_a`` and ``texture_64_a`` (benchmark-set seeds), the central ``--slices`` axial
slices of each. Scans: parallel beam at 4, 8, 16 and 32 views, Gaussian noise 1% of max(y), the
true σ_y given to every method.

Rows: SIRT (100 iterations), TV (the weight rule: χ²/m 0.8 with σ_y known) and every diffusion
method of the registry (:mod:`tomodiff.methods`) at its defaults (steps, options) with the package's
default prior ``ct-slice`` (``cfg``: its own ``ct-cond``), the mean of ``--samples`` samples, one slab.
Columns: PSNR (dB, the whole block's MSE, peak = the reference's range), SSIM (mean over slices, 2D,
same range), χ²/m of the mean with the true σ_y, whether the run warned that it disagrees with the
data, and two flags: **below SIRT** (PSNR under SIRT's on the same scan) and **χ²/m outside
[0.5, 2]**. Each result is appended to ``--log`` as it finishes (a rerun skips what is there), and
the tables are rebuilt from the whole log; ``--methods A,B --redo`` first drops those rows from the log
(to ``LOG.old.jsonl``) and runs them again, after their defaults changed.

    OMP_NUM_THREADS=1 python -m benchmarks.no_collapse --out benchmarks/results/no_collapse.md
    OMP_NUM_THREADS=1 python -m benchmarks.no_collapse --methods dds,diffpir --redo --out benchmarks/results/no_collapse.md
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from tomodiff import methods
from tomodiff.ct import Projector
from tomodiff.ct.simulate import simulate_scan
from tomodiff.io.volumes import load_volume
from tomodiff.priors import load
from tomodiff.recon import reconstruct
from tomodiff.recon.consistency import DataConsistencyWarning, data_consistency

from .volumes import central

# interleaved real / phantom, so that a run cut short still covers both groups
VOLUMES = {"ct_abdomen_64": "real CT", "shepp_logan_64_a": "phantom", "ct_chest_64": "real CT",
           "texture_64_a": "phantom"}
VIEWS = (4, 8, 16, 32)
CHI2_RANGE = (0.5, 2.0)


def volume_psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float) -> float:
    """PSNR (dB) of the whole block ``(Z, Y, X)``, peak = ``data_range``."""
    return float(10 * torch.log10(data_range ** 2 / ((x.cpu().float() - ref) ** 2).mean()))


def slice_ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float) -> float:
    """Mean 2D SSIM over the axial slices of ``(Z, Y, X)`` blocks."""
    a, r = x.cpu().double().numpy(), ref.double().numpy()
    return float(np.mean([structural_similarity(r[k], a[k], data_range=data_range) for k in range(r.shape[0])]))


def rows_of(args) -> list[tuple[str, str, dict]]:
    """``(label, method, reconstruct kwargs)`` for every row: SIRT, TV, then the diffusion methods."""
    out = [("sirt", "sirt", {}), ("tv", "tv", {})]
    for name in methods.names("diffusion"):
        out.append((name, name, {"n_samples": args.samples, "slab": None}))
    return out


def table(log: Path) -> tuple[list[str], dict]:
    """The markdown tables and a summary from every line of ``log``."""
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    sirt = {(r["volume"], r["views"]): r["psnr"] for r in recs if r["method"] == "sirt"}
    for r in recs:
        s = sirt.get((r["volume"], r["views"]))
        r["below_sirt"] = None if s is None or r["method"] == "sirt" else bool(r["psnr"] < s)
        c = r["chi2_per_m"]
        r["chi2_outside"] = bool(not (CHI2_RANGE[0] <= c <= CHI2_RANGE[1]))
    order = [lab for lab, _, _ in rows_of(argparse.Namespace(samples=0))]
    lines, summary = [], {"failures": []}
    for group in dict.fromkeys(VOLUMES.values()):
        vols = [v for v, g in VOLUMES.items() if g == group and any(r["volume"] == v for r in recs)]
        if not vols:
            continue
        lines += [f"## {group}: {', '.join(vols)}", "",
                  "| views | method | PSNR (dB) | SSIM | χ²/m | warned | below SIRT | χ²/m outside [0.5, 2] |",
                  "|---:|---|---:|---:|---:|---|---|---|"]
        for views in VIEWS:
            for label in order:
                rs = [r for r in recs if r["views"] == views and r["method"] == label and r["volume"] in vols]
                if not rs:
                    continue
                n = len(rs)
                below = [r["volume"] for r in rs if r["below_sirt"]]
                outside = [f"{r['volume']} {r['chi2_per_m']:.2f}" for r in rs if r["chi2_outside"]]
                diffusion = methods.get(label).diffusion
                for r in rs:
                    if diffusion and (r["below_sirt"] or r["chi2_outside"]):
                        summary["failures"].append({k: r[k] for k in ("volume", "views", "method", "psnr",
                                                                        "chi2_per_m", "below_sirt", "chi2_outside")})
                flag_b = "—" if label == "sirt" else (f"**{len(below)}/{n}** ({', '.join(below)})" if below else f"0/{n}")
                flag_c = f"**{len(outside)}/{n}** ({', '.join(outside)})" if outside else f"0/{n}"
                warned = sum(bool(r.get("warned")) for r in rs)
                lines.append(f"| {views} | {label} | {np.mean([r['psnr'] for r in rs]):.2f} | "
                             f"{np.mean([r['ssim'] for r in rs]):.3f} | {np.mean([r['chi2_per_m'] for r in rs]):.2f} | "
                             f"{warned}/{n} | {flag_b} | {flag_c} |")
        lines.append("")
    summary["records"] = recs
    return lines, summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--views", default=",".join(map(str, VIEWS)))
    ap.add_argument("--volumes", default=",".join(VOLUMES))
    ap.add_argument("--methods", default=None, help="only these rows (comma-separated labels); default: all")
    ap.add_argument("--redo", action="store_true", help="with --methods: drop those rows from --log first (moved to "
                                                         "LOG.old.jsonl), so they run again at the current defaults")
    ap.add_argument("--log", type=Path, default=Path("benchmarks/results/no_collapse.jsonl"))
    ap.add_argument("--out", type=Path, default=None, help="markdown table; the JSON summary goes beside it")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    priors = {"ct-slice": load("ct-slice", precision="auto"), "ct-cond": load("ct-cond", precision="auto")}
    wanted = None if args.methods is None else set(args.methods.split(","))
    if args.redo:
        if wanted is None:
            raise SystemExit("--redo needs --methods (the rows to run again)")
        if args.log.is_file():
            lines = [line for line in args.log.read_text().splitlines() if line.strip()]
            old = [line for line in lines if json.loads(line)["method"] in wanted]
            with args.log.with_suffix(".old.jsonl").open("a") as f:
                f.write("".join(line + "\n" for line in old))
            args.log.write_text("".join(line + "\n" for line in lines if line not in old))
    done = set()
    if args.log.is_file():
        done = {(r["volume"], r["views"], r["method"]) for r in map(json.loads, args.log.read_text().splitlines())}
    t_all = time.perf_counter()
    with args.log.open("a") as log:
        for name in args.volumes.split(","):
            if name not in VOLUMES:
                raise SystemExit(f"{name}: not a held-out volume of this benchmark ({', '.join(VOLUMES)})")
            vol = central(load_volume(name)[0], args.slices)
            rng = float(vol.max() - vol.min())
            for views in map(int, args.views.split(",")):
                y, geometry, sigma_y = simulate_scan(vol, views=views, noise=0.01, seed=1)
                A = Projector(geometry)
                for label, m, kw in rows_of(args):
                    if (name, views, label) in done or (wanted is not None and label not in wanted):
                        continue
                    if methods.get(m).diffusion:
                        kw = {**kw, "prior": priors[methods.get(m).prior or "ct-slice"]}
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        r = reconstruct(A, y, method=m, sigma_y=sigma_y, progress=False, **kw)
                    warned = any(issubclass(w.category, DataConsistencyWarning) for w in caught)
                    x = r.mean[0, 0]
                    rec = {"volume": name, "group": VOLUMES[name], "views": views, "method": label,
                           "psnr": volume_psnr(x, vol, rng), "ssim": slice_ssim(x, vol, rng),
                           "chi2_per_m": data_consistency(A, r.mean, y, sigma_y)["chi2_per_m"],
                           "warned": warned, "seconds": r.seconds, "nfe": r.nfe,
                           "n_samples": kw.get("n_samples", 1), "slices": args.slices}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    print(f"{name:18s} {views:3d} views  {label:8s} {rec['psnr']:6.2f} dB  SSIM {rec['ssim']:.3f}  "
                          f"chi2/m {rec['chi2_per_m']:7.2f}  {'warned ' if warned else ''}{r.seconds:6.1f} s", flush=True)
    lines, summary = table(args.log)
    defaults = "; ".join(f"{n} `{dict(methods.get(n).options)}`" for n in methods.names("diffusion")
                         if n in ("dps", "dds", "diffpir", "sdedit", "pigdm"))
    rerun = "" if wanted is None else f" of the rows {', '.join(sorted(wanted))}; the others from earlier runs"
    head = [f"# No collapse: diffusion methods at their defaults vs SIRT on held-out volumes (issue 20)", "",
            f"Made by `python -m benchmarks.no_collapse` (last run {time.perf_counter() - t_all:.0f} s{rerun}, "
            f"{platform.machine()}, 1 torch thread, two trainings shared the 2 cores). Central {args.slices} axial "
            f"slices of each 64³ volume, parallel beam, 1% noise, the true σ_y; diffusion: mean of {args.samples} "
            "samples, default steps and options, prior ct-slice (cfg: ct-cond), one slab. PSNR of the whole block, "
            "SSIM the mean over slices, χ²/m of the mean; *warned*: the run raised DataConsistencyWarning; flags "
            "count the volumes of the group. Held-out volumes only: nothing here was tuned on them. "
            f"Defaults: {defaults}.", ""]
    text = "\n".join(head + lines)
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
