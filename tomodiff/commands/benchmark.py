"""``tomodiff benchmark``: methods × views over the held-out phantom set, as a report."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from pathlib import Path

from ._common import (NON_NEGATIVE, add_common, any_diffusion, check_output_dir, device, emit, given, info,
                      int_at_least, load_prior, parse_methods, refuse_inapplicable)


def _ints(text: str, option: str = "--views") -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"{option}: expected comma-separated integers, got {text!r}") from err
    if not values or min(values) < 1:
        raise ValueError(f"{option}: expected comma-separated integers >= 1, got {text!r}")
    return values


def _lams(text: str | None) -> dict:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        views, sep, lam = part.partition(":")
        try:
            out[int(views)] = float(lam)
        except ValueError:
            raise ValueError(f"--tv-lam: expected VIEWS:LAM pairs like 4:0.1,8:0.05, got {text!r}") from None
        if not sep or out[int(views)] < 0 or int(views) < 1:
            raise ValueError(f"--tv-lam: expected VIEWS:LAM pairs (views >= 1, lam >= 0), got {text!r}")
    return out


def _volumes(spec: str, manifest) -> list[str]:
    """Volume names from ``--set``: a shorthand for benchmark-set entries by edge, or explicit names."""
    spec = spec.strip()
    if spec == "none":
        return []
    if spec in ("64", "128", "all", "real_ct"):
        entries = manifest()["entries"]
        if spec == "real_ct":
            return [Path(e["file"]).stem for e in entries if e.get("family") == "real_ct"]
        return [Path(e["file"]).stem for e in entries if spec == "all" or
                (e.get("shape") == [int(spec)] * 3 and e.get("family") != "real_ct")]
    return [v.strip() for v in spec.split(",") if v.strip()]


def add_parser(sub):
    p = sub.add_parser("benchmark", help="benchmark methods over the held-out phantoms and numbers of views",
                       description="Simulate every (phantom, views) scan, reconstruct with every method, and write "
                                   "results.csv, report.md, psnr_vs_views.png and gallery.png to --out.")
    p.add_argument("--views", default="4,8,16,32", help="comma-separated view counts (default: %(default)s)")
    p.add_argument("--methods", default="fbp,sirt,cgls,tv,sdedit,dps,pigdm,dds", help="(default: %(default)s)")
    p.add_argument("--set", default="64",
                   help="volumes: 64 (every 64^3 phantom of the benchmark set, the default), 128 (the 128^3 "
                        "phantoms), real_ct (64^3 and 128^3 crops of held-out real CT), all (every entry), none, "
                        "or comma-separated names/specs like foam:3:32")
    p.add_argument("--real", default="none", choices=("none", "diamond_i13"),
                   help="also reconstruct a measured scan from every 4th and 8th angle, scored against SIRT from "
                        "all angles (diamond_i13: needs $TOMODIFF_SHARED_DATA/diamond_i13_24737/24737_raw.npz)")
    p.add_argument("--slices", type=int_at_least(1), default=None,
                   help="score only this many central axial slices of each phantom (the real scan has 8)")
    p.add_argument("--prior", default=None, help="prior for diffusion methods (default: ct-slice)")
    p.add_argument("--steps", type=int_at_least(1), default=None, help="diffusion steps (default: 50)")
    p.add_argument("--samples", type=int_at_least(1), default=None,
                   help="posterior samples per reconstruction (default: 1, scores the single sample)")
    p.add_argument("--noise", type=NON_NEGATIVE, default=0.01, help="relative noise (default: %(default)s)")
    p.add_argument("--tv-lam", help="TV weight per view count, e.g. 4:0.1,8:0.05 (choose on training phantoms)")
    p.add_argument("--uncertainty", default=None,
                   help="comma-separated volumes on which to also measure, for the first diffusion method in "
                        "--methods, the 90%% interval coverage (8 views, 8 samples, central 16 slices) and the "
                        "slab seam ratio (central 64 slices, default slabs), e.g. real_head_vtk")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    add_common(p)
    p.set_defaults(func=run)


def _check_inputs(args, volumes) -> None:
    """A bad volume name or file, or missing real-scan data, fails here: before any reconstruction
    and before --out exists."""
    from ..io.volumes import load_volume  # start-up time

    for name in [*volumes, *(v.strip() for v in (args.uncertainty or "").split(",") if v.strip())]:
        load_volume(name)
    if args.real == "diamond_i13":
        from ..demos.diamond_i13 import find_raw  # start-up time

        find_raw()


def run(args) -> int:
    from ..demos import benchmark as bench  # start-up time
    from ..io.volumes import benchmark_manifest  # start-up time

    methods = parse_methods(args.methods)
    views = _ints(args.views)
    diffusion = any_diffusion(methods)
    if not diffusion:
        refuse_inapplicable(args, ("prior", "steps", "samples", "uncertainty"),
                            "without a diffusion method in --methods")
    if "tv" not in methods:
        refuse_inapplicable(args, ("tv_lam",), "without tv in --methods")
    tv_lam = _lams(args.tv_lam)
    if given(args, "slices") and args.set == "none":
        raise ValueError("--slices does not apply with --set none (the real scan has its own 8 slices)")
    volumes = _volumes(args.set, benchmark_manifest)
    if not volumes and args.real == "none":
        raise ValueError("nothing to benchmark: --set none and --real none")
    check_output_dir(args.out, [v for v in volumes if Path(v.split(":")[0]).exists()])
    args.prior = args.prior or "ct-slice"
    args.steps = args.steps or 50
    args.samples = args.samples or 1
    dev = device(args.device, args.threads)
    prior = load_prior(args.prior, dev) if diffusion else None
    _check_inputs(args, volumes)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "progress.log", "a")

    def on_row(r):
        line = (f"{r.volume} views={r.views} {r.method}: PSNR {r.psnr:.2f} SSIM {r.ssim:.3f} "
                f"{r.seconds:.1f}s NFE {r.nfe}")
        print(line, file=log, flush=True)
        if not args.json:
            info(line)

    common = dict(prior=prior, steps=args.steps, samples=args.samples, seed=args.seed, tv_lam=tv_lam,
                  device=dev, progress=False, on_row=on_row)
    rows, gallery = bench.run_benchmark(volumes, views, methods, noise=args.noise, slices=args.slices, **common)
    if args.real == "diamond_i13":
        real_rows, real_gallery = bench.run_real_scan(methods, **common)
        rows, gallery = rows + real_rows, {**gallery, **real_gallery}
    setup = {"command": "tomodiff " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
             "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores, device {dev}",
             "volumes": len(volumes), "views": views, "real": args.real, "methods": methods, "noise": args.noise,
             "steps": args.steps, "samples": args.samples, "slices": args.slices or "all",
             "prior": args.prior if prior is not None else None, "tv_lam": _lams(args.tv_lam) or "default",
             "metrics": "PSNR/SSIM peak: each reference's own max - min"}
    bench.write_csv(rows, args.out / "results.csv")
    bench.plot_psnr(rows, args.out / "psnr_vs_views.png")
    bench.plot_gallery(gallery, args.out / "gallery.png",
                       f"central axial slice, sparsest scan ({min(views)} views; the real scan: every 8th angle)")
    extra = ""
    if args.uncertainty:
        method = next(m for m in methods if any_diffusion([m]))
        checks = [bench.seam_and_coverage(v.strip(), prior, method=method, device=dev)
                  for v in args.uncertainty.split(",") if v.strip()]
        extra = bench.seam_coverage_markdown(checks)
        setup["uncertainty"] = checks
    bench.write_markdown(rows, setup, args.out / "report.md", extra=extra)
    (args.out / "setup.json").write_text(json.dumps(setup, indent=2))
    table = bench.summary_table(rows)
    emit(args, {"setup": setup, "summary": table},
         [f"{r['group']:<22} {r['views']:>3} views {r['method']:<7} PSNR {r['psnr']:6.2f}  SSIM {r['ssim']:.3f}  "
          f"{r['seconds']:7.1f} s  NFE {r['nfe']:.0f}" for r in table] + [f"report: {args.out / 'report.md'}"])
    return 0
