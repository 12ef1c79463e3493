"""The checks of ``tomodiff reconstruct``'s options that need no data, shared by its in-memory and
streaming paths: they run before anything is read, computed or written."""

from __future__ import annotations

from .. import methods
from ._common import check_output_dir, check_output_file, given, refuse_inapplicable

# options of raw scans only (a project file carries its own geometry), and of TIFF stacks only
RAW_SCAN_OPTIONS = ("center_offset", "rows", "pixel_size", "voxel_size")
TIFF_OPTIONS = ("flats", "darks", "angles")


def refuse_for_kind(args, kind: str) -> None:
    """Refuse the options that do not apply to FILE's kind (``file_kind``: project, scan, tiff),
    the same on every path."""
    if kind != "tiff":
        refuse_inapplicable(args, TIFF_OPTIONS, f"to {args.file}: they are for TIFF stacks; an HDF5 scan holds "
                                                "its own flats, darks and angles")
    if kind == "project":
        refuse_inapplicable(args, RAW_SCAN_OPTIONS, f"to {args.file}: a project file holds its own geometry "
                                                    "(these options are for raw scans)")


def check_args(args, *, streaming: bool = False) -> None:
    """Every check that needs no data: method-specific options, output path. Runs first.
    ``streaming``: the slab-by-slab path, where every method runs in slabs (``--slab``, ``--checkpoint``)."""
    m = methods.get(args.method)
    if not m.diffusion:
        slabbed = () if streaming else ("slab", "checkpoint")
        refuse_inapplicable(args, ("prior", "prior_file", "steps", "samples", *slabbed, "keep_samples", "seed",
                                   "guard"),
                            f"to --method {m.name} (diffusion methods only)")
        if m.name != "tv":
            refuse_inapplicable(args, ("sigma_y",), f"to --method {m.name} (diffusion methods and tv only)")
        elif streaming:  # TV's weight from the noise level needs the whole volume's data (in memory)
            refuse_inapplicable(args, ("sigma_y",), "to --method tv on the streaming path (--stream, torchrun): "
                                                    "there TV takes --lam or 0.006 x views")
        elif given(args, "lam"):
            refuse_inapplicable(args, ("sigma_y",), "to --method tv with --lam (the noise level only chooses "
                                                    "TV's weight)")
    if m.name not in ("sirt", "cgls", "tv"):
        refuse_inapplicable(args, ("iters",), f"to --method {m.name} (sirt, cgls and tv only)")
    if m.name != "tv":
        refuse_inapplicable(args, ("lam",), f"to --method {m.name} (tv only)")
    if args.voxel_size is not None and args.pixel_size is None:
        raise ValueError("--voxel-size needs --pixel-size (both in the same length unit)")
    inputs = [args.file, args.checkpoint, args.flats, args.darks, args.angles]
    check_output_file(args.out, inputs)
    if args.checkpoint is not None:
        check_output_dir(args.checkpoint, [args.file, args.flats, args.darks, args.angles, args.out],
                         option="--checkpoint")
