"""χ²/m on a measured scan with σ_y from the counts, from the sinogram, and the old 1% rule: one table.

Issue 22 item 5: without ``--sigma-y`` the CLI assumed σ_y = 1% of max|y|, so χ²/m could not tell a
fit at the noise level from one that is not. This runs ``tomodiff reconstruct`` (in process, ``--json``,
one torch thread) on Diamond I13 (``24737_raw.npz``: 91 projections, one flat, one dark; rows 60–69,
``--air-region 0:20,0:20 --center-offset auto``), all 91 views and every 7th (13 views), for FBP,
SIRT (100 iterations) and TV (weight from σ_y, 200 iterations), with PWLS weights (the default when
counts are known) and without (``--weights none``).

Columns: ``σ counts`` the CLI's σ_y (``sqrt`` of the mean per-ray Poisson variance, the gain fitted
from the flat); ``χ²/m`` against it (``noise.chi2_per_m`` of the output); ``per ray`` ``mean r_i²/Var_i``
(``noise.chi2_per_m_per_ray``); ``χ²/m 1%`` the same residual against 0.01·max|y| (the old rule;
χ² scales as 1/σ²); ``χ²/m MAD`` against the sinogram-only estimate (:func:`estimate_sigma_y`, the rule
for files without counts). No reference volume exists, so there is no PSNR.

Run: ``OMP_NUM_THREADS=1 python benchmarks/noise_from_counts.py`` (about 5 minutes on one core);
writes the table to stdout.

Simulated Poisson TIFF scan (``--part simulated``)
--------------------------------------------------
The issue's target: on a simulated Poisson TIFF scan with flats, σ from the counts gives the default
diffusion method (``auto``) χ²/m in [0.5, 2]. :func:`simulate_tiff_scan` makes one: a volume (the
held-out real-CT crop ``ct_chest_64``, slices 30–33, ×0.15 per pixel: line integrals up to ≈ 1.8,
transmission ≥ 0.16) projected in parallel beam over ``views`` angles in [0°, 180°), photon counts
``N ~ Poisson(I0·r·e^{−p})`` with a per-pixel detector response ``r`` in [1, 1.1], read out as
``gain·N + 100 + read noise`` (gain 2 ADU/photon, read noise 3 ADU, rounded to uint16), 10 flats
(``p = 0``) and 10 darks (``N = 0``) alike, written as ``proj/``, ``flat/``, ``dark/`` TIFF folders.
``tomodiff reconstruct proj --flats flat --darks dark --angles 0:…:Ndeg --method M --json`` runs
without ``--sigma-y`` (rule "counts"). The true per-ray variance is the delta-method formula of
:mod:`tomodiff.io.noise` at the true (noise-free) readings with the true gain and read noise;
``σ true`` is its effective σ (√mean), ``χ²/m truth`` the noise-free line integrals' χ²/m against
``σ true`` (≈ 1 checks the formula), ``σ MAD`` the sinogram-only estimate of the same line integrals
(the rule without counts) and ``χ²/m MAD`` the result's χ²/m against it, and PSNR is against the simulated
volume (data range its max − min).
Run: ``OMP_NUM_THREADS=1 python benchmarks/noise_from_counts.py --part simulated`` (about 4 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TOMODIFF_SHARED_DATA", ROOT.parent / "shared" / "data"))
I13 = DATA / "diamond_i13_24737" / "24737_raw.npz"
COMMON = ["--rows", "60:70", "--air-region", "0:20,0:20", "--center-offset", "auto", "--threads", "1", "--json"]
RUNS = [("fbp", []), ("sirt", ["--iters", "100"]), ("sirt", ["--iters", "100", "--weights", "none"]),
        ("tv", ["--iters", "200"]), ("tv", ["--iters", "200", "--weights", "none"])]


def _cli(argv) -> dict:
    from tomodiff.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"tomodiff {' '.join(argv)} failed: {err.getvalue()[-500:]}")
    return json.loads(out.getvalue())


def angle_spec(views: int) -> str:
    """``--angles`` for ``views`` angles evenly in [0°, 180°) (both ends of the spec are included)."""
    return f"0:{180 * (views - 1) / views:g}:{views}deg"


def simulate_tiff_scan(root, volume, *, views: int = 16, I0: float = 1e4, gain: float = 2.0,
                       dark_level: float = 100.0, read_noise: float = 3.0, n_flats: int = 10, n_darks: int = 10,
                       response: float = 0.1, seed: int = 0) -> dict:
    """Write a simulated raw scan of ``volume`` ``(Z, n, n)`` (attenuation per pixel) as TIFF folders
    ``root/proj``, ``root/flat``, ``root/dark`` (see the module docstring) and return
    ``{"proj", "flats", "darks", "angles"}`` (paths and the ``--angles`` spec), the noise-free line
    integrals ``"p"`` ``(A, Z, n)``, the true per-ray ``"variance"`` of the normalised line integrals,
    its effective ``"sigma"`` and the ``"geometry"``."""
    from tomodiff.ct import Projector, parallel_beam
    from tomodiff.io.tiff_stack import write_tiff_stack

    root = Path(root)
    vol = np.ascontiguousarray(volume, np.float32)
    Z, n = vol.shape[0], vol.shape[-1]
    geometry = parallel_beam((Z, n, n), np.deg2rad(np.linspace(0, 180, views, endpoint=False)), det_shape=(Z, n))
    p = Projector(geometry, backend="torch")(torch.from_numpy(vol)[None, None])[0, 0].double().numpy()
    rng = np.random.default_rng(seed)
    resp = 1.0 + response * rng.random(p.shape[1:])  # uneven detector response: the flats correct it

    def read(photons):  # gain·N + dark offset + read noise, as a 16-bit detector stores it
        adu = np.rint(gain * rng.poisson(photons) + dark_level + read_noise * rng.standard_normal(photons.shape))
        if adu.min() < 0 or adu.max() > np.iinfo(np.uint16).max:
            raise ValueError(f"simulate_tiff_scan: readings outside uint16 (I0 {I0:g}, gain {gain:g})")
        return adu.astype(np.uint16)

    frame = p.shape[1:]
    proj = read(I0 * resp * np.exp(-p))  # in this order: the draws of a seed
    flats = read(np.broadcast_to(I0 * resp, (n_flats, *frame)))
    darks = read(np.zeros((n_darks, *frame)))
    for name, arr in (("proj", proj), ("flat", flats), ("dark", darks)):
        write_tiff_stack(root / name, arr, prefix=name)
    a, b = gain * I0 * resp * np.exp(-p), gain * I0 * resp  # true mean signals above the dark, ADU
    s2d = read_noise ** 2 + 1.0 / 12.0  # read noise and the rounding to whole ADU
    var = (gain * a + s2d) / a**2 + (gain * b + s2d) / (n_flats * b**2) + (1 / a - 1 / b) ** 2 * s2d / n_darks
    return {"proj": root / "proj", "flats": root / "flat", "darks": root / "dark", "angles": angle_spec(views),
            "p": p.astype(np.float32), "variance": var, "sigma": float(np.sqrt(var.mean())), "geometry": geometry}


def chest_volume(slices=slice(30, 34), mu: float = 0.15) -> np.ndarray:
    """The simulated object: ``mu`` × slices of the held-out real-CT crop ``ct_chest_64`` (per pixel)."""
    from tomodiff.io.volumes import load_volume

    vol, _ = load_volume("ct_chest_64")
    return mu * vol.numpy()[slices]


def simulated_run(scan: dict, method: str, out, extra=()) -> dict:
    """``tomodiff reconstruct`` of a :func:`simulate_tiff_scan` scan without ``--sigma-y`` (``--json``)."""
    return _cli(["reconstruct", str(scan["proj"]), "--flats", str(scan["flats"]), "--darks", str(scan["darks"]),
                 "--angles", scan["angles"], "--method", method, "--threads", "1", "--json", *extra, "--out", str(out)])


SIM_I0 = (2e3, 5e3, 1e4, 2.5e4)
SIM_VIEWS = (8, 16)
SIM_METHODS = ("auto", "tv", "sirt")
SIM_SEEDS = (0, 1)


def simulated_table() -> list[str]:
    from tomodiff.io import read_project
    from tomodiff.io.noise import estimate_sigma_y
    from tomodiff.io.problem import load_problem

    vol = chest_volume()
    rows = ["| I0 | views | seed | gain fit | σ true | σ counts (Δ) | χ²/m truth | σ MAD | method | χ²/m "
            "| per ray | χ²/m MAD | PSNR dB | s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for I0 in SIM_I0:
            for views in SIM_VIEWS:
                for seed in SIM_SEEDS:
                    root = Path(tmp) / f"i{I0:g}v{views}s{seed}"
                    scan = simulate_tiff_scan(root, vol, views=views, I0=I0, seed=seed)
                    pr = load_problem(scan["proj"], flats=str(scan["flats"]), darks=str(scan["darks"]),
                                      angles=scan["angles"])
                    g, s_mad = pr.preprocessing["noise_model"]["gain"], estimate_sigma_y(pr.y)
                    truth = float(((pr.y[0, 0].double().numpy() - scan["p"]) ** 2).mean()) / scan["sigma"] ** 2
                    for method in SIM_METHODS:
                        r = simulated_run(scan, method, root / f"{method}.h5")
                        n = r["noise"]
                        x = read_project(root / f"{method}.h5").reconstruction["mean"]
                        q = 10 * np.log10(float(vol.max() - vol.min()) ** 2 / float(((x - vol) ** 2).mean()))
                        s = n["sigma_y"]
                        rows.append(f"| {I0:g} | {views} | {seed} | {g:.3f} | {scan['sigma']:.5f} | {s:.5f} "
                                    f"({100 * (s / scan['sigma'] - 1):+.1f}%) | {truth:.3f} | {s_mad:.4f} | {method} | "
                                    f"{n['chi2_per_m']:.3f} | {n['chi2_per_m_per_ray']:.3f} | "
                                    f"{n['chi2_per_m'] * (s / s_mad) ** 2:.3f} | {float(q):.2f} | "
                                    f"{r['seconds']:.0f} |")
                        print(rows[-1], file=sys.stderr)
    return rows


def i13_table() -> list[str] | None:
    from tomodiff.io.noise import estimate_sigma_y
    from tomodiff.io.problem import load_problem

    if not I13.exists():
        print(f"no {I13}: set TOMODIFF_SHARED_DATA", file=sys.stderr)
        return None
    rows = ["| views | method | weights | σ counts | χ²/m | per ray | χ²/m 1% (σ) | χ²/m MAD (σ) | TV weight "
            "| s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for thin in (1, 7):
            p = load_problem(I13, thin=thin, rows=slice(60, 70), air_region=(slice(0, 20), slice(0, 20)),
                             center_offset=6.25)
            s_old, s_mad = 0.01 * float(p.y.abs().max()), estimate_sigma_y(p.y)
            for method, extra in RUNS:
                argv = ["reconstruct", str(I13), "--method", method, *COMMON, *(["--thin", str(thin)] if thin > 1
                                                                                else []), *extra,
                        "--out", str(Path(tmp) / f"{method}{thin}.h5")]
                r = _cli(argv)
                n = r["noise"]
                c, s = n["chi2_per_m"], n["sigma_y"]
                lam = (r.get("tv_weight") or {}).get("lam")
                rows.append(f"| {p.y.shape[2]} | {method} | {n['weights'] if method != 'fbp' else '—'} | {s:.4f} | "
                            f"{c:.2f} | {n['chi2_per_m_per_ray']:.2f} | {c * (s / s_old) ** 2:.2f} ({s_old:.4f}) | "
                            f"{c * (s / s_mad) ** 2:.2f} ({s_mad:.4f}) | {'' if lam is None else f'{lam:.3g}'} | "
                            f"{r['seconds']:.0f} |")
                print(rows[-1], file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("i13", "simulated", "all"), default="all")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rc = 0
    if args.part in ("i13", "all"):
        rows = i13_table()
        if rows is None:
            rc = 1
        else:
            print("\n".join(rows))
    if args.part in ("simulated", "all"):
        print("\n".join(simulated_table()))
    return rc


if __name__ == "__main__":
    sys.exit(main())
