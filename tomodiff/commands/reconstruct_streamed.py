"""``tomodiff reconstruct`` on the streaming path: under torchrun, or with ``--stream``.

The sinogram is read and the volume written a slab at a time
(:func:`tomodiff.recon.streamed.reconstruct_file`), so memory is bounded by the slab; under
``torchrun`` the slabs are shared among the ranks and rank 0 writes the output. ``--checkpoint``
is the directory of finished slabs (default ``.<OUT name>.slabs`` next to OUT), as on the
in-memory path; rerunning after a crash resumes from it with any number of ranks.
"""

from __future__ import annotations

from .. import methods
from ._common import emit, info, load_prior, parse_rows
from .reconstruct_args import check_args

# options of the in-memory path that the streaming path does not take (TIFF stacks, resampling)
UNSUPPORTED = ("flats", "darks", "angles", "pixel_size", "voxel_size")


def _check(args) -> None:
    given = [f"--{name.replace('_', '-')}" for name in UNSUPPORTED if getattr(args, name, None) is not None]
    given += ["--guard"] if getattr(args, "guard", False) else []
    if given:
        raise ValueError(f"{', '.join(given)}: not available on the streaming path (torchrun or --stream); "
                         f"convert the scan to a project file first")
    check_args(args, streaming=True)


def _rows(args):
    if not getattr(args, "rows", None):
        return None
    from ..io.sinogram_reader import open_sinogram  # start-up time: h5py

    with open_sinogram(args.file) as src:
        sel = parse_rows(args.rows, src.shape[1])
    return sel.start, sel.stop


def run_streamed(args) -> int:
    from ..recon import distributed  # start-up time: the parser imports nothing heavy
    from ..recon.streamed import reconstruct_file  # start-up time

    _check(args)
    if getattr(args, "threads", None):
        import torch  # start-up time

        torch.set_num_threads(args.threads)
    m = methods.get(args.method)
    if m.name == "tv" and args.lam is None and distributed.detect().rank == 0:
        info(f"tv on the streaming path: weight {methods.TV_LAM_PER_VIEW:g} x views per slab (the weight from the "
             "noise level runs in memory only; or pass --lam)")
    options = {k: v for k, v in (("n_iter", args.iters), ("lam", args.lam)) if v is not None}
    scale = None if args.scale in (None, "none") else args.scale
    prior = load_prior(args.prior, distributed.device_for(distributed.detect(), args.device)) if m.diffusion else None
    summary = reconstruct_file(
        args.file, args.out, method=args.method, prior=prior, steps=args.steps,
        n_samples=(args.samples or methods.DEFAULT_SAMPLES) if m.diffusion else 1, sigma_y=args.sigma_y,
        seed=args.seed or 0, slab=args.slab or methods.DEFAULT_SLAB, overlap=args.overlap,
        keep_samples=args.keep_samples, checkpoint=args.checkpoint, device=args.device, thin=args.thin or 1,
        rows=_rows(args), center_offset=getattr(args, "center_offset", None) or 0.0, scale=scale,
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
