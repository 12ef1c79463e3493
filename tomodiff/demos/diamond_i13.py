"""The measured Diamond I13-2 scan 24737 as a sparse-view test case.

The raw file (``diamond_i13_24737/24737_raw.npz`` in the shared data folder, see its
``SOURCES.md``) holds 91 projections of 135 rows × 160 columns over 180°, one flat and one dark
frame. This module turns it into a reconstruction problem on the prior's 64² grid:

- flat/dark correction, renormalised on an air patch (this scan's flat is brighter than open air;
  one dead pixel has flat == dark and is clamped), then −log;
- detector rows 64–71 (the sample alone, above its wider holder) as axial slices, on a 64 × 64
  grid centred on the rotation axis (≈ 6 px right of the detector centre), 1 voxel = 1 pixel;
- the reference is SIRT from all 91 angles; sparse scans keep every k-th angle;
- :func:`prior_scaling` gives the factor that brings the sample into the prior's [0, 1] range and
  the noise level, both from the sparse scan alone (the reference is never used to set them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

RELATIVE_PATH = Path("diamond_i13_24737") / "24737_raw.npz"
CENTER_OFFSET = 6.0                    # rotation axis − detector centre, pixels (SOURCES.md: axis ≈ column 86)
AIR_PATCH = (slice(0, 20), slice(0, 20))
ROW0, N_ROWS, GRID = 64, 8, 64


def data_root() -> Path:
    """``$TOMODIFF_SHARED_DATA``, else ``shared/data`` beside the repository checkout."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    return Path(os.environ.get("TOMODIFF_SHARED_DATA", default))


def find_raw(path=None) -> Path:
    """The raw ``.npz`` file; a clear error when it is missing."""
    path = Path(path) if path is not None else data_root() / RELATIVE_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the Diamond I13 scan 24737 is needed here. Set "
                                f"TOMODIFF_SHARED_DATA to the folder that holds {RELATIVE_PATH}, or pass its path.")
    return path


def line_integrals(path=None) -> tuple[np.ndarray, np.ndarray]:
    """All line integrals ``(91 angles, 135 rows, 160 columns)`` float32 and the angles in radians."""
    from ..io import RawScan, normalize

    path = find_raw(path)
    raw = np.load(path)
    scan = RawScan(projections=raw["proj"].astype(np.float32), flats=raw["flat"][None].astype(np.float32),
                   darks=raw["dark"][None].astype(np.float32),
                   angles=np.deg2rad(raw["angles_deg"].astype(np.float64)), source=str(path))
    return normalize(scan, air_region=AIR_PATCH, clamp_gain=1e-3), scan.angles


@dataclass
class RealScan:
    """The full-angle problem: ``y`` ``(1, 1, 91, rows, 160)`` line integrals (per pixel) and its geometry."""

    y: torch.Tensor
    geometry: object
    rows: slice

    def sparse(self, step: int):
        """``(y, geometry)`` keeping every ``step``-th angle."""
        from ..ct import thin_sinogram

        return thin_sinogram(self.y, self.geometry, step=step)

    def reference(self, n_iter: int = 200) -> torch.Tensor:
        """SIRT (non-negative) from all angles, ``(rows, GRID, GRID)`` attenuation per pixel."""
        from ..ct import Projector
        from ..recon import sirt

        return sirt(Projector(self.geometry), self.y, n_iter=n_iter, nonneg=True, progress=False)[0, 0]


def load(path=None, *, row0: int = ROW0, n_rows: int = N_ROWS, grid: int = GRID) -> RealScan:
    """The scan as a parallel-beam problem on ``n_rows`` axial slices of ``grid²`` voxels."""
    from ..ct import parallel_beam

    sino, angles = line_integrals(path)
    if not 0 <= row0 < row0 + n_rows <= sino.shape[1]:
        raise ValueError(f"rows {row0}..{row0 + n_rows - 1} outside the detector's {sino.shape[1]} rows")
    rows = slice(row0, row0 + n_rows)
    geometry = parallel_beam((n_rows, grid, grid), angles, det_shape=(n_rows, sino.shape[2]),
                             center_offset=CENTER_OFFSET)
    y = torch.from_numpy(np.ascontiguousarray(sino[:, rows]))[None, None]
    return RealScan(y=y, geometry=geometry, rows=rows)


def prior_scaling(A, y: torch.Tensor, *, air_columns: int = 20) -> tuple[float, float]:
    """``(s, sigma_y)`` for reconstructing ``x / s`` from ``y / s`` with a [0, 1] prior.

    ``s``: the 99.9th percentile of a non-negative SIRT (100 iterations) from this (sparse) ``y``;
    ``sigma_y``: noise std of the line integrals, from air columns at both detector edges (std of
    neighbouring-column differences / √2, which removes slow flat-field drifts). The first two
    columns are skipped (edge artefacts of this detector).
    """
    from ..recon import sirt

    x = sirt(A, y, n_iter=100, nonneg=True, progress=False)
    s = float(torch.quantile(x.flatten(), 0.999))
    air = torch.cat([y[..., 2:2 + air_columns], y[..., -air_columns:]], dim=-1)
    sigma_y = float(air.diff(dim=-1).std() / 2 ** 0.5)
    return s, sigma_y
