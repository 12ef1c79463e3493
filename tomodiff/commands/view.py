"""``tomodiff view``: open reconstructions and scans in napari."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("view", help="open tomodiff HDF5 files (and DXchange/NXtomo scans) in napari",
                       description="Open one or more files in napari: reference, posterior mean, std, "
                                   "samples and |mean - reference| as separate layers.")
    p.add_argument("files", nargs="+", type=Path,
                   help="tomodiff .h5 files, DXchange/NXtomo scans or TIFF scan folders (proj/, flat/, dark/, angles.txt)")
    p.add_argument("--overlay", action="store_true", help="overlay the layers instead of a side-by-side grid")
    p.add_argument("--3d", dest="three_d", action="store_true", help="start in 3D (volume rendering)")
    p.add_argument("--no-error-map", action="store_true", help="do not add |mean - reference| layers")
    p.set_defaults(func=run)


def check_display(env=None, platform: str | None = None) -> None:
    """A RuntimeError with what to do when there is no screen for napari's window (Qt would abort
    the process, exit 134): on Linux, no ``DISPLAY`` and no ``WAYLAND_DISPLAY``."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    headless_qt = env.get("QT_QPA_PLATFORM") in ("offscreen", "minimal")
    if platform.startswith("linux") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or headless_qt):
        raise RuntimeError("no display for napari's window (DISPLAY is not set): run it on a desktop, over ssh -X, "
                           "or under a virtual screen: xvfb-run -a tomodiff view FILE")


def run(args) -> int:
    from ..io.kind import probe  # start-up time
    from ..io.tiff_stack import scan_folder  # start-up time

    for path in args.files:  # every file checked (one clear line each) before napari starts
        if scan_folder(path) is None:  # a TIFF scan folder (proj/, flat/, dark/, angles.txt) is read as a scan
            probe(path)
    check_display()
    from ..napari.view import _require_napari, build_viewer  # start-up time

    napari = _require_napari()
    build_viewer(args.files, grid=not args.overlay, ndisplay=3 if args.three_d else 2,
                 error_map=not args.no_error_map)
    napari.run()
    return 0
