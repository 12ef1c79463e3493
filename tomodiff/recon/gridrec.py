"""Optional adapter to TomoPy's gridrec (Fourier-grid FBP) for parallel-beam scans.

TomoPy is conda-only (``conda install -c conda-forge tomopy``), so it is imported lazily inside
:func:`gridrec`; this module always imports. The result is brought to tomodiff's layout and units
(``(B, C, Y, X)`` / ``(B, C, Z, Y, X)``, attenuation per world unit).

Untested here (no TomoPy on the development machines): whether TomoPy's angle origin and
rotation sense match ``tomodiff.ct.geometry`` — compare with :func:`~tomodiff.recon.fbp` once on a
machine with TomoPy, and flip/rotate here if they differ.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch

from ..operators.base import LinearOperator
from ._common import check_measurement, check_operator

TOMOPY_FILTERS = ("shepp", "cosine", "hann", "hamming", "ramlak", "parzen", "butterworth")


def _import_tomopy():
    try:
        return importlib.import_module("tomopy")
    except ImportError as err:
        raise ImportError(
            "gridrec needs TomoPy, which is not installed. It is not on PyPI: install it with "
            "`conda install -c conda-forge tomopy`, or use tomodiff.recon.fbp instead.") from err


def tomopy_available() -> bool:
    """Whether ``import tomopy`` works in this environment."""
    try:
        _import_tomopy()
    except ImportError:
        return False
    return True


def gridrec(A: LinearOperator, y: torch.Tensor, *, filter: str = "ramlak", ncore: int | None = None,
            geometry=None) -> torch.Tensor:
    """Reconstruct a parallel-beam scan with TomoPy's gridrec.

    Parameters
    ----------
    A:
        A parallel-beam ``tomodiff.ct.Projector`` (only its ``geometry`` is used), or any operator
        with ``geometry=`` given. The volume must be ``U × U`` per slice with ``voxel_size ==
        det_spacing`` (gridrec's own output grid).
    y:
        Line integrals in world units, ``(B, C, A, U)`` (2D) or ``(B, C, A, V, U)`` (3D, V == Z).
    filter:
        One of TomoPy's filter names ``TOMOPY_FILTERS``.
    ncore:
        Threads for TomoPy (default: its own choice).

    Returns
    -------
    ``x`` ``(B, C, *A.domain_shape)`` on ``y``'s device and dtype, attenuation per world unit.

    Raises
    ------
    ImportError: TomoPy is not installed (with how to install it).
    """
    name = "gridrec"
    check_operator(A, name)
    g = geometry if geometry is not None else getattr(A, "geometry", None)
    if g is None:
        raise TypeError(f"{name}: A has no .geometry; pass a tomodiff.ct Projector or geometry=...")
    y = check_measurement(A, y, name)
    if g.kind != "parallel":
        raise ValueError(f"{name}: gridrec handles parallel beam only, got a {g.kind}-beam geometry")
    if filter not in TOMOPY_FILTERS:
        raise ValueError(f"{name}: filter must be one of {TOMOPY_FILTERS}, got {filter!r}")
    U = g.det_shape[-1]
    if tuple(g.volume_shape[-2:]) != (U, U) or g.voxel_size != g.det_spacing:
        raise ValueError(f"{name}: gridrec reconstructs a {U}×{U} grid of detector-pixel-sized "
                         f"voxels; the geometry has volume {g.volume_shape} with voxel_size "
                         f"{g.voxel_size} and det_spacing {g.det_spacing}")
    tomopy = _import_tomopy()

    theta = np.asarray(g.angles, dtype=np.float32)
    center = (U - 1) / 2.0 + g.center_offset
    lead = y.shape[:2]
    out = []
    for item in y.reshape(-1, *y.shape[2:]).detach().cpu().numpy().astype(np.float32):
        tomo = item[:, None, :] if g.ndim == 2 else item          # TomoPy: (angles, rows, cols)
        rec = tomopy.recon(tomo, theta, center=center, algorithm="gridrec", filter_name=filter,
                           ncore=ncore)
        rec = rec[0] if g.ndim == 2 else rec
        out.append(rec / g.det_spacing)                            # per pixel -> per world unit
    x = torch.as_tensor(np.stack(out), dtype=y.dtype, device=y.device)
    return x.reshape(*lead, *A.domain_shape)
