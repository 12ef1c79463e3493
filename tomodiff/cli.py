"""The ``tomodiff`` command: a thin dispatcher over ``tomodiff.commands.<name>`` modules.

Each command module defines ``add_parser(subparsers)`` (which registers its sub-parser and sets
``func``) so that ``tomodiff --help`` stays fast: heavy imports happen inside ``func`` only.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__

# module names under tomodiff.commands, in the order --help lists them
COMMANDS = ["demo", "simulate", "reconstruct", "benchmark", "demo2d", "train_prior", "info", "view"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tomodiff",
        description="Sparse-view CT and 2D inverse problems by diffusion posterior sampling.")
    parser.add_argument("--version", action="version", version=f"tomodiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tomodiff.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("tomodiff: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        print(f"tomodiff {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
