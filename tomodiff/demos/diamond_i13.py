"""The measured Diamond I13-2 scan 24737 as a sparse-view test case.

The raw file (``diamond_i13_24737/24737_raw.npz`` in the shared data folder, see its
``SOURCES.md``; pass its path, or set ``$TOMODIFF_SHARED_DATA`` to that folder) holds 91
projections of 135 rows × 160 columns over 180°, one flat and one dark frame. This module turns
it into a reconstruction problem on the prior's 64² grid:

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

from ..ct import Projector, parallel_beam, thin_sinogram
from ..io import RawScan, normalize
from ..recon import sirt

DATA_ENV = "TOMODIFF_SHARED_DATA"
RELATIVE_PATH = Path("diamond_i13_24737") / "24737_raw.npz"
CENTER_OFFSET = 6.0                    # rotation axis − detector centre, pixels (SOURCES.md: axis ≈ column 86)
AIR_PATCH = (slice(0, 20), slice(0, 20))
ROW0, N_ROWS, GRID = 64, 8, 64


def find_raw(path=None) -> Path:
    """The raw ``.npz`` file: ``path``, else ``$TOMODIFF_SHARED_DATA/`` :data:`RELATIVE_PATH`; a
    one-line error when it is missing."""
    hint = f"set {DATA_ENV} to the folder that holds {RELATIVE_PATH}, or pass the file's path"
    if path is None:
        root = os.environ.get(DATA_ENV)
        if not root:
            raise FileNotFoundError(f"the Diamond I13 scan 24737 is needed here and {DATA_ENV} is not set: {hint}")
        path = Path(root) / RELATIVE_PATH
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the Diamond I13 scan 24737 is needed here; {hint}")
    return path


def line_integrals(path=None) -> tuple[np.ndarray, np.ndarray]:
    """All line integrals ``(91 angles, 135 rows, 160 columns)`` float32 and the angles in radians."""
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
        return thin_sinogram(self.y, self.geometry, step=step)

    def reference(self, n_iter: int = 200) -> torch.Tensor:
        """SIRT (non-negative) from all angles, ``(rows, GRID, GRID)`` attenuation per pixel."""
        return sirt(Projector(self.geometry), self.y, n_iter=n_iter, nonneg=True, progress=False)[0, 0]


def load(path=None, *, row0: int = ROW0, n_rows: int = N_ROWS, grid: int = GRID) -> RealScan:
    """The scan as a parallel-beam problem on ``n_rows`` axial slices of ``grid²`` voxels."""
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
    x = sirt(A, y, n_iter=100, nonneg=True, progress=False)
    s = float(torch.quantile(x.flatten(), 0.999))
    air = torch.cat([y[..., 2:2 + air_columns], y[..., -air_columns:]], dim=-1)
    sigma_y = float(air.diff(dim=-1).std() / 2 ** 0.5)
    return s, sigma_y
