"""``regfn verify results.json``: rerun a ``regfn sweep`` run from its recorded arguments and compare.

The command rebuilds the data and the model from the ``argv`` that
``regfn sweep`` recorded in the provenance of its ``results.json`` (so it
works for runs of the command; in Python, :func:`regfn.verify` takes any
model and data), reruns the sweep and prints which rows differ and by how
much, or that all are bit-identical. Exit status: 0 identical, 1 rows
differ, 2 bad input.
"""

from __future__ import annotations

import argparse

from ._errors import CLIParser
from ._formatting import HelpFormatter
from ._sweep_command import add_sweep_parser

__all__ = ["add_verify_parser", "run_verify"]


def add_verify_parser(sub: argparse._SubParsersAction[CLIParser], formatter: type[argparse.HelpFormatter]) -> None:
    """The ``verify`` subcommand's parser, on the ``regfn`` command's subparsers ``sub``."""
    p = sub.add_parser(
        "verify",
        help="rerun a regfn sweep from its results.json and report the rows that differ",
        description="Rerun the sweep recorded in RESULTS (results.json written by 'regfn sweep'), with the same "
        "data, model, configurations and settings, and compare every row and curve bit for bit. "
        "Exit status 0: all rows identical; 1: some rows differ; 2: bad input.",
        formatter_class=formatter,
    )
    p.add_argument("results", metavar="RESULTS", help="a results.json written by 'regfn sweep'")
    p.add_argument("--device", default=None, help="where to rerun (default: the recorded device when available)")


def _sweep_parser() -> argparse.ArgumentParser:
    """A parser of recorded ``regfn sweep`` arguments (``["sweep", ...]``): the command's ``sweep`` subcommand only.

    Built here rather than taken from :mod:`regfn.cli._main`, which imports this module.
    """
    parser = CLIParser(prog="regfn", formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", parser_class=CLIParser)
    add_sweep_parser(sub, HelpFormatter)
    return parser


def run_verify(args: argparse.Namespace) -> int:
    """Rerun and compare; print the report. 0: identical, 1: rows differ."""
    import regfn

    from ._data import load_data
    from ._errors import CLIError
    from ._model import build_model

    try:
        stored = regfn.SweepResult.from_json(args.results)
    except FileNotFoundError:
        raise CLIError(f"{args.results}: no such file") from None
    argv = stored.provenance.get("argv")
    if not argv:
        raise CLIError(
            f"{args.results} was not written by 'regfn sweep' (no recorded arguments); "
            "verify it in Python with regfn.verify(path, model, data, val=...)"
        )
    recorded = _sweep_parser().parse_args(argv)
    train, val, desc = load_data(recorded)
    model, loss, _ = build_model(recorded, train)
    print(f"regfn verify: rerunning {len(stored)} configs on {desc}", flush=True)
    report = regfn.verify(stored, model, train, val=val, loss=loss, device=args.device)
    print(report)
    return 0 if report.identical else 1
