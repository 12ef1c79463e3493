"""napari plugin: reader/writer for tomodiff's HDF5 files and scans, sample data, ``tomodiff view``.

Nothing here imports napari or Qt at module level, so the core package works without them.
"""
