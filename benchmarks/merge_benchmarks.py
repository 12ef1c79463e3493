"""Merge several `tomodiff benchmark` runs into one report (results.csv, report.md, psnr_vs_views.png).

Each run is `LABEL=DIR`; a non-empty label is appended to its method names (``auto`` -> ``auto, 1
sample``), so runs with other sample counts or priors sit side by side in the tables. The setups of
all runs are listed in the report, with the text of ``--notes`` (a Markdown file) after the tables.

    python benchmarks/merge_benchmarks.py --out benchmarks/results/benchmark_real_ct \\
        =/tmp/b64 =/tmp/b128 "1 sample=/tmp/b64s1" "slice-64=/tmp/b64s64" --notes notes.md
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from tomodiff.demos import benchmark as bench


def read_rows(directory: Path, label: str) -> list[bench.Row]:
    rows = []
    with open(directory / "results.csv", newline="") as f:
        for d in csv.DictReader(f):
            method = d["method"] + (f", {label}" if label else "")
            rows.append(bench.Row(d["group"], d["volume"], int(d["views"]), method, float(d["psnr"]), float(d["ssim"]),
                                  float(d["residual"]), float(d["seconds"]), int(float(d["nfe"])),
                                  float(d["peak_memory_mb"])))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="LABEL=DIR (empty label: method names unchanged)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--notes", type=Path, default=None)
    ap.add_argument("--gallery", type=Path, default=None, help="a run's gallery.png to copy beside the report")
    a = ap.parse_args(argv)
    rows, setups = [], []
    for spec in a.runs:
        label, _, directory = spec.rpartition("=")
        d = Path(directory)
        rows += read_rows(d, label)
        setup = json.loads((d / "setup.json").read_text())
        setups.append(f"- {label or 'main'}: `{setup.get('command')}`")
    a.out.mkdir(parents=True, exist_ok=True)
    bench.write_csv(rows, a.out / "results.csv")
    bench.plot_psnr(rows, a.out / "psnr_vs_views.png")
    if a.gallery:
        shutil.copy(a.gallery, a.out / "gallery.png")
    extra = "\n".join(["## Runs merged here", "", *setups, ""]
                      + ([a.notes.read_text()] if a.notes else []))
    setup = {"command": "python benchmarks/merge_benchmarks.py " + " ".join(a.runs),
             "machine": "a 2-core x86_64 CPU (each run's command is listed below)"}
    bench.write_markdown(rows, setup, a.out / "report.md", extra=extra)
    print(f"wrote {a.out / 'report.md'} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
