"""npe2 writer: an image layer saved as the reconstruction of a tomodiff project file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import ProjectData, read_project, write_project


def write_reconstruction(path: str, data, meta: dict) -> list[str]:
    """Write ``data`` (2D or 3D) as ``/reconstruction/mean``. If ``path`` already is a project file,
    only its reconstruction is replaced (atomically); the layer's name and metadata go to provenance."""
    path = Path(path)
    arr = np.asarray(data, dtype=np.float32)
    provenance = {"written_by": "napari", "layer": meta.get("name", "")}
    provenance.update({k: v for k, v in (meta.get("metadata") or {}).items() if isinstance(v, (str, int, float))})
    if path.exists():
        project = read_project(path)
        project.reconstruction = {"mean": arr}
        project.provenance = {**project.provenance, **provenance}
    else:
        project = ProjectData(reconstruction={"mean": arr}, provenance=provenance)
    write_project(path, project)
    return [str(path)]
