"""Open tomodiff files in a napari viewer, side by side (grid) or overlaid."""

from __future__ import annotations

from pathlib import Path

from .layers import path_kind, project_layers, scan_layers


def _require_napari():
    try:
        import napari  # optional: napari
    except ImportError as err:  # the core package works without napari; the viewer does not
        raise RuntimeError("napari is not installed: pip install 'tomodiff[napari]'") from err
    return napari


def build_viewer(paths, *, grid: bool = True, ndisplay: int = 2, show: bool = True, error_map: bool = True):
    """A ``napari.Viewer`` with the layers of every file in ``paths``.

    grid: one grid cell per layer (side by side) instead of overlaid; ndisplay: 2 (slices) or 3
    (volume rendering); error_map: add ``|mean − reference|`` where a file holds both.
    """
    napari = _require_napari()
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
        if path_kind(p) is None:
            raise ValueError(f"{p}: not a tomodiff project file, a DXchange/NXtomo scan nor a TIFF scan folder")
    viewer = napari.Viewer(title="tomodiff: " + ", ".join(p.name for p in paths), show=show)
    for p in paths:
        layers = project_layers(p, error_map=error_map) if path_kind(p) == "project" else scan_layers(p)
        for data, kwargs, _ in layers:
            viewer.add_image(data, **kwargs)
    viewer.grid.enabled = grid
    viewer.dims.ndisplay = ndisplay
    return viewer
