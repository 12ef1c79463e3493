"""``tomodiff demo2d``: the 2D image tasks on a held-out phantom slice, solved by the pseudo-inverse,
ΠGDM and DPS with a trained prior; a PNG and a PSNR/SSIM/time/NFE table.

If the prior is not installed, the command stops with a clear error naming the missing file
(it does not fall back silently); ``--methods pinv`` runs without any prior.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

_METHODS = ("pinv", "pigdm", "dps")
_TASKS = ("deblur", "sr4", "inpaint-pixels", "inpaint-box", "outpaint")
_FAMILIES = ("shepp_logan", "ellipsoids", "foam", "texture")


def _choices(allowed):
    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose a comma-separated subset of {','.join(allowed)}, got {text!r}")
        return list(dict.fromkeys(items))
    return parse


def add_parser(sub):
    p = sub.add_parser(
        "demo2d", help="deblur / super-resolve / inpaint / outpaint a phantom slice with ΠGDM and DPS (2D demo)",
        description="Simulate each 2D task (Gaussian blur, 4x block downsampling, pixel and box inpainting, "
                    "outpainting) with Gaussian noise on a slice of a held-out benchmark phantom, solve it with "
                    "the regularised pseudo-inverse A^T(lam I + A A^T)^-1 y and by posterior sampling with the "
                    "2D prior (PiGDM and DPS, one sample each), print PSNR/SSIM/seconds/NFE and write a PNG "
                    "(measurement | methods | truth). Needs the prior unless --methods pinv.")
    p.add_argument("--out", type=Path, default=Path("out/demo2d.png"), help="PNG to write (default: %(default)s)")
    p.add_argument("--methods", type=_choices(_METHODS), default=list(_METHODS),
                   help="comma-separated subset of %(default)s (default: all)".replace("%(default)s", ",".join(_METHODS)))
    p.add_argument("--tasks", type=_choices(_TASKS), default=list(_TASKS),
                   help=f"comma-separated subset of {','.join(_TASKS)} (default: all)")
    p.add_argument("--prior", default="slice-64",
                   help="shipped prior name or path to a prior .pt file (default: %(default)s)")
    p.add_argument("--steps", type=int, default=50, help="sampler steps = NFE per diffusion run (default: %(default)s)")
    p.add_argument("--zeta", type=float, default=None,
                   help="DPS step size for every task (default: tuned per task, see tomodiff.demos.methods.DPS_ZETA)")
    p.add_argument("--phantom", choices=_FAMILIES, default="shepp_logan",
                   help="family of the held-out phantom whose slice is the image (default: %(default)s)")
    p.add_argument("--size", type=int, default=64,
                   help="image side in pixels, a multiple of 4; the prior was trained at 64 (default: %(default)s)")
    p.add_argument("--noise", type=float, default=0.01, help="measurement noise std, image in [0,1] (default: %(default)s)")
    p.add_argument("--lam", type=float, default=1e-3, help="Tikhonov weight λ of the pseudo-inverse (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of masks, noise and samplers (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 0 = torch's default. One thread is the default because a 64² image is "
                        "too small to gain from more, and on a busy machine extra threads made each step several "
                        "times slower (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout instead of the table")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch  # start-up time

    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    before = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(before)


def _run(args) -> int:
    from ..demos.compare import compare  # start-up time
    from ..demos.figure import format_table, save_figure  # start-up time
    from ..demos.image_tasks import demo_image, make_tasks  # start-up time
    from ..demos.methods import DIFFUSION_METHODS, DPS_ZETA, load_prior  # start-up time

    from ._common import check_output_file  # start-up time

    check_output_file(args.out)  # before any work: not a directory, writable
    if args.size < 8 or args.size % 4:
        raise ValueError(f"--size must be a multiple of 4 and at least 8, got {args.size}")
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.noise < 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
    diffusion = [m for m in args.methods if m in DIFFUSION_METHODS]
    prior = load_prior(args.prior) if diffusion else None  # fails here, before any work, if missing

    t0 = time.perf_counter()
    image = demo_image(args.size, args.phantom)
    tasks = make_tasks(image, noise_sigma=args.noise, seed=args.seed, keys=args.tasks)
    log = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    results = compare(image, tasks, args.methods, prior=prior, noise_sigma=args.noise, steps=args.steps,
                      lam=args.lam, zeta=args.zeta, seed=args.seed, log=log)
    total = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    prior_name = f"{prior.name} ({prior.info.get('training', {}).get('steps', '?')} training steps)" if prior else None
    title = (f"{args.phantom} benchmark slice {args.size}², noise σ={args.noise}"
             + (f", prior {prior_name}, {args.steps} steps" if prior else ""))
    save_figure(image, tasks, results, args.out, title=title)

    summary = {
        "image": f"{args.phantom} benchmark phantom slice {args.size}x{args.size}", "noise_sigma": args.noise,
        "lam": args.lam, "seed": args.seed, "steps": args.steps if diffusion else None,
        "prior": (str(args.prior) if prior else None), "prior_training_steps":
            (prior.info.get("training", {}).get("steps") if prior else None),
        "dps_zeta": ({t.key: (args.zeta if args.zeta is not None else DPS_ZETA[t.key]) for t in tasks}
                     if "dps" in args.methods else None),
        "tasks": {t.key: {m: r.summary() for m, r in results[t.key].items()} for t in tasks},
        "task_names": {t.key: t.name for t in tasks},
        "total_seconds": round(total, 2), "figure": str(args.out)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(format_table(tasks, results))
    print(f"total {total:.1f} s; figure: {args.out}", file=sys.stderr)
    return 0
