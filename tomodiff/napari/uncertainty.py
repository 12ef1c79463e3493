"""Reading a reconstruction's uncertainty in napari: sample counts, χ² per view, the std overlay.

- :func:`std_label` names a std layer with the number of posterior samples it rests on and whether
  it is calibrated; :func:`calibration_text` says where its scale ``k`` was fitted (the result's
  ``"calibration"`` record, :func:`tomodiff.recon.calibration.lookup`), or that it is the raw spread.
- :func:`chi2_text` summarises a reconstruction's data consistency, the ``"data_consistency"`` entry
  of its provenance: ``{"chi2_per_m": float, "chi2_per_view": [float, ...], "sigma_y": float}``
  (``χ²/m = ‖y − A x‖² / (σ_y² m)``: about 1 when the reconstruction explains the data to within
  the noise; a view far above 1 is one the reconstruction disagrees with). Files and runs without
  it are described as such, never guessed.
- :class:`Chi2Plot` draws χ² per view as a small matplotlib bar plot (a Qt widget).
- :func:`style_std_overlay` makes std layers a coloured, additive overlay on the mean.

Pure Python except :class:`Chi2Plot` (Qt, imported when built).
"""

from __future__ import annotations

import math

OVERLAY = dict(colormap="magma", blending="additive", opacity=0.7)  # std drawn over the grey mean


def std_label(n_samples: int | None, calibration: dict | None = None) -> str:
    """``"std over N samples"`` (or ``"std (uncertainty)"`` when the count is unknown), followed by
    ``" (calibrated ×k)"`` or ``" (raw, not calibrated)"`` when the result records its calibration."""
    if not n_samples:
        label = "std (uncertainty)"
    else:
        label = f"std over {int(n_samples)} sample{'s' if int(n_samples) != 1 else ''}"
    if isinstance(calibration, dict) and "calibrated" in calibration:
        k = calibration.get("k")
        label += (f" (calibrated ×{k:.2f})" if calibration["calibrated"] and isinstance(k, (int, float))
                  else " (raw, not calibrated)")
    return label


def calibration_text(calibration: dict | None) -> str:
    """One line on the std's calibration: ``"std: calibrated, k 5.67 × ... (fitted for ...)"``,
    ``"std: raw sample spread, not calibrated for METHOD with PRIOR"``, or that the file records none."""
    if not isinstance(calibration, dict) or not calibration.get("note"):
        return "std: calibration not recorded (raw sample spread?)"
    return f"std: {calibration['note']}"


def consistency(metadata_or_provenance: dict | None) -> dict | None:
    """The ``"data_consistency"`` entry if it is well formed (a dict with a list ``chi2_per_view``), else ``None``."""
    dc = (metadata_or_provenance or {}).get("data_consistency")
    if not isinstance(dc, dict) or not isinstance(dc.get("chi2_per_view"), (list, tuple)):
        return None
    values = dc["chi2_per_view"]
    if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    return dc


def chi2_text(metadata_or_provenance: dict | None) -> str:
    """One line: ``χ²/m 1.02 over 16 views (σ_y 0.012); worst view 5: 2.31`` or why there is none."""
    dc = consistency(metadata_or_provenance)
    if dc is None:
        return "χ² per view: not recorded for this reconstruction"
    per_view = [float(v) for v in dc["chi2_per_view"]]
    worst = max(range(len(per_view)), key=per_view.__getitem__)
    total = dc.get("chi2_per_m")
    total = sum(per_view) / len(per_view) if not isinstance(total, (int, float)) else float(total)
    sigma = dc.get("sigma_y")
    sigma = f" (σ_y {sigma:.3g})" if isinstance(sigma, (int, float)) else ""
    return f"χ²/m {total:.3g} over {len(per_view)} views{sigma}; worst view {worst}: {per_view[worst]:.3g}"


def style_std_overlay(layer, on: bool) -> None:
    """Show a std layer as a coloured additive overlay on the mean (``on``), or hide it."""
    if on:
        layer.colormap, layer.blending, layer.opacity = OVERLAY["colormap"], OVERLAY["blending"], OVERLAY["opacity"]
    layer.visible = bool(on)


def is_std_layer(layer) -> bool:
    return (getattr(layer, "metadata", None) or {}).get("kind") == "std"


class Chi2Plot:
    """A small bar plot of χ² per view (a matplotlib canvas; ``.native`` is the Qt widget).

    The dashed line at 1 is what a reconstruction that fits the data to within the noise gives.
    """

    def __init__(self, *, width: float = 3.2, height: float = 1.6):
        # optional: Qt (matplotlib's Qt canvas); the reader, which imports this module, needs neither
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg  # optional: matplotlib (figures only)
        from matplotlib.figure import Figure  # optional: matplotlib (figures only)

        self.figure = Figure(figsize=(width, height), dpi=90, layout="constrained")
        self.axes = self.figure.add_subplot()
        self.native = FigureCanvasQTAgg(self.figure)
        self.native.setMinimumHeight(int(height * 90))
        self.values: list[float] = []
        self.show(None)

    def show(self, metadata_or_provenance: dict | None) -> None:
        """Draw the χ² per view of ``metadata_or_provenance["data_consistency"]`` (or say there is none)."""
        ax = self.axes
        ax.clear()
        dc = consistency(metadata_or_provenance)
        self.values = [] if dc is None else [float(v) for v in dc["chi2_per_view"]]
        if not self.values:
            ax.text(0.5, 0.5, "no χ² per view recorded", ha="center", va="center", fontsize=8,
                    transform=ax.transAxes, color="0.5")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            colours = ["#d04040" if v > 2 else "#4080c0" for v in self.values]
            ax.bar(range(len(self.values)), self.values, color=colours, width=0.8)
            ax.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8)
            ax.set_xlabel("view", fontsize=7)
            ax.set_ylabel("χ² / m", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_xlim(-0.6, len(self.values) - 0.4)
        self.native.draw_idle()
