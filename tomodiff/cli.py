"""The ``tomodiff`` command: a thin dispatcher over ``tomodiff.commands.<name>`` modules.

Each command module defines ``add_parser(subparsers)`` (which registers its sub-parser and sets
``func``) so that ``tomodiff --help`` stays fast: heavy imports happen inside ``func`` only.

Errors: every error the command reports is one line on stderr, ``tomodiff COMMAND: error: ...``
(warnings likewise: ``tomodiff COMMAND: warning: ...``),
with exit status 2, and never a traceback (set ``TOMODIFF_DEBUG=1`` to see one). Interrupts exit
with 130 (Ctrl-C) or 143 (SIGTERM), after removing any half-written output file. Under torchrun the
line also goes to its error file (``TORCHELASTIC_ERROR_FILE``), so that its failure summary shows it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import warnings

from ._version import __version__
from .io.atomic import Terminated, install_sigterm_handler

# module names under tomodiff.commands, in the order --help lists them
COMMANDS = ["demo", "simulate", "reconstruct", "benchmark", "demo2d", "train_prior", "info", "view", "selftest",
            "cache"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``tomodiff reconstruct: error: ...``, and no
    prefix matching (``--center auto`` must not be read as ``--center-offset auto``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text) -> str:
    """``text`` on one line: newlines folded into ``; ``, surrounding blanks stripped."""
    return "; ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tomodiff",
        description="Sparse-view CT and 2D inverse problems by diffusion posterior sampling.")
    parser.add_argument("--version", action="version", version=f"tomodiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tomodiff.commands.{name}").add_parser(sub)
    return parser


def _message(err: BaseException) -> str:
    """One line for the user: the error's own message for the kinds commands raise on bad input
    or a bad environment, the exception type too for anything else (that is a bug to report)."""
    if isinstance(err, KeyError) and err.args:
        return one_line(err.args[0])
    if isinstance(err, OSError) and err.strerror and err.filename:
        return one_line(f"{err.filename}: {err.strerror}")
    if isinstance(err, (ValueError, OSError, RuntimeError)) and str(err).strip():
        return one_line(err)
    return f"unexpected {type(err).__name__}: {one_line(err)} (set TOMODIFF_DEBUG=1 for the traceback)"


def _tell_torchrun(line: str) -> None:
    """Under torchrun, the error line also goes to the file its failure summary reads
    (``TORCHELASTIC_ERROR_FILE``), which otherwise names no cause ("To enable traceback see ...")."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    info = {"py_callstack": line, "timestamp": str(int(time.time()))}
    try:
        with open(path, "w") as fh:
            json.dump({"message": {"message": line, "extraInfo": info}}, fh)
    except OSError:
        pass  # the line is on stderr anyway


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    installed = install_sigterm_handler()
    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"tomodiff {args.command}: warning: {one_line(message)}", file=sys.stderr)

    show, warnings.showwarning = warnings.showwarning, one_line_warning
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("tomodiff: interrupted", file=sys.stderr)
        return 130
    except Terminated as stop:
        # torchrun stops every rank with SIGTERM as soon as one fails, before they could notice it themselves
        why = ("; torchrun stops every rank when one of them fails (its summary below names that rank); rerun the "
               "same command to resume from the finished slabs") if "TORCHELASTIC_ERROR_FILE" in os.environ else ""
        line = f"tomodiff {args.command}: stopped by SIGTERM{why}"
        print(line, file=sys.stderr)
        _tell_torchrun(line)
        return stop.code
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - the one place that turns errors into messages
        if os.environ.get("TOMODIFF_DEBUG"):
            raise
        line = f"tomodiff {args.command}: error: {_message(err)}"
        print(line, file=sys.stderr)
        _tell_torchrun(line)
        return 2
    finally:
        warnings.showwarning = show
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
