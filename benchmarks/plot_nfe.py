"""PSNR against NFE (network evaluations = steps) from the committed sampler sweeps, one panel each.

Reads the tables of ``benchmarks/results/sampler_sweep.md`` (training-seed phantoms, slice-64) and
``sampler_sweep_ct.md`` (ct-slice on its training CT volumes) and plots a few configurations against
their number of steps, with TV as a line. Writes ``benchmarks/results/psnr_vs_nfe.png``.

    python benchmarks/plot_nfe.py
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("results")
SHOWN = {"ΠGDM (ddpm)": "ΠGDM from σ_max", "DDS paper (least squares), η 0.85": "DDS from σ_max",
         "DiffPIR λ1": "DiffPIR λ1 from σ_max", "ΠGDM, warm TV σ0.5": "ΠGDM, warm start TV σ 0.5",
         "DDS paper + TV-Z ADMM, warm TV σ0.1, CG 2": "auto (DDS + TV-Z, warm TV σ 0.1, CG 2)"}


def read_sweep(path: Path, views: int = 8) -> tuple[dict, float]:
    """``{settings: {steps: psnr}}`` over every ``views``-view table of a sweep file, and TV's PSNR
    (the same scans in every round, so the rounds' TV agree)."""
    out: dict = {}
    tv, inside = None, False
    for line in path.read_text().splitlines():
        head = re.match(r"#+ (\d+) views \(TV ([\d.]+) dB\)", line)
        if head:
            inside = int(head.group(1)) == views
            tv = float(head.group(2)) if inside else tv
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if inside and len(cells) == 8 and cells[2].isdigit():
            out.setdefault(cells[1], {})[int(cells[2])] = float(cells[3])
    return out, tv


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("sampler_sweep.md", "training phantoms, slice-64, 8 views"),
              ("sampler_sweep_ct.md", "training CT volumes, ct-slice, 8 views")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (name, title) in zip(axes, panels):
        table, tv = read_sweep(RESULTS / name)
        for key, label in SHOWN.items():
            if key in table:
                pts = sorted(table[key].items())
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.axhline(tv, color="k", ls="--", lw=1, label="TV")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks([10, 20, 50], ["10", "20", "50"])
        ax.set_xlabel("NFE (steps)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PSNR [dB] (mean over volumes, 1 sample)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    out = RESULTS / "psnr_vs_nfe.png"
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
