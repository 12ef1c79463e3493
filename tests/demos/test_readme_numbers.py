"""The README's demo table against a re-run: its classical rows (FBP, SIRT, TV) are recomputed at the
README's settings and must match to the printed precision. (The diffusion row's settings —
samples, steps, prior — are checked against the command's defaults instead.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
ROWS = {"FBP": "fbp", "SIRT (100 it.)": "sirt", "TV (200 it., weight by χ²/m)": "tv"}


def _demo_table() -> dict[str, tuple[float, float]]:
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method | PSNR [dB] | SSIM |"))
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = (float(cells[1]), float(cells[2]))
    return table


def test_readme_demo_rows_match_a_rerun(tmp_path):
    from tomodiff.demos.ct_demo import run_demo

    table = _demo_table()
    assert set(ROWS) <= set(table), table
    results, setup, _ = run_demo(methods=tuple(ROWS.values()), out_dir=tmp_path, slices=32, progress=False)
    assert setup["views"] == 16 and setup["noise_relative"] == 0.01
    for row, method in ROWS.items():
        r = next(r for r in results if r.name == method)
        psnr, ssim = table[row]
        assert r.psnr == pytest.approx(psnr, abs=0.006), (row, r.psnr)
        assert r.ssim == pytest.approx(ssim, abs=0.0006), (row, r.ssim)


def test_readme_demo_settings_are_the_commands_defaults():
    from tomodiff.cli import build_parser

    text = README.read_text()
    diffusion_row = next(k for k in _demo_table() if k.startswith("auto"))
    n = int(re.search(r"(\d+) samples", diffusion_row).group(1))
    demo = build_parser()._subparsers._group_actions[0].choices["demo"]
    samples_help = next(a.help for a in demo._actions if a.dest == "samples")
    assert f"(default: {n})" in samples_help
    flat = text.replace("\n", " ")
    assert f"`ct-slice` prior, 20 steps, {n} posterior samples" in flat
    from tomodiff.demos.ct_demo import run_demo
    from tomodiff.methods import AUTO

    assert run_demo.__kwdefaults__["prior_name"] == "ct-slice" and run_demo.__kwdefaults__["phantom"] == "ct_abdomen_64"
    assert AUTO["steps"] == 20
