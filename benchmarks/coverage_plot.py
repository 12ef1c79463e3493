"""The calibration curve of the uncertainty reports: observed against nominal interval coverage."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # the object API: no pyplot, so no backend to choose

NOMINAL = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


def plot_coverage(curves: dict, title: str, path: Path) -> None:
    """Observed against nominal coverage, raw and calibrated, one pair of lines per curve
    (``{label: {str(q): {"raw": c, "calibrated": c}}}``), with the 80–95% target at 90%."""
    fig = Figure(figsize=(4.2, 4))
    ax = fig.subplots()
    for label, cov in curves.items():
        for kind, style in (("raw", "--"), ("calibrated", "-")):
            ax.plot(NOMINAL, [cov[str(q)][kind] for q in NOMINAL], style, marker="o", label=f"{label}, {kind}")
    ax.plot([0.5, 1], [0.5, 1], "k:", lw=1)
    ax.plot([0.9, 0.9], [0.8, 0.95], color="g", lw=6, alpha=0.3, label="target at 90%")
    ax.set_xlim(0.45, 1.02), ax.set_ylim(0, 1.02)
    ax.set_xlabel("nominal coverage of the central interval"), ax.set_ylabel("observed coverage")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6), ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
