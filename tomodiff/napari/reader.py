"""npe2 reader: tomodiff project files, DXchange/NXtomo scans and TIFF scan folders."""

from __future__ import annotations

from .layers import path_kind as _kind
from .layers import project_layers, scan_layers


def get_reader(path):
    """Return a reader function for ``path`` or ``None`` if tomodiff cannot read it (never raises).
    A folder is read when it is a TIFF scan folder (``proj/``, ``flat/``, ``dark/``, ``angles.txt``)."""
    if isinstance(path, (list, tuple)):
        if not path or any(_kind(p) is None for p in path):
            return None
        return read_paths
    return read_paths if _kind(path) is not None else None


def read_paths(path) -> list[tuple]:
    paths = path if isinstance(path, (list, tuple)) else [path]
    layers = []
    for p in paths:
        layers += project_layers(p) if _kind(p) == "project" else scan_layers(p)
    return layers
