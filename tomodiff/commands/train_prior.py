"""``tomodiff train-prior``: train (or resume) a diffusion prior; ``--export`` writes its weights file.

Before any work: options, data files (their headers), a size that fits in memory, the run
directory; a second run on the same directory is refused while the first runs (a lock), and a run
that fails before its first checkpoint leaves no run directory behind.
"""

from __future__ import annotations

import contextlib


def add_parser(sub):
    p = sub.add_parser("train-prior", help="train or resume an EDM U-Net prior on phantoms or volume files",
                       description="Train a slice (2D) or patch (3D) diffusion prior into OUT_DIR, checkpointing "
                                   "every few minutes; running it again on the same OUT_DIR resumes.")
    p.add_argument("out_dir", help="run directory (checkpoint.pt, train.log, sample grids)")
    p.add_argument("--name", default="slice-64")
    p.add_argument("--dims", type=int, choices=(2, 3), default=2, help="2: slice prior, 3: patch prior")
    p.add_argument("--size", type=int, default=64, help="slice / patch edge in voxels")
    p.add_argument("--source-size", type=int, default=64, help="3D: edge of the phantoms patches are cut from")
    p.add_argument("--channels", default="16,32,64,96", help="U-Net widths per level, comma-separated")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--noise", choices=("karras", "cosine"), default="karras", help="training σ distribution")
    p.add_argument("--steps", type=int, default=1_000_000, help="stop at this total step count")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much wall time (this session)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0, help="run seed (phantom seeds derive from it)")
    p.add_argument("--families", default=None, help="comma-separated phantom families (default: all)")
    p.add_argument("--data", nargs="+", default=None,
                   help=".npy/.npz/.h5/.nii(.gz) volumes (or directories) in [0, 1] instead of phantoms")
    p.add_argument("--val-data", nargs="+", default=None,
                   help="held-out volumes: the EMA weights are scored on them every --eval-every steps and the best "
                        "are kept (best.pt, used by --export)")
    p.add_argument("--test-data", nargs="+", default=None,
                   help="more held-out volumes scored alongside, for the learning curve only (never for selection)")
    p.add_argument("--eval-every", type=int, default=250, help="steps between held-out scores")
    p.add_argument("--scale-range", default="1,4",
                   help="volume data: region of size*s resampled to size, s log-uniform in LOW,HIGH")
    p.add_argument("--no-augment", action="store_true",
                   help="volume data: plain axial crops (no orientations, flips, rescaling, intensity jitter)")
    p.add_argument("--context", type=int, default=0, metavar="K",
                   help="2.5D prior: denoise each slice from its K neighbours on each side (volume data; 0: a "
                        "slice prior)")
    p.add_argument("--conditional", action="store_true",
                   help="conditional prior for classifier-free guidance: trained on (slice, FBP of a simulated "
                        "sparse-view scan) pairs with condition dropout (volume data)")
    p.add_argument("--cond-dropout", type=float, default=0.15, help="conditional: share of steps without condition")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: autocast the forward/backward (about 1.6-2x faster on CPUs with AVX-512 BF16)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--grid-samples", type=int, default=16, help="unconditional samples in the final PNG grid")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (the log file is still written)")
    p.add_argument("--export", metavar="WEIGHTS", default=None,
                   help="do not train: write OUT_DIR's EMA weights to this prior file and exit")
    p.set_defaults(func=run)


def _resume_config(ckpt_file, cfg, args):
    """Resuming: the checkpoint's settings, overridden by the options that this command line sets
    to something other than their default; ``train`` rejects any change of a defining setting."""
    import argparse  # start-up time

    import torch  # start-up time: torch

    from ..training.train import RUNTIME_KEYS, TrainConfig  # start-up time

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    defaults = vars(parser.parse_args(["train-prior", str(args.out_dir)]))
    rename = {"seed": "run_seed", "no_augment": "augment"}
    given = {rename.get(k, k) for k, v in vars(args).items() if k in defaults and v != defaults[k]}
    saved = torch.load(ckpt_file, map_location="cpu", weights_only=False)["config"]
    wanted = cfg.to_dict()
    merged = {k: (wanted[k] if k in given or k in RUNTIME_KEYS else v) for k, v in saved.items()}
    return TrainConfig(**merged)


def _validate(args) -> None:
    """CLI-level checks, before anything is imported, trained or written: one clear line each."""
    import math  # start-up time
    from pathlib import Path  # start-up time

    from ._common import check_output_dir, check_output_file  # start-up time

    for name, lo in (("size", 1), ("source_size", 1), ("batch", 1), ("steps", 1), ("eval_every", 1), ("context", 0),
                     ("grid_samples", 0), ("threads", 0), ("seed", 0)):
        v = getattr(args, name, None)
        if v is not None and v < lo:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {lo}, got {v}")
    for name in ("lr", "max_minutes", "checkpoint_minutes"):
        v = getattr(args, name, None)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}")
    try:
        channels = [int(c) for c in args.channels.split(",")]
    except ValueError:
        raise ValueError(f"--channels must be comma-separated integers like 16,32,64, got {args.channels!r}") from None
    if not channels or min(channels) < 1:
        raise ValueError(f"--channels must be comma-separated integers >= 1, got {args.channels!r}")
    scale_range = getattr(args, "scale_range", None)
    if scale_range is not None:
        try:
            lo_hi = [float(v) for v in scale_range.split(",")]
        except ValueError:
            raise ValueError(f"--scale-range must be LOW,HIGH numbers, got {scale_range!r}") from None
        if len(lo_hi) != 2:
            raise ValueError(f"--scale-range must be LOW,HIGH, got {scale_range!r}")
    for option in ("data", "val_data", "test_data"):
        for f in getattr(args, option, None) or []:
            if not Path(f).exists():
                raise FileNotFoundError(f"--{option.replace('_', '-')} {f}: no such file or directory")
            _check_volume_files(Path(f))
    if not args.export:
        _check_memory(args, channels)
    out_dir = Path(args.out_dir)
    if args.export:
        ckpt = out_dir / "checkpoint.pt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: no such file (--export needs a training run in {out_dir})")
        check_output_file(Path(args.export), [ckpt, out_dir / "best.pt"], option="--export")
        return
    check_output_dir(out_dir, [*(args.data or []), *(getattr(args, "val_data", None) or [])], option="OUT_DIR")


def _check_volume_files(path) -> None:
    """Every volume file given (or in a folder given) has a readable header: a damaged one is named before any work."""
    from ..io.volumes import check_volume_file  # start-up time
    from ..training.ct_data import SUFFIXES  # start-up time

    for f in sorted(path.iterdir()) if path.is_dir() else [path]:
        if f.is_file() and f.name.lower().endswith(SUFFIXES):
            check_volume_file(f)


def _check_memory(args, channels) -> None:
    """Refuse a size that cannot fit before anything is allocated: a step keeps at least the first
    level's activations and their gradients, 8·batch·channels·size^dims bytes (a lower bound)."""
    import os  # start-up time

    need = 8 * args.batch * channels[0] * args.size ** args.dims
    if args.dims == 3 and not args.data:  # patches are cut from phantoms of --source-size³
        need = max(need, 16 * args.source_size ** 3)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no check
        return
    if need > ram:
        raise ValueError(f"--size {args.size} (--dims {args.dims}, --batch {args.batch}, first width {channels[0]}): "
                         f"one training step needs at least {need / 2**30:,.3g} GiB, more than this machine's "
                         f"{ram / 2**30:.3g} GiB of memory")


def _export(checkpoint, out) -> None:
    """``export`` through a temporary file: a failed write leaves no half-written prior file and
    any earlier one unchanged."""
    from ..io.atomic import WRITE_ERRNOS, OutputWriteError, atomic_path, errno_of, write_error  # start-up time
    from ..training.train import export  # start-up time

    try:
        with atomic_path(out) as tmp:
            export(checkpoint, tmp)
    except OSError as err:
        if isinstance(err, OutputWriteError) or errno_of(err) not in WRITE_ERRNOS:
            raise
        raise write_error(err, out) from err
    except RuntimeError as err:  # torch.save to a full disk: "enforce fail ... unexpected pos"
        if isinstance(err, OutputWriteError) or "inline_container" not in str(err):
            raise
        raise OutputWriteError(f"could not write {out} (torch: {str(err).strip().splitlines()[0]}: a full disk or a "
                               f"file-size limit?); any earlier {out.name} is unchanged") from err


@contextlib.contextmanager
def _removed_if_failed(out_dir):
    """A run directory that this run creates is removed again when the run fails before its first
    checkpoint (bad data found while loading it): an empty run directory is not a run to resume."""
    import shutil  # start-up time
    from pathlib import Path  # start-up time

    out_dir = Path(out_dir)
    fresh = not out_dir.exists()
    try:
        yield
    except BaseException:
        if fresh and out_dir.is_dir() and not (out_dir / "checkpoint.pt").exists():
            shutil.rmtree(out_dir, ignore_errors=True)  # made by this run alone (it holds the lock)
        raise


def run(args) -> int:
    from pathlib import Path  # start-up time

    from ..io.lock import output_lock  # start-up time

    _validate(args)
    if args.export:
        with output_lock(args.export):
            _export(Path(args.out_dir) / "checkpoint.pt", Path(args.export))
        print(f"wrote {args.export}")
        return 0
    with output_lock(args.out_dir), _removed_if_failed(args.out_dir):  # one training run per directory
        return _train(args)


def _train(args) -> int:
    from pathlib import Path  # start-up time

    from ..training.train import TrainConfig, train  # start-up time

    kw = {}
    if args.families:
        kw["families"] = tuple(f.strip() for f in args.families.split(","))
    cfg = TrainConfig(name=args.name, dims=args.dims, size=args.size, source_size=args.source_size,
                      channels=tuple(int(c) for c in args.channels.split(",")), batch=args.batch, lr=args.lr,
                      noise=args.noise, steps=args.steps, max_minutes=args.max_minutes,
                      checkpoint_minutes=args.checkpoint_minutes, run_seed=args.seed, data=args.data,
                      threads=args.threads or None, device=args.device, grid_samples=args.grid_samples,
                      augment=not args.no_augment, scale_range=tuple(float(v) for v in args.scale_range.split(",")),
                      precision=args.precision, val_data=args.val_data, test_data=args.test_data,
                      eval_every=args.eval_every, context=args.context, conditional=args.conditional,
                      cond_dropout=args.cond_dropout, **kw)
    ckpt_file = Path(args.out_dir) / "checkpoint.pt"
    if ckpt_file.exists():
        cfg = _resume_config(ckpt_file, cfg, args)
    ckpt = train(cfg, args.out_dir, progress=not args.no_progress)
    print(f"checkpoint: {ckpt}")
    return 0


if __name__ == "__main__":  # python -m tomodiff.commands.train_prior OUT_DIR ... (before cli.py registers it)
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="tomodiff")
    add_parser(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["train-prior", *sys.argv[1:]])
    sys.exit(ns.func(ns))
