# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Real data: the Diamond I13 scan, from raw projections to a sparse-view ΠGDM reconstruction
#
# A measured parallel-beam synchrotron scan (Diamond Light Source, beamline I13-2, scan 24737, proposal
# mt9396-1; see `shared/data/SOURCES.md` for origin and licence): 91 raw projections of 135 × 160 pixels over
# 180°, one flat and one dark frame. We go from raw counts to line integrals, reconstruct a **reference from
# all 91 angles** (SIRT), then keep **every 8th angle (12)** and compare FBP, SIRT, TV and ΠGDM from those
# against the reference.
#
# There is no ground truth here: the reference is itself a reconstruction, so the scores say how close a
# sparse-view result gets to what the full scan gives.
#
# **Small settings.** 4 detector rows (axial slices), 25 sampler steps, 3 samples: about half a minute of ΠGDM
# on a laptop CPU. `N_ROWS`, `STEPS` and `SAMPLES` below scale it up.
#
# **Data.** The notebook looks for `diamond_i13_24737/24737_raw.npz` under `$TOMODIFF_SHARED_DATA`, else under
# `../../shared/data` next to this notebook; without it, the first cell stops with a message saying where to
# put it.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from tomodiff.ct import Projector
from tomodiff.demos import diamond_i13
from tomodiff.demos.methods import load_prior
from tomodiff.recon import psnr, reconstruct, ssim

DATA_ROOT = Path(os.environ.get("TOMODIFF_SHARED_DATA", Path.cwd().parent.parent / "shared" / "data"))
RAW = DATA_ROOT / "diamond_i13_24737" / "24737_raw.npz"
if not RAW.is_file():
    raise FileNotFoundError(f"{RAW} not found: this notebook needs the Diamond I13 scan 24737. Set "
                            "TOMODIFF_SHARED_DATA to the folder that holds diamond_i13_24737/24737_raw.npz.")

torch.set_num_threads(1)  # 64² slices gain little from more threads; on a busy machine they slow it down
# the 2D prior trained on 64² phantom slices (data in [0, 1]); TOMODIFF_PRIOR=/path/to/prior.pt picks another file
prior = load_prior(os.environ.get("TOMODIFF_PRIOR", "slice-64"))
print(prior, "trained for", prior.info["training"]["steps"], "steps")

# %% [markdown]
# ## Raw counts, flat and dark
#
# The detector records counts `I`; the flat `F` (beam, no sample) and the dark `D` (no beam) give the
# transmission `(I − D)/(F − D)`. Two quirks of this scan (both in `SOURCES.md`): the flat is brighter than
# open air in the projections (air ≈ 0.74 after flat correction), so each projection is renormalised on an air
# patch (top-left 20 × 20 pixels) to 1; and one dead pixel has `F = D`, which `clamp_gain` treats as a dead
# pixel instead of dividing by zero.

# %%
raw = np.load(RAW)
angles = np.deg2rad(raw["angles_deg"].astype(np.float64))
print("projections", raw["proj"].shape, raw["proj"].dtype, " flat", raw["flat"].shape, " dark", raw["dark"].shape)
print(f"angles: {len(angles)} from {raw['angles_deg'][0]}° to {raw['angles_deg'][-1]}°")

plain = (raw["proj"][0] - raw["dark"]) / np.maximum(raw["flat"] - raw["dark"], 1e-3)
print(f"air after flat correction alone: {np.median(plain[:20, :20]):.2f}")
# flat/dark correction renormalised on the air patch, dead pixel clamped, −log (tomodiff.io.normalize)
sino, _ = diamond_i13.line_integrals(RAW)                                         # (angles, rows, columns)
print("line integrals", sino.shape, f"range {sino.min():.2f} .. {sino.max():.2f}; the maximum, −log(1e-4), is the "
      f"dead pixel (clipped transmission) at (row, column) {np.unravel_index(sino[0].argmax(), sino[0].shape)}")

# %% [markdown]
# ## Which rows, which grid
#
# The rotation axis projects ≈ 6 pixels right of the detector centre (column ≈ 85.5 of 0..159). The prior
# works on **64² slices**, so the reconstruction grid is 64 × 64 voxels **centred on the rotation axis**, one
# voxel per detector pixel. The sample sits above a wide holder whose cross section (radius ≈ 40 pixels) would
# not fit in that grid; the rows just above the holder (68–71, red) hold the sample alone, well inside the
# grid.

# %%
CENTER_OFFSET = diamond_i13.CENTER_OFFSET   # rotation axis − detector centre: 6 pixels (SOURCES.md)
ROW0, N_ROWS = 68, 4                        # detector rows = axial slices
rows = slice(ROW0, ROW0 + N_ROWS)

fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), constrained_layout=True)
axes[0].imshow(raw["proj"][0], cmap="gray")
axes[0].set_title("raw projection 0 (counts)", fontsize=9)
axes[1].imshow(sino[0], cmap="gray")
axes[1].axhspan(ROW0 - 0.5, ROW0 + N_ROWS - 0.5, color="red", alpha=0.4)
axis_col = (sino.shape[2] - 1) / 2 + CENTER_OFFSET
axes[1].axvline(axis_col, color="orange", lw=0.8)
axes[1].set_title("line integrals: rows used (red), axis (orange)", fontsize=9)
axes[2].imshow(sino[:, ROW0 + N_ROWS // 2], cmap="gray", aspect="auto")
axes[2].set_title(f"sinogram of row {ROW0 + N_ROWS // 2}", fontsize=9)
axes[2].set_xlabel("detector column"), axes[2].set_ylabel("angle index")
plt.show()

# %% [markdown]
# ## The full-angle reference and the sparse scan
#
# `tomodiff.demos.diamond_i13.load` cuts out the rows and builds a `parallel_beam` geometry whose
# `center_offset` puts the grid's centre on the rotation axis; the detector keeps all 160 columns. The
# reference is SIRT (200 iterations, non-negative) from all 91 angles on the same grid. `thin_sinogram` keeps
# every 8th angle: 12 angles over 180°.

# %%
scan = diamond_i13.load(RAW, row0=ROW0, n_rows=N_ROWS, grid=64)   # y: (1, 1, 91, N_ROWS, 160), 64² grid
reference = reconstruct(Projector(scan.geometry), scan.y, method="sirt", n_iter=200, nonneg=True, progress=False)
ref = reference.mean[0, 0]
print(f"reference: SIRT, 91 angles, residual {reference.residual:.3f}, {reference.seconds:.1f} s, "
      f"values {float(ref.min()):.3f} .. {float(ref.max()):.3f} per pixel")

y, geometry_sparse = scan.sparse(8)                                # thin_sinogram: every 8th angle
A = Projector(geometry_sparse)
print(f"sparse: {geometry_sparse.n_angles} angles, y {tuple(y.shape)}")

# %% [markdown]
# ## Scale and noise for the prior
#
# The prior was trained on slices with values in [0, 1]; this sample's attenuation is about 0.1 per pixel. We
# reconstruct `x / s` instead of `x`: since `y = A x = (A·s)(x/s)`, that is the same problem with measurements
# `y / s` and noise `σ_y / s` for the same operator `A`, and the result is multiplied back by `s`.
#
# - **Scale `s`**: the 99.9th percentile of a SIRT reconstruction from the **sparse** data — it uses nothing
#   the sparse scan does not have (the full-angle reference's maximum is printed for comparison; the two
#   differ by about 10%).
# - **Noise `σ_y`**: from the air columns at both edges of the detector: the std of differences of
#   neighbouring columns, divided by √2 (differences remove slow flat-field drifts that are not noise).
#
# `diamond_i13.prior_scaling(A, y)` computes both; `tomodiff benchmark --real diamond_i13` does the same for
# every method.
#
# Every method below solves the scaled problem, so TV's weight (chosen on [0, 1] phantoms) means the same
# here; FBP and SIRT do not care (they are linear, SIRT's non-negativity is scale-free).

# %%
s, sigma_y = diamond_i13.prior_scaling(A, y)                      # both from the sparse scan only
print(f"scale s = {s:.4f} per pixel (full-angle reference: max {float(ref.max()):.4f}); "
      f"sigma_y = {sigma_y:.4f} (line integral), {sigma_y / s:.3f} after scaling")

# %% [markdown]
# ## Sparse-view reconstructions
#
# FBP (Hann), SIRT (100 iterations), TV (200 iterations, the default weight for 12 views) and ΠGDM (3 samples,
# 25 steps, `sigma_max=20`), all from the 12 angles, scored against the reference: PSNR over the 4 slices with
# the reference's value range as the peak, and SSIM per slice, averaged (a 4-slice volume is too thin for a 3D
# SSIM window).

# %%
STEPS, SAMPLES = 25, 3
PEAK = float(ref.max() - ref.min())


def scores(estimate):
    """PSNR (dB) over the slab and mean per-slice SSIM of a (Z, Y, X) estimate against the reference."""
    per_slice = ssim(estimate[:, None], ref[:, None], data_range=PEAK)   # (Z, 1): one 2D SSIM per slice
    return float(psnr(estimate, ref, data_range=PEAK)), float(per_slice.mean())


results = {}
for method in ["fbp", "sirt", "tv", "pigdm"]:
    kw = dict(prior=prior, steps=STEPS, n_samples=SAMPLES, sigma_y=sigma_y / s, sigma_max=20.0, seed=0) \
        if method == "pigdm" else {}
    results[method] = r = reconstruct(A, y / s, method=method, progress=False, **kw)
    p, q = scores(s * r.mean[0, 0])
    print(f"{method:5s} PSNR {p:5.2f} dB  SSIM {q:.3f}  residual {r.residual:.3f}  NFE {r.nfe:3d}  {r.seconds:5.1f} s")
print(f"(the reference's own residual on all 91 angles: {reference.residual:.3f})")

# %%
LABELS = {"fbp": "FBP", "sirt": "SIRT", "tv": "TV", "pigdm": "ΠGDM mean"}
k = N_ROWS // 2
images = [("reference (91 angles)", ref[k])] + [
    (f"{LABELS[m]}, 12 angles\n{scores(s * r.mean[0, 0])[0]:.1f} dB", s * r.mean[0, 0, k]) for m, r in results.items()]
std = s * results["pigdm"].std[0, 0, k]
vmax = float(ref.max())
fig, axes = plt.subplots(2, len(images), figsize=(2.2 * len(images), 4.8))
for j, (title, img) in enumerate(images):
    axes[0, j].imshow(img, cmap="gray", vmin=0, vmax=vmax)
    axes[0, j].set_title(title, fontsize=8)
    if j > 0:
        axes[1, j].imshow((img - ref[k]).abs(), cmap="magma", vmin=0, vmax=0.5 * vmax)
        axes[1, j].set_title("|error|", fontsize=8)
axes[1, 0].imshow(std, cmap="magma", vmin=0, vmax=0.5 * vmax)
axes[1, 0].set_title(f"ΠGDM std (max {float(std.max()):.3f})", fontsize=8)
for ax in axes.ravel():
    ax.axis("off")
fig.suptitle(f"detector row {ROW0 + k}; errors and std on one scale (0 to half the reference's maximum)", fontsize=9)
plt.show()

# %% [markdown]
# ## Reading the numbers
#
# - The reference is SIRT from 91 angles, so methods that smooth like SIRT are favoured a little; and it is
#   not noise-free (its own data residual is printed above). A few dB either way between close methods is
#   within what the choice of reference can shift.
# - The sample is a compact, nearly uniform blob: what TV assumes. A slice prior trained on procedural
#   phantoms has no advantage built in here; one trained on scans like this one would.
# - TV's weight is the phantom default, not tuned on this scan (tuning it against the reference would use the
#   answer); other weights score differently.
# - The scale `s` matters for ΠGDM only (the prior's [0, 1] range); the results move little when `s` is taken
#   from the full-angle reference instead — try it.
# - To scale up: more rows (`N_ROWS`, slabs of 16 are batched by `reconstruct`), `STEPS = 50`, more samples
#   for a smoother std map; `every 4th angle` (`step=4`, 23 angles) is the other sparse setting of the
#   benchmark.
