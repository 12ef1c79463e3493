"""``tomodiff simulate``: a sparse-view CT scan of a phantom or a volume, written as a project file."""

from __future__ import annotations

from pathlib import Path

from ._common import NON_NEGATIVE, POSITIVE, add_common, check_output_file, emit, info, int_at_least


def add_parser(sub):
    p = sub.add_parser("simulate", help="simulate a sparse-view CT scan of a phantom or volume",
                       description="Project a phantom or a volume with N views and Gaussian noise; write the "
                                   "sinogram, its geometry and the volume (as reference) to an HDF5 file.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--phantom", help="a benchmark-set name (e.g. shepp_logan_64_a) or FAMILY:SEED[:SIZE]")
    src.add_argument("--volume", help="a volume file: FILE.npy, FILE.h5 or FILE.h5:DATASET")
    p.add_argument("--views", type=int_at_least(1), default=16, help="number of projection angles (default: %(default)s)")
    p.add_argument("--geometry", choices=("parallel", "fan", "cone"), default="parallel",
                   help="parallel beam over 180 degrees, fan beam (2D: the volume's middle axial slice) or cone beam "
                        "over 360 (default: %(default)s)")
    p.add_argument("--arc", type=POSITIVE, default=None, metavar="DEG",
                   help="a limited arc of DEG degrees instead of the full one (parallel: at most 180, fan and cone: "
                        "360); views equally spaced over [0, DEG)")
    p.add_argument("--noise", type=NON_NEGATIVE, default=0.01,
                   help="Gaussian noise std relative to the largest line integral (default: %(default)s)")
    p.add_argument("--voxel-size", type=POSITIVE, default=1.0, help="voxel edge in world units (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="HDF5 file to write (never the --volume file)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io.lock import output_lock  # start-up time
    from ..io.volumes import load_volume  # start-up time
    from ._common import device  # start-up time

    volume_file = args.volume.split(":")[0] if args.volume else None
    check_output_file(args.out, [volume_file, args.volume])
    full = 180.0 if args.geometry == "parallel" else 360.0
    if args.arc is not None and args.arc > full:  # before any work
        raise ValueError(f"--arc {args.arc:g}: at most {full:g} degrees for {args.geometry} beam")
    device(args.device, args.threads)
    with output_lock(args.out):  # one writer per output
        return _simulate(args, load_volume(args.phantom or args.volume))


def _simulate(args, loaded) -> int:
    from ..ct.simulate import simulate_scan  # start-up time
    from ..io import ProjectData, write_project  # start-up time

    volume, desc = loaded
    if args.geometry == "fan":  # fan beam is 2D: the middle axial slice is the object
        volume = volume[volume.shape[0] // 2]
        info(f"fan beam is 2D: simulating the middle axial slice of the volume ({tuple(volume.shape)})")
    y, geometry, sigma_y = simulate_scan(volume[None] if volume.dim() == 2 else volume, views=args.views, kind=args.geometry, noise=args.noise,
                                         seed=args.seed, voxel_size=args.voxel_size, arc_deg=args.arc)
    provenance = {"command": "simulate", "volume": desc.get("source"), "views": args.views, "arc_deg": args.arc,
                  "geometry_kind": args.geometry, "noise_relative": args.noise, "sigma_y": sigma_y,
                  "seed": args.seed,
                  # the object's attenuation range (per world unit): `reconstruct --scale auto` maps mu_max to 1
                  "mu_min": float(volume.min()), "mu_max": float(volume.max())}
    write_project(args.out, ProjectData(sinogram=y[0, 0].numpy(), geometry=geometry, reference=volume.numpy(),
                                        provenance=provenance))
    summary = {"out": str(args.out), "volume_shape": list(volume.shape), "sinogram_shape": list(y.shape[2:]),
               "sigma_y": sigma_y, "views": args.views, "geometry": args.geometry}
    arc = f" over {args.arc:g} degrees" if args.arc is not None else ""
    emit(args, summary, [f"wrote {args.out}: volume {tuple(volume.shape)}, sinogram {tuple(y.shape[2:])} "
                         f"({args.views} {args.geometry}-beam views{arc}, sigma_y={sigma_y:.4g})"])
    if not args.json:
        info(f"next: tomodiff reconstruct {args.out} --method fbp --out recon.h5")
    return 0
