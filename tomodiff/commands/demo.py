"""``tomodiff demo``: the main job — sparse-view CT of a held-out real CT volume, classical vs diffusion."""

from __future__ import annotations

from pathlib import Path

from .. import methods
from ._common import (NON_NEGATIVE, add_common, any_diffusion, check_output_dir, device, emit, int_at_least,
                      parse_methods, refuse_inapplicable, std_note)


def add_parser(sub):
    p = sub.add_parser("demo", help="sparse-view CT demo: FBP, SIRT, TV and diffusion on a held-out real CT volume",
                       description="Simulate a noisy 16-view parallel-beam scan of (the central 32 slices of) a "
                                   "held-out 64^3 real CT volume (abdominal CT angiography no shipped prior trained "
                                   "on; phantoms with --phantom), reconstruct it with FBP, SIRT, TV and the default "
                                   f"diffusion method auto ({methods.get('auto').summary}; shipped prior, "
                                   f"{methods.DEFAULT_SAMPLES} posterior samples: their mean, and their std as "
                                   "uncertainty), print PSNR/SSIM/time/NFE, write HDF5 files and a PNG of orthogonal "
                                   "slices.")
    p.add_argument("--phantom", default="ct_abdomen_64",
                   help="volume: a benchmark-set name (the real-CT crops ct_abdomen_64/128, ct_chest_64/128, the "
                        "phantoms such as shepp_logan_64_a) or FAMILY:SEED[:SIZE] (default: %(default)s)")
    p.add_argument("--task", choices=("ct", "render"), default="ct",
                   help="ct: the sparse-view CT demo; render: emission-absorption volume rendering of the engine block "
                        "(32^3, seen by 8 cameras, fitted with tv and dps; a procedural phantom without the corpus) "
                        "(default: %(default)s)")
    p.add_argument("--views", type=int_at_least(1), default=None,
                   help="projection angles, or cameras with --task render (default: 16; render: 8)")
    p.add_argument("--noise", type=NON_NEGATIVE, default=0.01,
                   help="noise std relative to max line integral (default: %(default)s)")
    p.add_argument("--methods", default=None,
                   help="comma-separated, from the method registry; auto = the diffusion method chosen by the "
                        "sampler sweep (default: fbp,sirt,tv,auto; --task render: tv,dps)")
    p.add_argument("--prior", default=None, help="prior for diffusion methods (default: ct-slice)")
    p.add_argument("--steps", type=int_at_least(1), default=None,
                   help=f"diffusion steps (default: {methods.DEFAULT_STEPS}; auto: the sweep's, "
                        f"{methods.get('auto').steps})")
    p.add_argument("--samples", type=int_at_least(1), default=None,
                   help=f"posterior samples; the std needs >= 2 (default: {methods.DEFAULT_SAMPLES})")
    p.add_argument("--slices", type=int_at_least(0), default=32,
                   help="central axial slices of the phantom to use; 0 = all (default: %(default)s)")
    p.add_argument("--out-dir", type=Path, default=None, help="where files go (default: out/demo; render: out/render)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.task == "render":  # emission-absorption volume rendering (tomodiff/demos/render_demo.py)
        from ..demos.render_demo import command  # start-up time

        summary, lines = command(views=args.views or 8, noise=args.noise, methods=parse_methods(args.methods or "tv,dps"),
                                 prior_name=args.prior, steps=args.steps, samples=args.samples or 1, seed=args.seed,
                                 out_dir=args.out_dir or Path("out/render"), device=device(args.device, args.threads),
                                 progress=not args.json)
        emit(args, summary, lines)
        return 0
    args.views, args.methods = args.views or 16, args.methods or "fbp,sirt,tv,auto"
    args.out_dir = args.out_dir or Path("out/demo")
    from ..priors.registry import DEFAULT_PRIOR  # start-up time
    from ..demos.ct_demo import run_demo, save_figure  # start-up time
    from ..io.volumes import load_volume  # start-up time

    chosen = parse_methods(args.methods)
    diffusion = any_diffusion(chosen)
    if not diffusion:
        refuse_inapplicable(args, ("prior", "steps", "samples"), "without a diffusion method in --methods")
    phantom_file = args.phantom.split(":")[0]
    check_output_dir(args.out_dir, [phantom_file] if Path(phantom_file).exists() else [], option="--out-dir")
    load_volume(args.phantom)  # a bad --phantom fails before any work or output
    if diffusion:
        from ..priors import available  # start-up time

        if (args.prior or DEFAULT_PRIOR) not in available():
            raise ValueError(f"--prior {args.prior or DEFAULT_PRIOR}: no shipped prior of that name; "
                             f"available: {', '.join(available()) or 'none'}")
    samples = args.samples or methods.DEFAULT_SAMPLES
    results, setup, ref = run_demo(phantom=args.phantom, views=args.views, noise=args.noise, methods=chosen,
                                   prior_name=args.prior or DEFAULT_PRIOR, steps=args.steps, samples=samples,
                                   seed=args.seed,
                                   slices=args.slices or None, out_dir=args.out_dir,
                                   device=device(args.device, args.threads),
                                   progress=not args.json)
    figure = save_figure(ref, results, args.out_dir / "demo.png")
    summary = {"setup": setup, "figure": str(figure),
               "methods": {r.name: {"psnr": round(r.psnr, 3), "ssim": round(r.ssim, 4), "seconds": round(r.seconds, 2),
                                    "nfe": r.nfe, "peak_memory_mb": round(r.peak_memory_mb, 1),
                                    "file": str(r.path)} for r in results}}
    lines = [f"{setup['phantom']} {tuple(setup['shape'])}, {setup['views']} parallel-beam views, "
             f"noise {setup['noise_relative']:.0%} of max",
             f"{'method':<8} {'PSNR [dB]':>9} {'SSIM':>6} {'time [s]':>9} {'NFE':>5}"]
    lines += [f"{r.name:<8} {r.psnr:9.2f} {r.ssim:6.3f} {r.seconds:9.1f} {r.nfe:5d}" for r in results]
    if diffusion:
        lines.append(f"diffusion methods: mean of {samples} samples, {std_note(samples)} (PSNR/SSIM with the "
                     "reference's data range)")
    lines += [f"figure: {figure}", "open in napari: tomodiff view " + " ".join(str(r.path) for r in results)]
    emit(args, summary, lines)
    return 0
