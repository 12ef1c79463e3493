"""The checks of ``tomodiff reconstruct``'s options that need no data, shared by its in-memory and
streaming paths: they run before anything is read, computed or written."""

from __future__ import annotations

from .. import methods
from ._common import check_output_dir, check_output_file, given, refuse_inapplicable

# options of raw scans only (a project file carries its own geometry), of TIFF stacks only, and of
# measured data read in memory only (the streaming path reads DXchange/NXtomo slab by slab, parallel beam)
RAW_SCAN_OPTIONS = ("center_offset", "rows", "pixel_size", "voxel_size", "geometry", "source_origin",
                    "source_detector", "origin_detector", "rings", "air_region")
TIFF_OPTIONS = ("flats", "darks")
ANGLE_OPTIONS = ("angles",)  # TIFF stacks and numpy scans (.npz without angles, .npy)
IN_MEMORY_OPTIONS = ("geometry", "source_origin", "source_detector", "origin_detector", "rings", "air_region")
DISTANCES = ("source_origin", "source_detector", "origin_detector")


def refuse_for_kind(args, kind: str) -> None:
    """Refuse the options that do not apply to FILE's kind (``file_kind``: project, scan, tiff,
    array), the same on every path."""
    if kind != "tiff":
        refuse_inapplicable(args, TIFF_OPTIONS, f"to {args.file}: they are for TIFF stacks; an HDF5 or numpy scan "
                                                "holds its own flats and darks")
    if kind not in ("tiff", "array"):
        refuse_inapplicable(args, ANGLE_OPTIONS, f"to {args.file}: it is for TIFF stacks and numpy scans; an HDF5 "
                                                 "scan holds its own angles")
    if kind == "project":
        refuse_inapplicable(args, RAW_SCAN_OPTIONS, f"to {args.file}: a project file holds its own geometry "
                                                    "(these options are for raw scans)")


def check_beam(args) -> None:
    """The beam options that need no data: distances only for fan/cone beam, and consistent;
    fan/cone need the detector pixel (the distances' unit); ``auto`` centres for parallel beam."""
    from ..io.beam import resolve_distances  # start-up time

    kind = getattr(args, "geometry", None) or "parallel"
    if kind == "parallel":
        refuse_inapplicable(args, DISTANCES, "to parallel beam (--geometry fan or cone take distances)")
        return
    resolve_distances(args.source_origin, args.source_detector, args.origin_detector)
    if args.pixel_size is None:
        raise ValueError(f"--geometry {kind} needs --detector-pixel (the detector pitch, in the unit of the distances)")
    if args.center_offset == "auto":
        raise ValueError(f"--center-offset auto is for parallel beam; give the offset of the {kind}-beam scan in "
                         "pixels")


def check_args(args, *, streaming: bool = False) -> None:
    """Every check that needs no data: method-specific options, output path. Runs first.
    ``streaming``: the slab-by-slab path, where every method runs in slabs (``--slab``, ``--checkpoint``)."""
    m = methods.get(args.method)
    if streaming:
        refuse_inapplicable(args, IN_MEMORY_OPTIONS, "on the streaming path (--stream, torchrun): reconstruct "
                                                     "without --stream")
        if getattr(args, "center_offset", None) == "auto":
            raise ValueError("--center-offset auto is not available on the streaming path (--stream, torchrun); "
                             "give the offset in pixels (tomodiff reconstruct FILE --center-offset auto, without "
                             "--stream, finds it)")
        if str(args.file).lower().endswith((".npy", ".npz")):
            raise ValueError(f"{args.file}: numpy scans are not available on the streaming path (--stream, "
                             "torchrun); reconstruct them without --stream")
    check_beam(args)
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
