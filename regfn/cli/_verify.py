"""``regfn verify results.json``: rerun a ``regfn sweep`` run from its recorded arguments and compare.

The command rebuilds the data and the model from the ``argv`` that
``regfn sweep`` recorded in the provenance of its ``results.json`` (so it
works for runs of the command; in Python, :func:`regfn.verify` takes any
model and data), reruns the sweep with the recorded choices and prints which
rows differ and by how much, or that all are bit-identical.

A results file may come from someone else, so verify trusts none of it:

* It honours only the recorded options that rebuild the data and the model
  (:data:`HONOURED`: an allow-list; every other option, ``--out``,
  ``--checkpoint`` and any added later included, is not read, so verify
  writes nothing). The configurations and settings come from the
  provenance, checked field by field first (:mod:`regfn._results_check`).
* It never imports a Python file named only by the results file: a run of
  ``--model module:PATH.py:Class`` stops with exit status 2, naming PATH,
  unless ``--trust-model`` is passed or the model is named again with
  ``--model``. A recorded path that leaves the current folder (absolute,
  ``~`` or ``..``) must be named again too (``--model``, ``--csv``).
* Before the rerun it compares the sha256 of every file the sweep read (the
  model file, the files it imported from its folder, the CSV) with the
  recorded ones; a changed or missing file is a finding, printed, and makes
  the exit status 1 even when every row is identical.

Exit status: 0 identical (or, with ``--compile``/``--no-compile`` other than
the recorded mode, the modes' comparison printed), 1 rows differ or a file
changed, 2 bad input.
"""

from __future__ import annotations

import argparse

from ._errors import CLIError, CLIParser
from ._model import _model_option

__all__ = ["HONOURED", "add_verify_parser", "recorded_parser", "run_verify"]

HONOURED = (
    "--data",
    "--csv",
    "--target",
    "--columns",
    "--drop",
    "--raw-targets",
    "--task",
    "--n",
    "--data-seed",
    "--val-fraction",
    "--cv",
    "--model",
    "--hidden",
    "--activation",
    *(f"--p{i}" for i in range(1, 9)),
)
"""The recorded ``regfn sweep`` options verify reads: those that rebuild the data and the model. No other."""


def add_verify_parser(sub: argparse._SubParsersAction[CLIParser], formatter: type[argparse.HelpFormatter]) -> None:
    """The ``verify`` subcommand's parser, on the ``regfn`` command's subparsers ``sub``."""
    p = sub.add_parser(
        "verify",
        help="rerun a regfn sweep from its results.json and report the rows that differ",
        description="Rerun the sweep recorded in RESULTS (results.json written by 'regfn sweep'), with the same "
        "data, model, configurations and choices (compile, threads, chunk size, key implementation), and compare "
        "every row and curve bit for bit. It writes nothing and imports no model file unless told to. "
        "Exit status 0: all rows identical; 1: some rows differ, or a file the sweep read changed; 2: bad input.",
        formatter_class=formatter,
    )
    p.add_argument("results", metavar="RESULTS", help="a results.json written by 'regfn sweep'")
    p.add_argument("--device", default=None, help="where to rerun (default: the recorded device when available)")
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="import the --model module:PATH.py:Class file the results name (it runs that file's code)",
    )
    p.add_argument(
        "--model",
        type=_model_option,
        default=None,
        metavar="module:PATH.py:ClassName",
        help="the model to rerun, named by you (instead of trusting the recorded one; its sha256 is compared)",
    )
    p.add_argument("--csv", default=None, metavar="PATH", help="the CSV to rerun on, named by you")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rerun in this compile mode (default: the recorded one); another mode prints 'compiled vs eager: "
        "max difference X' instead of a bit-for-bit verdict",
    )


def recorded_parser() -> CLIParser:
    """The parser of a recorded ``regfn sweep`` command line: it knows the :data:`HONOURED` options only."""
    from ._data import add_data_options
    from ._model import add_model_options

    p = CLIParser(prog="regfn sweep (recorded)", allow_abbrev=False, add_help=False)
    add_data_options(p, cv=True)
    add_model_options(p.add_argument_group())
    for option in HONOURED:
        if option.startswith("--p"):
            p.add_argument(option, default=None)  # only whether it was given matters here
    return p


def _recorded_options(argv: list[str]) -> argparse.Namespace:
    """The honoured options of a recorded ``regfn sweep`` command line; the others are not read."""
    if not argv or argv[0] != "sweep":
        raise CLIError("the recorded arguments are not a 'regfn sweep' command line")
    known, _ = recorded_parser().parse_known_args(argv[1:])  # the provenance holds the rest
    return known


def _trusted_model(args: argparse.Namespace, recorded: str, results: str) -> str:
    """The ``--model`` value to rerun with: the user's, or the recorded one when it is built in or trusted."""
    from .._results_check import check_path

    if args.model is not None:
        return str(args.model)
    if not recorded.startswith("module:"):
        return recorded
    path = recorded.removeprefix("module:").rpartition(":")[0]
    if not args.trust_model:
        raise CLIError(
            f"{results} was made with the model file {path} ({recorded}); verify does not import code named only "
            f"by a results file: pass --trust-model to import it, or name it yourself with --model {recorded}"
        )
    check_path(path, "the recorded --model file")
    return recorded


def run_verify(args: argparse.Namespace) -> int:
    """Rerun and compare; print the report. 0: identical, 1: rows differ or a file changed."""
    import regfn

    from .._results_check import check_path, read_results
    from ._data import load_data
    from ._files import changed_files
    from ._model import build_model

    try:
        stored = read_results(args.results)
    except FileNotFoundError:
        raise CLIError(f"{args.results}: no such file") from None
    argv = stored.provenance.get("argv")
    if not argv:
        raise CLIError(
            f"{args.results} was not written by 'regfn sweep' (no recorded arguments); "
            "verify it in Python with regfn.verify(path, model, data, val=...)"
        )
    recorded = _recorded_options(argv)
    recorded.model = _trusted_model(args, recorded.model, args.results)
    if args.csv is not None:
        recorded.csv = args.csv
    elif recorded.csv is not None:
        check_path(recorded.csv, "the recorded --csv file")
    model_path = (
        recorded.model.removeprefix("module:").rpartition(":")[0] if recorded.model.startswith("module:") else None
    )
    findings = [f"finding: {f}" for f in changed_files(stored.provenance.get("files", []), model_path, recorded.csv)]
    for line in findings:  # before anything is read or imported
        print(line, flush=True)
    train, val, desc = load_data(recorded)
    model, loss, _, _ = build_model(recorded, train)
    epochs = stored.provenance["arguments"]["epochs"]
    print(f"regfn verify: rerunning {len(stored)} configs x {epochs} epochs on {desc}", flush=True)
    report = regfn.verify(stored, model, train, val=val, loss=loss, device=args.device, compile=args.compile)
    print(report)
    if findings:
        print(f"{len(findings)} file(s) the sweep read changed: the rerun is not of the same inputs")
    return 0 if (report.identical or report.modes is not None) and not findings else 1
