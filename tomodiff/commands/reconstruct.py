"""``tomodiff reconstruct``: classical or diffusion reconstruction of a sinogram file.

Data safety: the output path is checked (not an input, not the checkpoint, writable) before any
work; the output is written atomically; a ``--checkpoint`` is removed only once the output is on
disk. Options that do not apply to the method or to the kind of FILE are errors.
"""

from __future__ import annotations

from pathlib import Path

from ._common import (CLASSICAL_METHODS, DIFFUSION_METHODS, NON_NEGATIVE, POSITIVE, RECON_METHODS, add_common,
                      check_output_file, device, emit, info, int_at_least, load_prior, parse_rows, real,
                      refuse_inapplicable, std_note)

DEFAULT_STEPS = 50
DEFAULT_SAMPLES = 4  # a std needs several samples; 4 is the least that gives a usable one
DEFAULT_SLAB = 32
# options of raw scans only (a project file carries its own geometry)
RAW_SCAN_OPTIONS = ("center_offset", "rows", "pixel_size", "voxel_size")
TIFF_OPTIONS = ("flats", "darks", "angles")


def _scale(text: str):
    if text in ("auto", "none"):
        return text
    return POSITIVE(text)


def add_parser(sub):
    p = sub.add_parser("reconstruct", help="reconstruct a sinogram file (project file, DXchange, NXtomo, TIFF stack)",
                       description="Reconstruct the sinogram in FILE and write mean (and std, samples) with "
                                   "provenance to OUT. Reports PSNR/SSIM when FILE holds a reference volume "
                                   "(data range: the reference's max - min, recorded in the output).")
    p.add_argument("file", type=Path, help="a tomodiff .h5 file (from simulate), a DXchange/NXtomo scan, or TIFF "
                                          "projections: a folder, a quoted glob ('proj/*.tif') or a scan folder")
    p.add_argument("--method", choices=RECON_METHODS, required=True,
                   help="auto: the diffusion method and steps chosen by the sampler sweep")
    p.add_argument("--guard", action="store_true",
                   help="diffusion: keep the result at least as data-consistent as TV (final CG, else TV)")
    p.add_argument("--prior", help="prior name for diffusion methods (default: ct-slice, trained on real CT; "
                                   "slice-64: phantoms)")
    p.add_argument("--steps", type=int_at_least(1), default=None,
                   help=f"diffusion steps = NFE per slab (default: {DEFAULT_STEPS})")
    p.add_argument("--samples", type=int_at_least(1), default=None,
                   help=f"posterior samples; the std needs >= 2 (default: {DEFAULT_SAMPLES})")
    p.add_argument("--sigma-y", type=NON_NEGATIVE, default=None,
                   help="diffusion methods: measurement noise std in the units of the line integrals "
                        "(default: the file's provenance, else 0.01·max|y|)")
    p.add_argument("--iters", type=int_at_least(1), help="iterations of sirt/cgls/tv")
    p.add_argument("--lam", type=NON_NEGATIVE,
                   help="TV weight for --method tv, for the volume after the scale step (values near [0, 1])")
    p.add_argument("--scale", type=_scale, default="auto",
                   help="scale step into the prior's [0, 1] range: auto (a simulated scan's recorded mu_max maps to 1; "
                        "a raw scan's 99.9%% quantile of a quick FBP does), none (data already in [0, 1] units) or the "
                        "attenuation (in the volume's units) that maps to 1 (default: %(default)s)")
    p.add_argument("--slab", type=int_at_least(1), default=None,
                   help=f"axial slices per diffusion slab (default: {DEFAULT_SLAB})")
    p.add_argument("--checkpoint", type=Path, help="resume file for long diffusion runs (removed once OUT is written)")
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
    scan.add_argument("--center-offset", type=real(), default=None,
                      help="rotation axis minus detector centre, in detector pixels (default: 0)")
    scan.add_argument("--thin", type=int_at_least(1), default=None,
                      help="keep every N-th angle (sparse view; also for project files)")
    scan.add_argument("--rows", help="detector rows START:STOP to reconstruct (default: all)")
    scan.add_argument("--pixel-size", type=POSITIVE, default=None,
                      help="detector pixel size in a length unit, e.g. 0.0065 (mm): attenuation then comes out "
                           "per that unit (default: 1, i.e. per pixel)")
    scan.add_argument("--voxel-size", type=POSITIVE, default=None,
                      help="voxel edge in the same unit (default: the pixel size); the volume gets "
                           "round(columns·pixel/voxel) voxels across")
    p.add_argument("--out", type=Path, required=True, help="HDF5 file to write (never one of the inputs)")
    add_common(p)
    p.set_defaults(func=run, seed=None)


def check_args(args) -> None:
    """Every check that needs no data: method-specific options, output path. Runs first."""
    m = args.method
    if m in CLASSICAL_METHODS:
        refuse_inapplicable(args, ("prior", "steps", "samples", "sigma_y", "slab", "checkpoint", "keep_samples",
                                   "seed"), f"to --method {m} (diffusion methods only)")
    if m not in ("sirt", "cgls", "tv"):
        refuse_inapplicable(args, ("iters",), f"to --method {m} (sirt, cgls and tv only)")
    if m != "tv":
        refuse_inapplicable(args, ("lam",), f"to --method {m} (tv only)")
    if args.voxel_size is not None and args.pixel_size is None:
        raise ValueError("--voxel-size needs --pixel-size (both in the same length unit)")
    inputs = [args.file, args.checkpoint, args.flats, args.darks, args.angles]
    check_output_file(args.out, inputs)
    if args.checkpoint is not None:
        check_output_file(args.checkpoint, [args.file, args.flats, args.darks, args.angles], option="--checkpoint")


def load_problem(args):
    """``(y (1,1,A,V,U) tensor, geometry, reference or None, sigma_y or None)`` from FILE; a project
    file's recorded attenuation maximum (``provenance["mu_max"]``, written by ``simulate``) goes to
    ``args.mu_max`` for the scale step."""
    import numpy as np
    import torch

    from ..ct import Geometry, parallel_beam
    from ..io import normalize, read_project, read_scan, require
    from ..io.kind import probe
    from ..recon.scale import known_scale

    scan = tiff_scan(args)
    kind = "tiff" if scan is not None else probe(args.file)
    if kind != "tiff":
        refuse_inapplicable(args, TIFF_OPTIONS, f"to {args.file}: they are for TIFF stacks; an HDF5 scan holds "
                                                "its own flats, darks and angles")
    thin = args.thin or 1
    if kind == "project":
        refuse_inapplicable(args, RAW_SCAN_OPTIONS, f"to {args.file}: a project file holds its own geometry "
                                                    "(these options are for raw scans)")
        data = read_project(args.file)
        sino = require(data, "sinogram", args.file)
        geometry = Geometry.from_dict(require(data, "geometry", args.file))
        y = torch.from_numpy(np.asarray(sino, np.float32))[None, None]
        sigma_y = data.provenance.get("sigma_y")
        args.mu_max = known_scale(data.provenance)
        ref = data.reference
        if thin > 1:
            from ..ct import thin_sinogram
            _check_thin(thin, geometry.n_angles)
            y, geometry = thin_sinogram(y, geometry, step=thin)
        return y, geometry, ref, sigma_y
    if scan is None:
        scan = read_scan(args.file)
    if thin > 1:
        _check_thin(thin, scan.n_angles)
        scan = scan.thin(step=thin)
    rows = parse_rows(args.rows, scan.projections.shape[1]) if args.rows else None
    if rows is not None:  # normalise only the rows asked for
        from dataclasses import replace

        scan = replace(scan, projections=scan.projections[:, rows],
                       flats=scan.flats[:, rows], darks=scan.darks[:, rows])
    p = normalize(scan, clamp_gain=1e-3)
    _, V, U = p.shape
    pixel = args.pixel_size or 1.0
    voxel = args.voxel_size or pixel
    n_xy = max(1, round(U * pixel / voxel))
    n_z = max(1, round(V * pixel / voxel))
    geometry = parallel_beam((n_z, n_xy, n_xy), scan.angles, det_shape=(V, U), voxel_size=voxel,
                             det_spacing=pixel, center_offset=args.center_offset or 0.0)
    return torch.from_numpy(p)[None, None], geometry, None, None


def _check_thin(thin: int, n_angles: int) -> None:
    if thin >= n_angles:
        raise ValueError(f"--thin {thin} keeps 1 of the {n_angles} angles; use a smaller step")


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
    if args.overlap is not None:
        raise ValueError("--overlap applies to the streaming path (--stream or torchrun); in memory slabs share 4 slices")
    import numpy as np

    from ..ct import Projector
    from ..io import ProjectData, write_project
    from ..recon import psnr, reconstruct, ssim

    check_args(args)
    dev = device(args.device, args.threads)
    y, geometry, ref, sigma_y = load_problem(args)
    diffusion = args.method in DIFFUSION_METHODS
    prior = load_prior(args.prior, dev) if diffusion else None  # before the long part: fails fast
    y = y.to(dev)
    A = Projector(geometry, device=dev)
    kw = {}
    if diffusion:
        if args.sigma_y is not None:
            sigma_y = args.sigma_y
        elif sigma_y is None:
            sigma_y = 0.01 * float(y.abs().max())
            info(f"sigma_y not given nor in the file: assuming 1% of max|y| = {sigma_y:.4g}")
        n_samples = args.samples or DEFAULT_SAMPLES
        kw = dict(prior=prior, steps=args.steps or (None if args.method == "auto" else DEFAULT_STEPS),
                  n_samples=n_samples, sigma_y=sigma_y, guard=args.guard,
                  seed=args.seed or 0, slab=args.slab or DEFAULT_SLAB, checkpoint=args.checkpoint,
                  remove_checkpoint=False, keep_samples=args.keep_samples)
    if args.iters is not None:
        kw["n_iter"] = args.iters
    if args.lam is not None:
        kw["lam"] = args.lam
    scale = None if args.scale == "none" else args.scale
    known = scale == "auto" and getattr(args, "mu_max", None) is not None
    if known:  # the simulated object's range is known: better than an estimate from a quick FBP
        scale = args.mu_max
    r = reconstruct(A, y, method=args.method, scale=scale, progress=not args.json, **kw)
    if known:
        r.provenance["scale"]["rule"] = "auto: the file's recorded mu_max (the simulated volume's maximum)"
    mean = r.mean[0, 0].cpu().numpy()
    quality = {"psnr": None, "ssim": None, "data_range": None}
    if ref is not None and np.shape(ref) == mean.shape:
        ref = np.asarray(ref, np.float32)
        data_range = float(ref.max() - ref.min())
        if data_range > 0:  # the reference's own range: honest in any units
            quality = {"psnr": float(psnr(mean, ref, data_range=data_range)),
                       "ssim": float(ssim(mean, ref, data_range=data_range)),
                       "data_range": data_range}
    recon = {"mean": mean}
    if r.std is not None:
        recon["std"] = r.std[0, 0].cpu().numpy()
    if r.samples is not None:
        recon["samples"] = r.samples[:, 0, 0].cpu().numpy()
    n_samples = r.provenance.get("n_samples", 1)
    provenance = {**r.provenance, "input": str(args.file), "residual": r.residual, "seconds": r.seconds,
                  "nfe": r.nfe, "peak_memory_mb": r.peak_memory_mb,
                  "psnr": quality["psnr"], "ssim": quality["ssim"],
                  "metrics": {"data_range": quality["data_range"],
                              "data_range_rule": "reference max - min" if quality["data_range"] else None},
                  "std_samples": n_samples if r.std is not None else None,
                  "units": {"pixel_size": args.pixel_size, "voxel_size": geometry.voxel_size,
                            "attenuation": "1/" + ("length unit of --pixel-size" if args.pixel_size else
                                                   "world unit of the geometry")}}
    write_project(args.out, ProjectData(sinogram=y[0, 0].cpu().numpy(), geometry=geometry,
                                        reference=None if ref is None else np.asarray(ref), reconstruction=recon,
                                        provenance=provenance))
    if args.checkpoint is not None:  # only now is the result safe on disk
        args.checkpoint.unlink(missing_ok=True)
    summary = {"method": args.method, "psnr": quality["psnr"], "ssim": quality["ssim"],
               "data_range": quality["data_range"], "seconds": r.seconds, "nfe": r.nfe,
               "peak_memory_mb": r.peak_memory_mb, "residual": r.residual, "out": str(args.out),
               "scale": r.provenance.get("scale", {}).get("value"),
               "std_samples": n_samples if r.std is not None else None,
               "data_consistency": r.provenance.get("data_consistency")}
    q = "" if quality["psnr"] is None else (f", PSNR {quality['psnr']:.2f} dB, SSIM {quality['ssim']:.3f} "
                                            f"(data range {quality['data_range']:.4g})")
    u = f", {std_note(n_samples)}" if diffusion else ""
    dc = r.provenance.get("data_consistency") or {}
    if dc.get("chi2_per_m") is not None:
        u += f", chi2/m {dc['chi2_per_m']:.3g} (worst view {max(dc['chi2_per_view']):.3g})"
    emit(args, summary, [f"{args.method}: {r.seconds:.1f} s, NFE {r.nfe}, residual {r.residual:.3g}{q}{u}",
                         f"wrote {args.out}  (view: tomodiff view {args.out})"])
    return 0
