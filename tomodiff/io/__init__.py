"""Files: tomodiff's HDF5 project layout, readers for measured scans, atomic writes."""

from .atomic import atomic_h5, atomic_path
from .project_file import (ProjectData, ProjectFileError, read_project, require, update_project,
                           write_project)
from .scans import RawScan, ScanFormatError, normalize, read_dxchange, read_nxtomo, read_scan, thin_indices
from .tiff_stack import parse_angles, read_tiff_stack, scan_folder

__all__ = [
    "atomic_h5", "atomic_path",
    "ProjectData", "ProjectFileError", "read_project", "write_project", "update_project", "require",
    "RawScan", "ScanFormatError", "read_dxchange", "read_nxtomo", "read_scan", "normalize", "thin_indices",
    "read_tiff_stack", "parse_angles", "scan_folder",
]
