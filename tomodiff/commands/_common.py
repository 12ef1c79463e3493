"""Options and helpers every CT command shares: ``--device``, ``--seed``, ``--json``."""

from __future__ import annotations

import json
import sys

# the reconstruction methods, listed here so that building the parser imports nothing heavy
# (tests check it equals tomodiff.recon.reconstruct.METHODS)
RECON_METHODS = ("fbp", "sirt", "cgls", "tv", "pigdm", "dps", "dds", "sdedit")


def add_common(p, *, seed: bool = True):
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads, 0 = torch's default (default: %(default)s). On a machine busy with "
                        "other work, --threads 1 can be several times faster (measured on 2 cores)")
    if seed:
        p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


def device(name: str, threads: int | None = None):
    """The torch device ``name`` (checked), after setting the CPU thread count if given."""
    import torch

    if threads is not None:
        if threads < 0:
            raise ValueError(f"--threads must be >= 0, got {threads}")
        if threads:
            torch.set_num_threads(threads)
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: torch sees no CUDA GPU on this machine")
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
    if name is None:
        raise ValueError("this method needs --prior (e.g. --prior slice-64)")
    from ..priors import load

    return load(name, device=dev)
