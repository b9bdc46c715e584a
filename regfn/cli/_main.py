"""The ``regfn`` command: :func:`build_parser` (the subcommands' parsers together) and :func:`main`.

Each subcommand declares its parser and its handler in its own module
(:mod:`._sweep_command`, :mod:`._train_command`, :mod:`._verify`). Bad input
ends in :class:`~._errors.CLIError` (or ``ValueError``, ``TypeError``,
``OSError``), which :func:`main` prints as one line
``regfn: error: <message>`` with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence

from ._errors import CLIError, CLIParser, first_line
from ._formatting import HelpFormatter
from ._sweep_command import add_sweep_parser, run_sweep
from ._train_command import add_train_parser, run_train
from ._verify import add_verify_parser, run_verify

__all__ = ["PROG", "build_parser", "main"]

PROG = "regfn"
"""The command's name, in its usage lines and one-line errors (``regfn: error: ...``)."""

_MAIN_EPILOG = """\
examples:
  regfn sweep                 # train many (l2, p, seed) settings at once, table + figures
  regfn sweep --help          # all options
  regfn train --p 0.5         # one run, the tutorial's loss printout
  regfn verify regfn-out/results.json   # rerun a sweep, compare every row bit for bit
  python -m regfn sweep ...   # the same without the console script
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``regfn`` argument parser (subcommands ``sweep``, ``train`` and ``verify``)."""
    parser = CLIParser(
        prog=PROG,
        description="regfn: dropout and L1/L2 regularization for PyTorch, the functional way.",
        epilog=_MAIN_EPILOG,
        formatter_class=HelpFormatter,
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"regfn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{sweep,train,verify}", parser_class=CLIParser)
    add_sweep_parser(sub, HelpFormatter)
    add_train_parser(sub, HelpFormatter)
    add_verify_parser(sub, HelpFormatter)
    return parser


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--l1 -1e-3`` -> ``--l1=-1e-3``: argparse would read ``-1e-3`` as an option and hide the real problem."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--") and "=" not in tok and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _process_age() -> float:
    """Seconds since this process started (Linux: ``/proc``); 0 where that cannot be read."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rpartition(")")[2].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``regfn`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    # From the command line, the time: line counts from the process's start (importing torch and regfn included).
    clock = (time.perf_counter(), _process_age() if argv is None else None)
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:  # --help, --version
            return int(done.code or 0)
        if args.command is None:
            parser.print_help()
            return 2
        import torch

        threads = torch.get_num_threads()
        args.argv = argv
        args.clock = clock
        commands = {"sweep": run_sweep, "train": run_train, "verify": run_verify}
        try:
            return commands[args.command](args)
        finally:
            torch.set_num_threads(threads)  # main() may run inside another program (tests)
    except (CLIError, ValueError, TypeError, OSError) as err:  # OSError: FileNotFoundError, PermissionError, ...
        print(f"{PROG}: error: {first_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
