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
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

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


def main() -> int:
    from tomodiff.io.noise import estimate_sigma_y
    from tomodiff.io.problem import load_problem

    torch.set_num_threads(1)
    if not I13.exists():
        print(f"no {I13}: set TOMODIFF_SHARED_DATA", file=sys.stderr)
        return 1
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
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
