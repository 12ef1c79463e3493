"""``tomodiff reconstruct`` on the streaming path: under torchrun, or with ``--stream``.

The sinogram is read and the volume written a slab at a time
(:func:`tomodiff.recon.streamed.reconstruct_file`), so memory is bounded by the slab; under
``torchrun`` the slabs are shared among the ranks and rank 0 writes the output. ``--checkpoint``
is the directory of finished slabs (default ``.<OUT name>.slabs`` next to OUT), as on the
in-memory path; rerunning after a crash resumes from it with any number of ranks.
"""

from __future__ import annotations

import contextlib

from .. import methods
from ._common import check_output_dir, device, emit, info, load_prior, parse_rows, removed_unless_used, std_note
from .reconstruct_args import check_args, refuse_for_kind

# options of the in-memory path that the streaming path does not take (TIFF stacks, resampling)
UNSUPPORTED = ("flats", "darks", "angles", "pixel_size", "voxel_size")


def _check(args) -> None:
    given = [f"--{name.replace('_', '-')}" for name in UNSUPPORTED if getattr(args, name, None) is not None]
    given += ["--guard"] if getattr(args, "guard", False) else []
    if given:
        raise ValueError(f"{', '.join(given)}: not available on the streaming path (torchrun or --stream); "
                         f"convert the scan to a project file first")
    check_args(args, streaming=True)
    from ..io.problem import file_kind  # start-up time
    from ..recon.streamed import default_store  # start-up time

    kind = file_kind(args.file)  # the input, too, is checked before any work, as in memory
    if kind == "tiff":
        raise ValueError(f"{args.file}: TIFF stacks are not available on the streaming path (torchrun or --stream); "
                         "reconstruct them without --stream")
    refuse_for_kind(args, kind)
    if args.checkpoint is None:  # the default checkpoint beside OUT
        check_output_dir(default_store(args.out), [args.file], option="checkpoint")


@contextlib.contextmanager
def _locked(ctx, *paths):
    """Rank 0 holds the locks of the outputs for the job; every rank learns whether it got them,
    so the ranks of a second job on the same OUT stop together, with rank 0's message."""
    from ..io.lock import OutputLockedError, output_lock  # start-up time
    from ..recon import distributed  # start-up time

    with contextlib.ExitStack() as stack:
        refused = None
        if ctx.rank == 0:
            try:
                stack.enter_context(output_lock(*paths))
            except OutputLockedError as err:
                refused = str(err)
        refused = distributed.gather_objects(ctx, refused, "the check of the output lock")[0]
        if refused:
            raise OutputLockedError(refused)
        yield


def _rows(args):
    if not getattr(args, "rows", None):
        return None
    from ..io.sinogram_reader import open_sinogram  # start-up time: h5py

    with open_sinogram(args.file) as src:
        sel = parse_rows(args.rows, src.shape[1])
    return sel.start, sel.stop


def run_streamed(args) -> int:
    from ..recon import distributed  # start-up time: the parser imports nothing heavy
    from ..recon.streamed import default_store  # start-up time

    _check(args)
    device(args.device, args.threads)
    ctx, _ = distributed.setup(args.device)
    store = args.checkpoint if args.checkpoint is not None else default_store(args.out)
    with _locked(ctx, args.out, store), removed_unless_used(store):  # one writer per output
        return _streamed(args)


def _streamed(args) -> int:
    """The streaming path, once the options, input and outputs are checked and locked."""
    from ..recon import distributed  # start-up time
    from ..recon.streamed import reconstruct_file  # start-up time

    m = methods.get(args.method)
    if m.name == "tv" and args.lam is None and distributed.detect().rank == 0:
        info(f"tv on the streaming path: weight {methods.TV_LAM_PER_VIEW:g} x views per slab (the weight from the "
             "noise level runs in memory only; or pass --lam)")
    options = {k: v for k, v in (("n_iter", args.iters), ("lam", args.lam)) if v is not None}
    scale = None if args.scale in (None, "none") else args.scale
    prior = load_prior(args.prior_file or args.prior or m.prior,
                       distributed.device_for(distributed.detect(), args.device)) if m.diffusion else None
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
    noise = summary.get("noise")  # diffusion: how σ_y was found (printed by rank 0 when estimated)
    q = "" if summary["psnr"] is None else f", PSNR {summary['psnr']:.2f} dB (data range {summary['data_range']:.4g})"
    emit(args, summary, [f"{args.method}: {summary['seconds']:.1f} s on {summary['world_size']} rank(s), "
                         f"{summary['slabs']} slabs, NFE {summary['nfe']}, residual {summary['residual']:.3g}{q}, "
                         f"peak RSS per rank {peak:.0f} MiB"
                         + (f", {std_note(summary['std_samples'], summary['std_calibration'])}"
                            if summary.get("std_calibration") else "")
                         + (f", sigma_y {noise['sigma_y']:.4g} ({noise['rule']})" if noise else ""),
                         f"wrote {args.out}  (view: tomodiff view {args.out})"])
    return 0
