"""Options and helpers every CT command shares: ``--device``, ``--seed``, ``--json``; argument types
that reject bad values at parse time; output-path checks that run before any computation."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path



# ------------------------------------------------------------------ argument types
def int_at_least(lo: int):
    """argparse type: an integer ``>= lo``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    parse.__name__ = f"integer>={lo}"
    return parse


def real(*, lo: float | None = None, strict: bool = False):
    """argparse type: a finite real number, ``> lo`` (``strict``) or ``>= lo``."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        if lo is not None and (v <= lo if strict else v < lo):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {lo:g}, got {v:g}")
        return v
    parse.__name__ = "number"
    return parse


POSITIVE = real(lo=0.0, strict=True)
NON_NEGATIVE = real(lo=0.0)


def parse_rows(text: str, n_rows: int) -> slice:
    """``START:STOP`` (either may be empty; Python's negative indices allowed) as a slice that
    selects at least one of ``n_rows`` detector rows, else a ValueError naming the problem."""
    start, sep, stop = text.partition(":")
    if not sep or ":" in stop:
        raise ValueError(f"--rows must be START:STOP (e.g. 100:164), got {text!r}")
    try:
        a = int(start) if start.strip() else None
        b = int(stop) if stop.strip() else None
    except ValueError:
        raise ValueError(f"--rows must be START:STOP with integers (e.g. 100:164), got {text!r}") from None
    sel = range(n_rows)[slice(a, b)]
    if len(sel) == 0:
        raise ValueError(f"--rows {text} selects no rows: the scan has {n_rows} detector rows (0:{n_rows})")
    for v in (a, b):
        if v is not None and not -n_rows <= v <= n_rows:
            raise ValueError(f"--rows {text} is out of range: the scan has {n_rows} detector rows (0:{n_rows})")
    return slice(sel.start, sel.stop)


def given(args, name: str, default=None) -> bool:
    """Whether option ``name`` was set on the command line (its value differs from the
    parser's ``None``/``False`` default)."""
    v = getattr(args, name, default)
    return v is not None and v is not False


def refuse_inapplicable(args, names, why: str) -> None:
    """A ValueError for the first option in ``names`` that was given although ``why`` says it
    does not apply (e.g. ``--lam`` with ``--method sirt``)."""
    for name in names:
        if given(args, name):
            raise ValueError(f"--{name.replace('_', '-')} does not apply {why}")


# ------------------------------------------------------------------ output paths
def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(out: Path, inputs=(), *, option: str = "--out") -> Path:
    """Refuse an output path that is one of ``inputs`` (after resolving links), a directory, or
    not writable — before any computation. Creates nothing."""
    out = Path(out)
    for inp in inputs:
        if inp is not None and _same(out, Path(inp)):
            raise ValueError(f"{option} {out} is also an input ({inp}); tomodiff never overwrites its input, "
                             "choose another output path")
    if out.is_dir():
        raise ValueError(f"{option} {out} is a directory; give the path of a file (inside it, for example)")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"{option} {out} exists and is read-only")
    _check_dir_writable(out.parent, option, out)
    return out


def check_output_dir(out: Path, inputs=(), *, option: str = "--out") -> Path:
    """Refuse an output directory that is an existing file, one of ``inputs``, or not writable."""
    out = Path(out)
    for inp in inputs:
        if inp is not None and _same(out, Path(inp)):
            raise ValueError(f"{option} {out} is also an input ({inp}); choose another output directory")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {out} exists and is not a directory")
    _check_dir_writable(out, option, out)
    return out


def _check_dir_writable(directory: Path, option: str, out: Path) -> None:
    """The directory (or, if it does not exist yet, its nearest existing parent) must take a new
    file: checked by creating and removing a tiny probe file, which also catches read-only file
    systems and full disks (``os.access`` alone does neither, and says yes to root)."""
    import tempfile  # start-up time

    base = _nearest_existing(directory.absolute())
    if not base.is_dir():
        raise ValueError(f"{option} {out}: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {out}: directory {base} is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.{os.getpid()}.probe.", suffix=".tmp", dir=base)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{option} {out}: cannot write in {base} ({err.strerror or err})") from err


@contextlib.contextmanager
def removed_unless_used(checkpoint):
    """A checkpoint directory that this run creates is removed again when the run fails before it
    holds a finished slab (bad input found on the way, an interrupt): nothing to resume from."""
    fresh = checkpoint is not None and not Path(checkpoint).exists()
    try:
        yield
    except BaseException:
        if fresh and Path(checkpoint).is_dir() and not any(Path(checkpoint).glob("slab_*.pt")):
            from ..recon.slab_store import remove_checkpoint  # start-up time: torch

            remove_checkpoint(checkpoint)
        raise


# ------------------------------------------------------------------ common options
def add_common(p, *, seed: bool = True):
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: %(default)s)")
    p.add_argument("--threads", type=threads_arg, default="auto",
                   help="torch CPU threads: auto = the cores this process may use that other work leaves free "
                        "(usable cores minus the 1-minute load average, shared among torchrun's local ranks, at "
                        "least 1, at most torch's default; OMP_NUM_THREADS, when set, is obeyed), 0 = torch's "
                        "default (one per physical core), or a number (default: %(default)s). Torch's default "
                        "collapses on a busy machine: TV in the demo took 46.8 s instead of 2.3 s on 2 busy cores")
    if seed:
        p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


def threads_arg(text: str):
    """argparse type of ``--threads``: ``auto`` or an integer >= 0."""
    if str(text).strip().lower() == "auto":
        return "auto"
    return int_at_least(0)(text)


threads_arg.__name__ = "auto-or-integer>=0"


def auto_threads(torch_default: int, *, cores: int | None = None, load: float | None = None,
                 local_ranks: int | None = None) -> int:
    """The ``--threads auto`` rule: the cores this process may run on (``sched_getaffinity``), shared
    among torchrun's local ranks (``LOCAL_WORLD_SIZE``), minus those other work keeps busy (the 1-minute
    load average, rounded), at least 1 and at most ``torch_default`` (torch's own default, one thread
    per physical core). Measured on 2 busy cores: torch's 2 threads ran the demo's TV 20× slower than 1."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if local_ranks is None:
        try:
            local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        except ValueError:
            local_ranks = 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            load = 0.0
    share = max(1, cores // local_ranks)
    free = cores - int(load + 0.5)
    return max(1, min(torch_default, share, free))


_TORCH_DEFAULT: list[int] = []  # torch's own thread count, as first seen (before any set_threads)


def torch_default_threads() -> int:
    """Torch's default thread count in this process (one per physical core, or OMP_NUM_THREADS), as it
    was before :func:`set_threads` first changed it: a long-lived process (napari, tests) that calls
    ``set_threads("auto")`` again must not ratchet down to whatever the last call chose."""
    import torch  # start-up time

    if not _TORCH_DEFAULT:
        _TORCH_DEFAULT.append(torch.get_num_threads())
    return _TORCH_DEFAULT[0]


def set_threads(threads) -> int:
    """Apply ``--threads`` (``"auto"``, 0 = torch's default, or a count); returns the count in use.
    With ``auto``, a set ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``) is obeyed: torch's default then."""
    import torch  # start-up time

    if threads is not None and threads != "auto":
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"--threads must be auto or an integer >= 0, got {threads!r}")
    default = torch_default_threads()
    if threads == "auto":
        pinned = any(os.environ.get(v, "").strip() for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
        torch.set_num_threads(default if pinned else auto_threads(default))
    elif threads is not None:
        torch.set_num_threads(threads or default)
    return torch.get_num_threads()


def device(name: str, threads=None):
    """The torch device ``name`` (checked), after setting the CPU thread count if given (``"auto"``, 0 =
    torch's default, or a count; ``None`` leaves it as it is)."""
    import torch  # start-up time

    set_threads(threads)
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a torch device (e.g. cpu, cuda, cuda:0)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: torch sees no CUDA GPU on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name}: tomodiff runs on cpu or cuda devices")
    return dev


def emit(args, summary: dict, lines: list[str]) -> None:
    """The JSON summary on stdout with ``--json``, otherwise human-readable lines."""
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print("\n".join(lines))


def info(msg: str) -> None:
    print(msg, file=sys.stderr)


def load_prior(name: str | None, dev):
    """The named prior (default: the shipped default) on ``dev``, in precision ``"auto"`` (bf16 where
    native: measured faster, denoising within 0.06 dB) — the same in one process and under torchrun,
    so that one command gives one result. A ``Path`` (``--prior-file``) is a prior on disk: a diffusers
    or MONAI model folder (fp32: a network not measured here runs as trained) or a tomodiff .pt file."""
    from ..priors import load  # start-up time: torch
    from ..priors.registry import DEFAULT_PRIOR  # start-up time

    if isinstance(name, Path):
        from ..priors.external_files import load_external  # start-up time; diffusers/MONAI only if named

        prior = load_external(name, device=dev)
        if name.is_file():  # tomodiff's own network: the shipped priors' measured precision
            prior.precision = "auto"
        return prior
    return load(name or DEFAULT_PRIOR, device=dev, precision="auto")


def parse_methods(text: str) -> list[str]:
    """A comma-separated ``--methods`` list, each checked against the method registry."""
    from .. import methods  # torch-free: the registry names its solvers as strings

    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in methods.METHODS]
    if bad or not names:
        raise ValueError(f"--methods: unknown {bad or 'none given'}; choose from {', '.join(methods.names())}")
    return names


def any_diffusion(names) -> bool:
    from .. import methods  # start-up time

    return any(methods.get(m).diffusion for m in names)


def std_note(n_samples: int, calibration: dict | None = None) -> str:
    """How a std was estimated, for output lines: ``std from 4 samples`` (or why there is none); with
    the result's calibration record, whether it is calibrated: ``std: calibrated, k 5.6 × the spread of
    4 samples (fitted ...)`` or ``std: raw sample spread, not calibrated for METHOD with PRIOR; 4 samples``."""
    if n_samples < 2:
        return "no std (1 sample)"
    if not calibration or "note" not in calibration:
        return f"std from {n_samples} samples"
    return f"std: {calibration['note']}" + ("" if calibration.get("calibrated") else f"; {n_samples} samples")
