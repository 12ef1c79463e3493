"""The benchmark report's numbers against a re-run: FBP and SIRT at 8 views on the 64³ phantoms
(central 16 slices) are recomputed and must match ``results.csv`` to its printed precision.

Reports made before PSNR used each reference's own range (their ``setup.json`` has no ``metrics``
entry) used a peak of 1; for those the stored PSNR is converted exactly, ``+ 20·log10(range)``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "benchmark_slab16"


def _rows():
    with open(REPORT / "results.csv") as f:
        return [r for r in csv.DictReader(f) if r["group"].startswith("phantoms 64") and r["views"] == "8"
                and r["method"] in ("fbp", "sirt")]


@pytest.mark.skipif(not (REPORT / "results.csv").is_file(), reason="no benchmark report in this checkout")
def test_report_rows_match_a_rerun():
    from tomodiff.demos.benchmark import run_benchmark
    from tomodiff.io.volumes import load_volume

    setup = json.loads((REPORT / "setup.json").read_text())
    assert setup["noise"] == 0.01 and setup["slices"] == 16
    old_peak = "metrics" not in setup
    rows = _rows()
    volumes = sorted({r["volume"] for r in rows})
    assert len(volumes) == 8 and len(rows) == 16
    rerun, _ = run_benchmark(volumes, [8], ["fbp", "sirt"], slices=16, noise=setup["noise"], progress=False)
    fresh = {(r.volume, r.method): r.psnr for r in rerun}
    for row in rows:
        expected = float(row["psnr"])
        if old_peak:
            vol, _ = load_volume(row["volume"])
            c = vol.shape[0] // 2
            ref = vol[c - 8:c + 8]
            expected += 20 * math.log10(float(ref.max() - ref.min()))
        assert fresh[(row["volume"], row["method"])] == pytest.approx(expected, abs=0.01), row
