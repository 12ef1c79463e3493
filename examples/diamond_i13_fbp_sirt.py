"""FBP and SIRT of a measured synchrotron scan (Diamond I13-2, scan 24737), full and sparse views.

Data: ``../shared/data/diamond_i13_24737/24737_raw.npz`` (see ``SOURCES.md`` there): 91 raw
projections (135 rows × 160 columns) over 180°, one flat and one dark frame. Steps:

1. flat/dark correction, renormalised on an air patch (the flat is brighter than open air), then −log;
2. a few detector rows around the middle (Z slices) as a 3D parallel-beam problem, with the
   rotation axis ≈ 6 px right of the detector centre (``center_offset``);
3. FBP (Hann window) and SIRT (non-negative) from all 91 angles and from every 8th angle (12);
4. a PNG of the central slice of each reconstruction.

Run:  ``TOMODIFF_SHARED_DATA=../shared/data python examples/diamond_i13_fbp_sirt.py [--out figure.png]``
(or give the file with ``--data``; about a minute on two CPU cores). Lengths are in detector
pixels (voxel = pixel = 1), so values are attenuation per pixel.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tomodiff.ct import Projector, parallel_beam, thin_sinogram  # noqa: E402
from tomodiff.demos import diamond_i13  # noqa: E402
from tomodiff.recon import fbp, sirt  # noqa: E402

CENTER_OFFSET = diamond_i13.CENTER_OFFSET   # rotation axis at column ≈ 86 vs detector centre 79.5
N_ROWS = 4               # detector rows reconstructed (around the middle): a few slices only


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="24737_raw.npz (default: $TOMODIFF_SHARED_DATA/diamond_i13_24737/24737_raw.npz)")
    parser.add_argument("--out", type=Path, default=Path("diamond_i13_fbp_sirt.png"))
    parser.add_argument("--sirt-iters", type=int, default=200)
    args = parser.parse_args(argv)

    mid = 135 // 2
    rows = slice(mid - N_ROWS // 2, mid - N_ROWS // 2 + N_ROWS)
    sino, angles = diamond_i13.line_integrals(args.data)   # flat/dark, air renormalisation, −log
    sino = sino[:, rows, :]
    n_angles, n_rows, n_cols = sino.shape
    geom = parallel_beam((n_rows, n_cols, n_cols), angles, det_shape=(n_rows, n_cols),
                         center_offset=CENTER_OFFSET)
    y = torch.from_numpy(sino)[None, None]                           # (B=1, C=1, A, V, U)

    results = {}
    for label, step in (("91 angles", 1), ("every 8th angle (12)", 8)):
        y_k, geom_k = (y, geom) if step == 1 else thin_sinogram(y, geom, step=step)
        A = Projector(geom_k)
        t0 = time.perf_counter()
        x_fbp = fbp(A, y_k, filter="hann")
        t1 = time.perf_counter()
        x_sirt = sirt(A, y_k, n_iter=args.sirt_iters, nonneg=True)
        t2 = time.perf_counter()
        print(f"{label}: FBP {t1 - t0:.1f} s, SIRT ({args.sirt_iters} it.) {t2 - t1:.1f} s "
              f"(backend {A.backend}, includes the first call's matrix build)")
        results[f"FBP, {label}"] = x_fbp[0, 0, n_rows // 2].numpy()
        results[f"SIRT, {label}"] = x_sirt[0, 0, n_rows // 2].numpy()

    # the sample fills only the middle of the field of view: show a window around it, with the
    # whole field of view of the sparse FBP as a fifth panel (streaks reach the edges)
    ref = results["SIRT, 91 angles"]
    iy, ix = np.nonzero(ref > 0.3 * ref.max())
    cy, cx, half = int(iy.mean()), int(ix.mean()), 40
    win = (slice(max(cy - half, 0), cy + half), slice(max(cx - half, 0), cx + half))
    vmin, vmax = 0.0, float(ref.max())
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.5), constrained_layout=True)
    full = axes[0, 2].imshow(results["FBP, every 8th angle (12)"], cmap="gray", vmin=vmin, vmax=0.3 * vmax)
    axes[0, 2].set_title("FBP, 12 angles, whole field of view\n(grey scale ×0.3)", fontsize=10)
    axes[0, 2].add_patch(plt.Rectangle((win[1].start, win[0].start), 2 * half, 2 * half, fill=False,
                                       edgecolor="tab:orange"))
    axes[0, 2].axis("off")
    axes[1, 2].axis("off")
    for ax, (title, img) in zip(axes[:, :2].T.ravel(), results.items()):
        im = ax.imshow(img[win], cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label="attenuation per pixel")
    fig.suptitle(f"Diamond I13-2 scan 24737, detector row {mid} (centre offset {CENTER_OFFSET:+g} px)")
    fig.savefig(args.out, dpi=110)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
