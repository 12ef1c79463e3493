"""``tomodiff reconstruct``: classical or diffusion reconstruction of a sinogram file.

Data safety: the output path is checked (not an input, not the checkpoint, writable) before any
work; the output is written atomically; a ``--checkpoint`` is removed only once the output is on
disk. Options that do not apply to the method or to the kind of FILE are errors.
"""

from __future__ import annotations

from pathlib import Path

from .. import methods
from ._common import (NON_NEGATIVE, POSITIVE, add_common, device, emit, info, int_at_least, load_prior, parse_rows,
                      real, removed_unless_used, std_note)
from .reconstruct_args import check_args, refuse_for_kind


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
    p.add_argument("--method", choices=methods.names(), required=True, help=methods.help_lines())
    p.add_argument("--guard", action="store_true",
                   help="diffusion: keep the result at least as data-consistent as TV (final CG, else TV)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--prior", help="prior name for diffusion methods (default: ct-slice, trained on real CT; "
                                       "cfg: ct-cond, conditional; slice-64: phantoms)")
    which.add_argument("--prior-file", type=Path, metavar="PATH",
                       help="your own prior instead: a diffusers model folder (unet/ + scheduler/), a MONAI folder "
                            "(monai_prior.json) or a tomodiff .pt file; local files only (docs: own diffusion model)")
    p.add_argument("--steps", type=int_at_least(1), default=None,
                   help=f"diffusion steps = NFE per slab (default: {methods.DEFAULT_STEPS}; auto: "
                        f"{methods.get('auto').steps})")
    p.add_argument("--samples", type=int_at_least(1), default=None,
                   help=f"posterior samples; the std needs >= 2 (default: {methods.DEFAULT_SAMPLES})")
    p.add_argument("--sigma-y", type=NON_NEGATIVE, default=None,
                   help="diffusion methods and tv: measurement noise std in the units of the line integrals "
                        "(default: the file's provenance, else for diffusion 0.01·max|y|; tv then takes "
                        "0.006 x views). tv chooses its weight from it: the result's chi2/m = "
                        f"{methods.TV_CHI2_TARGET:g}")
    p.add_argument("--iters", type=int_at_least(1), help="iterations of sirt/cgls/tv")
    p.add_argument("--lam", type=NON_NEGATIVE,
                   help="TV weight for --method tv, for the volume after the scale step (values near [0, 1]); "
                        "default: from the noise level (--sigma-y or the file's), else 0.006 x views")
    p.add_argument("--scale", type=_scale, default="auto",
                   help="scale step into the prior's [0, 1] range: auto (a simulated scan's recorded mu_max maps to 1; "
                        "a raw scan's 99.9%% quantile of a quick FBP does), none (data already in [0, 1] units) or the "
                        "attenuation (in the volume's units) that maps to 1 (default: %(default)s)")
    p.add_argument("--slab", type=int_at_least(1), default=None,
                   help=f"axial slices per diffusion slab (default: {methods.DEFAULT_SLAB})")
    p.add_argument("--checkpoint", type=Path,
                   help="resume directory for long runs: finished slabs are kept there and a rerun of the same command "
                        "continues from them (removed once OUT is written)")
    p.add_argument("--overlap", type=int_at_least(0), default=None,
                   help=f"streaming path: slices shared by neighbouring slabs (default: 0 for fbp/sirt, "
                        f"{methods.DEFAULT_OVERLAP} otherwise)")
    p.add_argument("--stream", action="store_true",
                   help="read the sinogram and write the volume slab by slab (memory bounded by the slab; implied "
                        "under torchrun, which shares the slabs among the ranks)")
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


def load_problem(args):
    """The :class:`~tomodiff.io.problem.Problem` in FILE, after refusing options that do not apply
    to its kind of file."""
    from ..io.problem import file_kind  # start-up time
    from ..io.problem import load_problem as load  # start-up time

    kind = file_kind(args.file)
    refuse_for_kind(args, kind)
    rows = (lambda n: parse_rows(args.rows, n)) if args.rows else None
    return load(args.file, kind=kind, thin=args.thin or 1, rows=rows, pixel_size=args.pixel_size,
                voxel_size=args.voxel_size, center_offset=args.center_offset, flats=args.flats, darks=args.darks,
                angles=args.angles)


def _solver_kwargs(args, m, problem, y, prior) -> dict:
    """reconstruct()'s arguments from the command line (the noise level: given, the file's, else a guess)."""
    kw = {}
    if m.diffusion:
        sigma_y = args.sigma_y if args.sigma_y is not None else problem.sigma_y
        if sigma_y is None:
            sigma_y = methods.SIGMA_Y_FRACTION * float(y.abs().max())
            info(f"sigma_y not given nor in the file: assuming 1% of max|y| = {sigma_y:.4g}")
        kw = dict(prior=prior, steps=args.steps, n_samples=args.samples or methods.DEFAULT_SAMPLES, sigma_y=sigma_y,
                  guard=args.guard, seed=args.seed or 0, slab=args.slab or methods.DEFAULT_SLAB,
                  checkpoint=args.checkpoint, remove_checkpoint=False, keep_samples=args.keep_samples)
    elif m.name == "tv" and args.lam is None:  # the weight comes from the noise level when it is known
        sigma_y = args.sigma_y if args.sigma_y is not None else problem.sigma_y
        if sigma_y:
            kw["sigma_y"] = sigma_y
        else:
            how = "--sigma-y 0" if args.sigma_y is not None else "none given (--sigma-y) nor in the file"
            info(f"tv: no noise level ({how}): weight {methods.TV_LAM_PER_VIEW:g} x views")
    if args.iters is not None:
        kw["n_iter"] = args.iters
    if args.lam is not None:
        kw["lam"] = args.lam
    return kw


def run(args) -> int:
    from ..recon.distributed import launched  # start-up time

    if args.stream or launched():  # torchrun or --stream: slab by slab on every rank (reconstruct_streamed.py)
        from .reconstruct_streamed import run_streamed  # start-up time

        return run_streamed(args)
    if args.overlap is not None:
        raise ValueError("--overlap applies to the streaming path (--stream or torchrun); in memory slabs share "
                         f"{methods.DEFAULT_OVERLAP} slices")
    from ..io.lock import output_lock  # start-up time

    check_args(args)
    with output_lock(args.out, args.checkpoint), removed_unless_used(args.checkpoint):  # one writer per output
        return _in_memory(args)


def _in_memory(args) -> int:
    """The in-memory path, once the options and outputs are checked and locked."""
    from ..ct import Projector  # start-up time
    from ..io import write_project  # start-up time
    from ..recon import reconstruct  # start-up time
    from ..recon.report import project_data  # start-up time
    from ..recon.slab_store import remove_checkpoint  # start-up time

    dev = device(args.device, args.threads)
    problem = load_problem(args)
    m = methods.get(args.method)
    prior = load_prior(args.prior_file or args.prior or m.prior, dev) if m.diffusion else None  # fails fast
    y = problem.y.to(dev)
    scale = None if args.scale == "none" else args.scale
    known = scale == "auto" and problem.mu_max is not None
    if known:  # the simulated object's range is known: better than an estimate from a quick FBP
        scale = problem.mu_max
    r = reconstruct(Projector(problem.geometry, device=dev), y, method=args.method, scale=scale,
                    progress=not args.json, **_solver_kwargs(args, m, problem, y, prior))
    if known:
        r.provenance["scale"]["rule"] = "auto: the file's recorded mu_max (the simulated volume's maximum)"
    data, q = project_data(r, problem, source=str(args.file), pixel_size=args.pixel_size)
    write_project(args.out, data)
    if args.checkpoint is not None:  # only now is the result safe on disk
        remove_checkpoint(args.checkpoint)
    _report(args, m, r, q)
    return 0


def _report(args, m, r, q) -> None:
    n_samples = r.provenance.get("n_samples", 1)
    summary = {"method": args.method, "psnr": q["psnr"], "ssim": q["ssim"], "data_range": q["data_range"],
               "seconds": r.seconds, "nfe": r.nfe, "peak_memory_mb": r.peak_memory_mb, "residual": r.residual,
               "out": str(args.out), "scale": r.provenance.get("scale", {}).get("value"),
               "std_samples": n_samples if r.std is not None else None, "std_calibration": r.calibration,
               "data_consistency": r.provenance.get("data_consistency")}
    qtext = "" if q["psnr"] is None else (f", PSNR {q['psnr']:.2f} dB, SSIM {q['ssim']:.3f} "
                                          f"(data range {q['data_range']:.4g})")
    u = f", {std_note(n_samples, r.calibration)}" if m.diffusion else ""
    dc = r.provenance.get("data_consistency") or {}
    if dc.get("chi2_per_m") is not None:
        u += f", chi2/m {dc['chi2_per_m']:.3g} (worst view {max(dc['chi2_per_view']):.3g})"
    weight = r.provenance.get("tv_weight")
    if weight is not None:
        summary["tv_weight"] = {k: weight.get(k) for k in ("rule", "lam", "target", "result_chi2_per_m")}
        chi2 = weight.get("result_chi2_per_m")
        u += f", weight {weight['lam']:.3g} ({weight['rule']}" + (f", chi2/m {chi2:.3g})" if chi2 is not None else ")")
    emit(args, summary, [f"{args.method}: {r.seconds:.1f} s, NFE {r.nfe}, residual {r.residual:.3g}{qtext}{u}",
                         f"wrote {args.out}  (view: tomodiff view {args.out})"])
