"""``tomodiff reconstruct``: classical or diffusion reconstruction of a sinogram file.

Data safety: the output path is checked (not an input, not the checkpoint, writable) before any
work; the output is written atomically; a ``--checkpoint`` is removed only once the output is on
disk. Options that do not apply to the method or to the kind of FILE are errors.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import methods
from ._common import (NON_NEGATIVE, POSITIVE, add_common, device, emit, info, int_at_least, load_prior, parse_rows,
                      real, refuse_inapplicable, removed_unless_used, std_note)
from .reconstruct_args import check_args, refuse_for_kind


def _scale(text: str):
    if text in ("auto", "none"):
        return text
    return POSITIVE(text)


def _center_offset(text: str):
    if text == "auto":
        return text
    return real()(text)


_center_offset.__name__ = "number or auto"


def _air_region(text: str) -> tuple[slice, slice]:
    """``R0:R1,C0:C1`` (detector rows and columns, from 0, stop excluded) as two slices."""
    out = []
    for part in text.split(","):
        a, sep, b = part.partition(":")
        try:
            lo, hi = int(a), int(b)
        except ValueError:
            lo = hi = -1
        if not sep or lo < 0 or hi <= lo:
            raise argparse.ArgumentTypeError(f"expected ROW0:ROW1,COL0:COL1 (e.g. 0:20,0:20), got {text!r}")
        out.append(slice(lo, hi))
    if len(out) != 2:
        raise argparse.ArgumentTypeError(f"expected ROW0:ROW1,COL0:COL1 (e.g. 0:20,0:20), got {text!r}")
    return out[0], out[1]


def _rings(text: str) -> str:
    from ..io.rings import parse_chain  # start-up time (algotom itself loads only when the steps run)

    try:
        parse_chain(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None
    return text


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
                        "(default: the file's provenance; a raw scan with flats: from the counts, sqrt of the "
                        "mean Poisson variance per ray; else from the sinogram, the MAD of its third difference "
                        "along the detector; the rule is printed and recorded). tv chooses its weight from it: "
                        f"the result's chi2/m = {methods.TV_CHI2_TARGET:g} (with --weights pwls, the std after "
                        "weighting). Diffusion samplers take this one scalar, not a per-ray std")
    p.add_argument("--weights", choices=("pwls", "none"), default=None,
                   help="sirt, cgls, tv: weight each ray by 1/variance from the counts (penalised weighted least "
                        "squares: dark, noisy rays count less) or not (default: pwls for a raw scan with flats, "
                        "none otherwise; pwls needs the counts)")
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
    scan = p.add_argument_group("raw scans (DXchange/NXtomo, TIFF stacks, .npy/.npz)")
    scan.add_argument("--flats", help="TIFF flat (open-beam) frames: a folder or a quoted glob")
    scan.add_argument("--darks", help="TIFF dark frames: a folder or a quoted glob")
    scan.add_argument("--angles", help="TIFF stacks, .npy sinograms, .npz without angles: START:STOP:COUNT, both ends "
                                       "included, in degrees unless suffixed (0:180:181, 0:60:61deg, 0:3.1416:181rad), "
                                       "or a text file of angles in degrees")
    scan.add_argument("--center-offset", type=_center_offset, default=None, metavar="PX|auto",
                      help="rotation axis minus detector centre, in detector pixels, or auto: found from the data "
                           "(parallel beam; recorded with its confidence in the provenance) (default: 0, with a "
                           "warning when the data look off-centre)")
    scan.add_argument("--thin", type=int_at_least(1), default=None,
                      help="keep every N-th angle (sparse view; also for project files)")
    scan.add_argument("--rows", help="detector rows START:STOP to reconstruct (default: all)")
    scan.add_argument("--pixel-size", "--detector-pixel", dest="pixel_size", type=POSITIVE, default=None,
                      metavar="MM",
                      help="detector pixel size in a length unit, e.g. 0.0065 (mm): attenuation then comes out "
                           "per that unit (default: 1, i.e. per pixel); fan/cone beam: the unit of the distances")
    scan.add_argument("--voxel-size", type=POSITIVE, default=None, metavar="MM",
                      help="voxel edge in the same unit (default: the pixel size at the rotation axis, "
                           "pixel x source-origin / source-detector); the volume spans the detector's field of view")
    scan.add_argument("--geometry", choices=("parallel", "fan", "cone"), default=None,
                      help="the beam (default: parallel); fan is 2D: one detector row (a 2D sinogram or --rows R:R+1)")
    scan.add_argument("--source-origin", type=POSITIVE, default=None, metavar="MM",
                      help="fan/cone: source to rotation axis, in the unit of --detector-pixel")
    scan.add_argument("--source-detector", type=POSITIVE, default=None, metavar="MM",
                      help="fan/cone: source to detector (or give --origin-detector; both must agree)")
    scan.add_argument("--origin-detector", type=NON_NEGATIVE, default=None, metavar="MM",
                      help="fan/cone: rotation axis to detector")
    scan.add_argument("--rings", type=_rings, default=None, metavar="STEP[+STEP]",
                      help="stripe/ring and zinger removal before reconstruction (algotom): sort, filter, all, zinger, "
                           "joined by + and with parameters as NAME:KEY=VALUE (e.g. zinger+sort:size=31); recorded "
                           "in the provenance")
    scan.add_argument("--air-region", type=_air_region, default=None, metavar="R0:R1,C0:C1",
                      help="raw counts: detector rows and columns of open air; each projection is rescaled so its "
                           "median transmission there is 1 (for flats brighter than the air)")
    p.add_argument("--out", type=Path, required=True, help="HDF5 file to write (never one of the inputs)")
    add_common(p)
    p.set_defaults(func=run, seed=None)


def load_problem(args):
    """The :class:`~tomodiff.io.problem.Problem` in FILE, after refusing options that do not apply
    to its kind of file."""
    from ..io.problem import file_kind  # start-up time
    from ..io.problem import load_problem as load  # start-up time

    from ..io.beam import Beam, resolve_distances  # start-up time

    kind = file_kind(args.file)
    refuse_for_kind(args, kind)
    rows = (lambda n: parse_rows(args.rows, n)) if args.rows else None
    beam = Beam()
    if args.geometry not in (None, "parallel"):
        so, od = resolve_distances(args.source_origin, args.source_detector, args.origin_detector)
        beam = Beam(kind=args.geometry, source_origin=so, origin_detector=od)
    return load(args.file, kind=kind, thin=args.thin or 1, rows=rows, pixel_size=args.pixel_size,
                voxel_size=args.voxel_size, center_offset=args.center_offset, flats=args.flats, darks=args.darks,
                angles=args.angles, beam=beam, rings=args.rings, air_region=args.air_region)


PWLS_METHODS = ("sirt", "cgls", "tv")
NOISE_RULES = {"counts": "from the counts (Poisson, flats and darks): sqrt of the mean per-ray variance",
               "sinogram MAD": "from the sinogram: MAD of its third difference along the detector"}


def check_weights_arg(args) -> None:
    """``--weights`` only for sirt, cgls and tv, in memory (the streaming path reads no counts)."""
    from ..recon.distributed import launched  # start-up time

    if args.method not in PWLS_METHODS:
        refuse_inapplicable(args, ("weights",), f"to --method {args.method} (sirt, cgls and tv only)")
    if args.stream or launched():
        refuse_inapplicable(args, ("weights",), "on the streaming path (--stream, torchrun): reconstruct without "
                                                "--stream")


def noise_level(args, problem, y) -> tuple[float | None, str]:
    """``(sigma_y, rule)`` in ``y``'s units: ``--sigma-y``, the file's, the counts'
    (:func:`~tomodiff.io.noise.effective_sigma` of ``problem.variance``) or the sinogram's
    (:func:`~tomodiff.io.noise.estimate_sigma_y`); the estimated rules print one info line."""
    from ..io.noise import effective_sigma, estimate_sigma_y  # start-up time

    if args.sigma_y is not None:
        return args.sigma_y, "given (--sigma-y)"
    if problem.sigma_y is not None:
        return problem.sigma_y, "the file's provenance"
    if problem.variance is not None:
        sigma_y, rule = effective_sigma(problem.variance), "counts"
    else:
        sigma_y, rule = estimate_sigma_y(y), "sinogram MAD"
    info(f"sigma_y {NOISE_RULES[rule]} = {sigma_y:.4g}")
    return sigma_y, rule


def pwls_variance(args, m, problem):
    """The per-ray variance for PWLS weights (``problem.variance``) or ``None`` (``--weights none``,
    no counts, or not sirt/cgls/tv); ``--weights pwls`` without counts is an error."""
    if m.name not in PWLS_METHODS or args.weights == "none":
        return None
    if problem.variance is None:
        if args.weights == "pwls":
            raise ValueError(f"--weights pwls needs the counts of a raw scan with flats; {args.file} has none "
                             "(a project file or line integrals): use --weights none")
        return None
    return problem.variance


def _solver_kwargs(args, m, problem, y, prior, noise=None) -> dict:
    """reconstruct()'s arguments from the command line. ``noise``: ``(sigma_y, rule)`` from
    :func:`noise_level`. With PWLS weights (``weights`` = 1/variance, mean 1) TV's weight search takes
    the std of the weighted noise (:func:`~tomodiff.io.noise.whitened_sigma`); diffusion samplers take
    the scalar effective std (their likelihood has one ``sigma_y``: whitening the operator would lose
    the projector geometry that the slabs and the scale step need)."""
    from ..io.noise import weights_from_variance, whitened_sigma  # start-up time

    sigma_y, rule = noise if noise is not None else noise_level(args, problem, y)
    kw = {}
    variance = pwls_variance(args, m, problem)
    if variance is not None:
        kw["weights"] = weights_from_variance(variance)
    if m.diffusion:
        kw = dict(prior=prior, steps=args.steps, n_samples=args.samples or methods.DEFAULT_SAMPLES, sigma_y=sigma_y,
                  guard=args.guard, seed=args.seed or 0, slab=args.slab or methods.DEFAULT_SLAB,
                  checkpoint=args.checkpoint, remove_checkpoint=False, keep_samples=args.keep_samples)
    elif m.name == "tv" and args.lam is None:  # the weight comes from the noise level when it is known
        if sigma_y:
            estimated = rule in NOISE_RULES
            kw["sigma_y"] = whitened_sigma(variance) if variance is not None and estimated else sigma_y
        else:
            how = "--sigma-y 0" if args.sigma_y is not None else "the file records sigma_y 0"
            info(f"tv: no noise level ({how}): weight {methods.TV_LAM_PER_VIEW:g} x views")
    if args.iters is not None:
        kw["n_iter"] = args.iters
    if args.lam is not None:
        kw["lam"] = args.lam
    return kw


def noise_record(A, r, problem, y, noise, weighted: bool) -> dict:
    """The provenance's ``noise``: the rule and σ_y, whether PWLS weights were used, and the χ²/m of
    the result against σ_y (and, with counts, ``Σ r_i²/Var_i / m``, the per-ray one)."""
    import torch  # start-up time

    from ..recon.consistency import data_consistency  # start-up time

    sigma_y, rule = noise
    out = {"rule": rule, "sigma_y": sigma_y, "weights": "pwls" if weighted else "none"}
    if sigma_y:
        out["chi2_per_m"] = data_consistency(A, r.mean, y, sigma_y)["chi2_per_m"]
    if problem.variance is not None:
        from ..io.noise import OUTLIER_FACTOR  # start-up time

        with torch.no_grad():
            res2 = (y - A.forward(r.mean.to(y))).double().pow(2)[0, 0].cpu()
        v = torch.from_numpy(problem.variance).double()
        keep = v <= OUTLIER_FACTOR * v.median()  # as effective_sigma: dead and clipped rays are left out
        out["chi2_per_m_per_ray"] = float((res2[keep] / v[keep]).mean())
    return out


def run(args) -> int:
    from ..recon.distributed import launched  # start-up time

    if args.stream or launched():  # torchrun or --stream: slab by slab on every rank (reconstruct_streamed.py)
        from .reconstruct_streamed import run_streamed  # start-up time

        check_weights_arg(args)

        return run_streamed(args)
    if args.overlap is not None:
        raise ValueError("--overlap applies to the streaming path (--stream or torchrun); in memory slabs share "
                         f"{methods.DEFAULT_OVERLAP} slices")
    from ..io.lock import output_lock  # start-up time

    check_args(args)
    check_weights_arg(args)
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
    # the noise level only where a method uses it, or where the data are measured (χ²/m then checks the fit)
    measured = problem.kind != "project"
    noise = noise_level(args, problem, y) if (m.diffusion or m.name == "tv" or measured) else (None, "unused")
    kw = _solver_kwargs(args, m, problem, y, prior, noise)
    A = Projector(problem.geometry, device=dev)
    r = reconstruct(A, y, method=args.method, scale=scale, progress=not args.json, **kw)
    if known:
        r.provenance["scale"]["rule"] = "auto: the file's recorded mu_max (the simulated volume's maximum)"
    if measured:  # how σ_y was found and the fit's χ²/m against it (project files: unchanged)
        r.provenance["noise"] = noise_record(A, r, problem, y, noise, "weights" in kw)
    data, q = project_data(r, problem, source=str(args.file), pixel_size=args.pixel_size)
    if problem.preprocessing is not None:  # measured data: normalisation, rings, centre, beam
        data.provenance["preprocessing"] = problem.preprocessing
    write_project(args.out, data)
    if args.checkpoint is not None:  # only now is the result safe on disk
        remove_checkpoint(args.checkpoint)
    _report(args, m, r, q, problem.preprocessing)
    return 0


def _report(args, m, r, q, preprocessing=None) -> None:
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
    noise = r.provenance.get("noise")
    if noise is not None:
        summary["noise"] = noise
        if noise.get("chi2_per_m") is not None and not dc:
            u += f", chi2/m {noise['chi2_per_m']:.3g} (sigma_y {noise['sigma_y']:.3g}: {noise['rule']})"
    weight = r.provenance.get("tv_weight")
    if weight is not None:
        summary["tv_weight"] = {k: weight.get(k) for k in ("rule", "lam", "target", "result_chi2_per_m")}
        chi2 = weight.get("result_chi2_per_m")
        u += f", weight {weight['lam']:.3g} ({weight['rule']}" + (f", chi2/m {chi2:.3g})" if chi2 is not None else ")")
    center = (preprocessing or {}).get("center") or {}
    lines = []
    if center.get("rule") == "auto":
        summary["center"] = {k: center[k] for k in ("offset_px", "column", "metric", "method")}
        lines.append(f"centre of rotation: offset {center['offset_px']:+.2f} px (column {center['column']:.2f}; "
                     f"{center['method']}, metric {center['metric']:.3g})")
    emit(args, summary, lines + [f"{args.method}: {r.seconds:.1f} s, NFE {r.nfe}, residual {r.residual:.3g}{qtext}{u}",
                         f"wrote {args.out}  (view: tomodiff view {args.out})"])
