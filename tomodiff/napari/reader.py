"""npe2 reader: tomodiff project files and DXchange/NXtomo scans."""

from __future__ import annotations

from ..io.kind import file_kind
from .layers import project_layers, scan_layers


def get_reader(path):
    """Return a reader function for ``path`` or ``None`` if tomodiff cannot read it (never raises)."""
    if isinstance(path, (list, tuple)):
        if not path or any(file_kind(p) is None for p in path):
            return None
        return read_paths
    return read_paths if file_kind(path) is not None else None


def read_paths(path) -> list[tuple]:
    paths = path if isinstance(path, (list, tuple)) else [path]
    layers = []
    for p in paths:
        layers += project_layers(p) if file_kind(p) == "project" else scan_layers(p)
    return layers
