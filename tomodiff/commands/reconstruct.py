"""``tomodiff reconstruct``: classical or diffusion reconstruction of a sinogram file."""

from __future__ import annotations

from pathlib import Path

from ._common import RECON_METHODS, add_common, device, emit, info, load_prior


def add_parser(sub):
    p = sub.add_parser("reconstruct", help="reconstruct a sinogram file (project file, DXchange, NXtomo, TIFF stack)",
                       description="Reconstruct the sinogram in FILE and write mean (and std, samples) with "
                                   "provenance to OUT. Reports PSNR/SSIM when FILE holds a reference volume.")
    p.add_argument("file", type=Path, help="a tomodiff .h5 file (from simulate), a DXchange/NXtomo scan, or TIFF "
                                          "projections: a folder, a quoted glob ('proj/*.tif') or a scan folder")
    p.add_argument("--method", choices=RECON_METHODS, required=True)
    p.add_argument("--prior", help="prior name for diffusion methods (e.g. slice-64)")
    p.add_argument("--steps", type=int, default=50, help="diffusion steps = NFE per slab (default: %(default)s)")
    p.add_argument("--samples", type=int, default=1, help="posterior samples (default: %(default)s)")
    p.add_argument("--sigma-y", type=float, default=None,
                   help="measurement noise std (default: the file's provenance, else 0.01·max|y|)")
    p.add_argument("--iters", type=int, help="iterations of sirt/cgls/tv")
    p.add_argument("--lam", type=float, help="TV weight for --method tv")
    p.add_argument("--slab", type=int, default=32, help="axial slices per diffusion slab (default: %(default)s)")
    p.add_argument("--checkpoint", type=Path, help="resume file for long diffusion runs")
    p.add_argument("--overlap", type=int, default=None,
                   help="streaming path: slices shared by neighbouring slabs (default: 0 for fbp/sirt, 4 otherwise)")
    p.add_argument("--stream", action="store_true",
                   help="read the sinogram and write the volume slab by slab (memory bounded by the slab; implied "
                        "under torchrun, which shares the slabs among the ranks); --checkpoint is then a directory")
    p.add_argument("--keep-samples", action="store_true", help="also store the individual samples")
    scan = p.add_argument_group("raw scans (DXchange/NXtomo, TIFF stacks)")
    scan.add_argument("--flats", help="TIFF flat (open-beam) frames: a folder or a quoted glob")
    scan.add_argument("--darks", help="TIFF dark frames: a folder or a quoted glob")
    scan.add_argument("--angles", help="TIFF scans: START:STOP:COUNT in degrees (both ends included, e.g. 0:180:181) "
                                       "or a text file of angles in degrees")
    scan.add_argument("--center-offset", type=float, default=0.0, help="rotation axis minus detector centre, pixels")
    scan.add_argument("--thin", type=int, default=1, help="keep every N-th angle (sparse view)")
    scan.add_argument("--rows", help="detector rows START:STOP to reconstruct (default: all)")
    p.add_argument("--out", type=Path, required=True, help="HDF5 file to write")
    add_common(p)
    p.set_defaults(func=run)


def load_problem(args):
    """``(y (1,1,A,V,U) tensor, geometry, reference or None, sigma_y or None)`` from FILE."""
    import numpy as np
    import torch

    from ..ct import Geometry, parallel_beam
    from ..io import normalize, read_project, read_scan, require
    from ..napari.layers import file_kind

    scan = tiff_scan(args)
    kind = "tiff" if scan is not None else file_kind(args.file) if args.file.exists() else None
    if kind is None:
        if not args.file.exists():
            raise FileNotFoundError(f"{args.file}: no such file")
        raise ValueError(f"{args.file}: not a tomodiff project file nor a DXchange/NXtomo scan")
    if kind != "tiff" and (args.flats or args.darks or args.angles):
        raise ValueError(f"{args.file}: --flats, --darks and --angles are for TIFF stacks; an HDF5 file holds its own")
    if kind == "project":
        data = read_project(args.file)
        sino = require(data, "sinogram", args.file)
        geometry = Geometry.from_dict(require(data, "geometry", args.file))
        y = torch.from_numpy(np.asarray(sino, np.float32))[None, None]
        sigma_y = data.provenance.get("sigma_y")
        ref = data.reference
        if args.thin > 1:
            from ..ct import thin_sinogram
            y, geometry = thin_sinogram(y, geometry, step=args.thin)
        return y, geometry, ref, sigma_y
    if scan is None:
        scan = read_scan(args.file)
    if args.thin > 1:
        scan = scan.thin(step=args.thin)
    p = normalize(scan, clamp_gain=1e-3)
    if args.rows:
        a, b = (int(v) for v in args.rows.split(":"))
        p = p[:, a:b]
    A_, V, U = p.shape
    geometry = parallel_beam((V, U, U), scan.angles, det_shape=(V, U), center_offset=args.center_offset)
    return torch.from_numpy(p)[None, None], geometry, None, None


def tiff_scan(args):
    """The :class:`~tomodiff.io.RawScan` of a TIFF-stack FILE (folder, glob, .tif file or scan folder),
    or ``None`` when FILE is an HDF5 file."""
    from ..io.tiff_stack import TIFF_SUFFIXES, read_tiff_stack, scan_folder

    text = str(args.file)
    if not (args.file.is_dir() or any(c in text for c in "*?[") or args.file.suffix.lower() in TIFF_SUFFIXES):
        return None
    layout = scan_folder(args.file) if args.file.is_dir() else None
    if layout is not None and not (args.flats or args.darks or args.angles):
        return layout.read()  # a scan folder: proj/, flat/, dark/, angles.txt
    if not args.angles:
        raise ValueError(f"{args.file}: a TIFF stack needs --angles START:STOP:COUNT (degrees) or an angles file")
    return read_tiff_stack(args.file, angles=args.angles, flats=args.flats, darks=args.darks)


def run(args) -> int:
    from ..recon.distributed import launched

    if args.stream or launched():  # torchrun or --stream: slab by slab on every rank (reconstruct_streamed.py)
        from .reconstruct_streamed import run_streamed

        return run_streamed(args)
    import numpy as np
    import torch

    from ..ct import Projector
    from ..io import ProjectData, write_project
    from ..recon import psnr, reconstruct, ssim
    from ..recon.reconstruct import DIFFUSION

    dev = device(args.device, args.threads)
    y, geometry, ref, sigma_y = load_problem(args)
    y = y.to(dev)
    A = Projector(geometry, device=dev)
    if args.sigma_y is not None:
        sigma_y = args.sigma_y
    elif sigma_y is None:
        sigma_y = 0.01 * float(y.abs().max())
        info(f"sigma_y not given nor in the file: assuming 1% of max|y| = {sigma_y:.4g}")
    options = {}
    if args.iters is not None:
        options["n_iter"] = args.iters
    if args.lam is not None:
        options["lam"] = args.lam
    prior = load_prior(args.prior, dev) if args.method in DIFFUSION else None
    r = reconstruct(A, y, method=args.method, prior=prior, steps=args.steps, n_samples=args.samples,
                    sigma_y=sigma_y, seed=args.seed, slab=args.slab, checkpoint=args.checkpoint,
                    keep_samples=args.keep_samples, progress=not args.json, **options)
    mean = r.mean[0, 0].cpu().numpy()
    quality = {"psnr": None, "ssim": None}
    if ref is not None and ref.shape == mean.shape:
        quality = {"psnr": float(psnr(mean, ref, data_range=1.0)), "ssim": float(ssim(mean, ref, data_range=1.0))}
    recon = {"mean": mean}
    if r.std is not None:
        recon["std"] = r.std[0, 0].cpu().numpy()
    if r.samples is not None:
        recon["samples"] = r.samples[:, 0, 0].cpu().numpy()
    provenance = {**r.provenance, "input": str(args.file), "residual": r.residual, "seconds": r.seconds,
                  "nfe": r.nfe, "peak_memory_mb": r.peak_memory_mb, **quality}
    write_project(args.out, ProjectData(sinogram=y[0, 0].cpu().numpy(), geometry=geometry,
                                        reference=None if ref is None else np.asarray(ref), reconstruction=recon,
                                        provenance=provenance))
    summary = {"method": args.method, **quality, "seconds": r.seconds, "nfe": r.nfe,
               "peak_memory_mb": r.peak_memory_mb, "residual": r.residual, "out": str(args.out)}
    q = "" if quality["psnr"] is None else f", PSNR {quality['psnr']:.2f} dB, SSIM {quality['ssim']:.3f}"
    emit(args, summary, [f"{args.method}: {r.seconds:.1f} s, NFE {r.nfe}, residual {r.residual:.3g}{q}",
                         f"wrote {args.out}  (view: tomodiff view {args.out})"])
    return 0
