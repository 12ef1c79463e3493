"""``tomodiff reconstruct`` on the streaming path: under torchrun, or with ``--stream``.

The sinogram is read and the volume written a slab at a time
(:func:`tomodiff.recon.streamed.reconstruct_file`), so memory is bounded by the slab; under
``torchrun`` the slabs are shared among the ranks and rank 0 writes the output. ``--checkpoint``
is a directory here (default ``.<OUT name>.slabs`` next to OUT); rerunning after a crash resumes
from it with any number of ranks.
"""

from __future__ import annotations

from ._common import emit

# options of the in-memory path that the streaming path does not take (TIFF stacks, resampling)
UNSUPPORTED = ("flats", "darks", "angles", "pixel_size", "voxel_size")


def run_streamed(args) -> int:
    from ..recon import distributed
    from ..recon.streamed import reconstruct_file
    from . import reconstruct as cmd

    given = [f"--{name.replace('_', '-')}" for name in UNSUPPORTED if getattr(args, name, None) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: not available on the streaming path (torchrun or --stream); "
                         f"convert the scan to a project file first")
    if args.out.resolve() == args.file.resolve():
        raise ValueError(f"--out {args.out} is the input file; write the reconstruction to another file")
    threads = getattr(args, "threads", None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    rows = None
    if getattr(args, "rows", None):
        try:
            a, b = (int(v) for v in args.rows.split(":"))
        except ValueError:
            raise ValueError(f"--rows must be START:STOP (integers), got {args.rows!r}") from None
        rows = (a, b)
    from ..priors.registry import DEFAULT_PRIOR

    diffusion = args.method in ("pigdm", "dps", "dds", "diffpir", "sdedit")
    options = {}
    if args.iters is not None:
        options["n_iter"] = args.iters
    if args.lam is not None:
        options["lam"] = args.lam
    scale = getattr(args, "scale", None)
    scale = None if scale in (None, "none") else scale
    summary = reconstruct_file(
        args.file, args.out, method=args.method, prior=(args.prior or DEFAULT_PRIOR) if diffusion else None,
        steps=args.steps or getattr(cmd, "DEFAULT_STEPS", 50),
        n_samples=(args.samples or getattr(cmd, "DEFAULT_SAMPLES", 1)) if diffusion else 1,
        sigma_y=args.sigma_y, seed=args.seed or 0, slab=args.slab or getattr(cmd, "DEFAULT_SLAB", 32),
        overlap=args.overlap, keep_samples=args.keep_samples, checkpoint=args.checkpoint, device=args.device,
        thin=args.thin or 1, rows=rows, center_offset=getattr(args, "center_offset", None) or 0.0, scale=scale,
        progress=not args.json, **options)
    distributed.teardown()
    if summary is None:  # not rank 0: rank 0 reports
        return 0
    peak = max(r["peak_rss_mb"] for r in summary["ranks"])
    q = "" if summary["psnr"] is None else f", PSNR {summary['psnr']:.2f} dB (data range {summary['data_range']:.4g})"
    emit(args, summary, [f"{args.method}: {summary['seconds']:.1f} s on {summary['world_size']} rank(s), "
                         f"{summary['slabs']} slabs, NFE {summary['nfe']}, residual {summary['residual']:.3g}{q}, "
                         f"peak RSS per rank {peak:.0f} MiB",
                         f"wrote {args.out}  (view: tomodiff view {args.out})"])
    return 0
