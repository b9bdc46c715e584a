"""What ``regfn sweep`` shows and writes: the output options, the tables, the summary lines and the files.

``--top`` rows of the best configurations ranked by ``--by``, the settings
ranked by their mean over seeds, the diverged and collapsed counts, the
timings and how the sweep ran; then ``results.csv``, ``results.json`` and the
figures in ``--out`` (unless ``--no-plots``).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._argtypes import nonneg_int
from ._errors import CLIError
from ._formatting import count_of, fmt

if TYPE_CHECKING:
    from ..data import Dataset
    from ..results import SweepResult

__all__ = [
    "add_output_options",
    "check_metric",
    "check_trackers",
    "fold_summary",
    "print_report",
    "print_time",
    "seed_summary",
    "sweep_warnings",
    "writable_out",
    "write_results",
]


def add_output_options(g: argparse._ArgumentGroup) -> None:
    """``--top``, ``--by``, ``--out``, ``--no-plots`` and ``--save-params``, in the group ``g``."""
    g.add_argument("--top", type=nonneg_int, default=10, help="rows of the best-configurations table")
    g.add_argument("--by", default=None, help="metric to rank by (default: val_acc, val_mse, acc or mse)")
    g.add_argument("--out", default="regfn-out", metavar="DIR", help="where results.csv, results.json and figures go")
    g.add_argument("--no-plots", action="store_true", help="skip the figures")
    g.add_argument(
        "--save-params",
        type=nonneg_int,
        default=1,
        metavar="N",
        help="write the N best configurations' trained parameters in DIR/params (safetensors files and "
        "params.json; read them with regfn.SweepResult.load_params); 0: none (default: 1, the best)",
    )
    g.add_argument(
        "--tensorboard", default=None, metavar="DIR", help="also write one TensorBoard run per configuration in DIR"
    )
    g.add_argument(
        "--mlflow",
        default=None,
        metavar="URI",
        help="also log to MLflow at URI (e.g. sqlite:///mlflow.db): a parent run and a child run per configuration",
    )
    g.add_argument(
        "--mlflow-experiment", default="regfn", metavar="NAME", help="the MLflow experiment (default: regfn)"
    )


def check_metric(by: str | None, train: Dataset, val: Dataset | None, *, validated: bool = False) -> None:
    """``--by``: a metric the sweep's rows will have for this data (``validated``: cross-validated)."""
    if by is None:
        return
    metric = "mse" if train.task == "regression" else "acc"
    allowed = ["loss", "penalty", metric, "zero_frac", "tiny_frac"]
    if val is not None or validated:
        allowed += [f"val_{m}" for m in ("loss", metric)]
    if by not in allowed:
        raise CLIError(f"--by: unknown metric {by!r}; use one of {', '.join(allowed)}")


def check_trackers(args: argparse.Namespace) -> None:
    """``--tensorboard`` and ``--mlflow``: their packages are installed (checked before any training)."""
    from ..tracking import needs

    for option, package in (("tensorboard", "tensorboard"), ("mlflow", "mlflow")):
        if getattr(args, option, None) is not None:
            try:
                needs(package, package, f"--{option}")
            except ImportError as err:
                raise CLIError(str(err)) from None


def writable_out(path: str) -> pathlib.Path:
    """``--out``, created and checked to take a file before any training: a bad path fails in a second."""
    out = pathlib.Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {path}: cannot write results (it is a file, not a directory)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".regfn-write-check-"):
            pass
    except OSError as err:
        raise CLIError(f"--out {path}: cannot write results ({err.strerror or err})") from None
    return out


def sweep_warnings(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """The distinct messages of the warnings a sweep raised, in order, without those from inside torch.

    regfn's own warnings (a compile fallback, a halved chunk) point at the
    caller's line; torch's (``torch.compile``'s deprecation notes and graph
    breaks, one per compiled chunk) say nothing about the results, so they
    are dropped.
    """
    import torch

    torch_dir = pathlib.Path(torch.__file__).resolve().parent
    out: list[str] = []
    for w in caught:
        message = str(w.message)
        if not pathlib.Path(w.filename).resolve().is_relative_to(torch_dir) and message not in out:
            out.append(message)
    return out


def _stats_table(entries: list[dict[str, Any]], names: list[str], by: str, n: int, counted: str) -> str:
    """``entries`` of :meth:`SweepResult.summary` as a table: ``names``, then mean, std, min, max and the count."""
    header = [*names, f"mean {by}", "std", "min", "max", counted]
    cells = [
        [fmt(e[h]) for h in names] + [fmt(e[s]) for s in ("mean", "std", "min", "max")] + [f"{e['n']}/{e['runs']}"]
        for e in entries[:n]
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def seed_summary(result: SweepResult, swept: list[str], by: str, n: int) -> str | None:
    """Settings ranked by the mean of ``by`` over seeds (diverged runs count as failures): ``result.summary``."""
    entries = result.summary(over="seed", by=by)
    if not swept or all(e["runs"] < 2 for e in entries):
        return None
    return _stats_table(entries, swept, by, n, "seeds")


def fold_summary(result: SweepResult, shown: list[str], by: str, n: int) -> str | None:
    """Under ``--cv``: configurations ranked by the mean of ``by`` over folds, ``result.summary(over="fold")``."""
    if result.settings.get("folds", 1) < 2 or not result.rows or f"{by}_folds" not in result.rows[0]:
        return None
    return _stats_table(result.summary(over="fold", by=by), ["config", *shown], by, n, "folds")


def _settings_line(result: SweepResult, loss_text: str | None = None) -> str:
    """How the sweep ran: compiled or not, threads, chunking and padding."""
    s = result.settings
    threads = "" if s.get("threads") is None else f", {s['threads']} thread{'s' if s['threads'] != 1 else ''}"
    folds = s.get("folds", 1)
    unit = "config" if folds == 1 else "row"  # cross-validation: a row is a configuration on one fold
    padded, k = s.get("padded", len(result)), len(result) * folds
    waste = f" ({padded - k} padding, {(padded - k) / padded:.0%})" if padded > k else ""
    ranks = f", world size {s['world_size']}" if s.get("world_size", 1) > 1 else ""
    cv = f", {folds}-fold cross-validation ({k} rows)" if folds > 1 else ""
    loss = f", loss {s['loss']}" + (" (the data's task)" if s.get("loss_from_task") else "") if "loss" in s else ""
    loss = f", loss {loss_text}" if loss_text else loss
    compiled = f"compile {'on' if s.get('compile') else 'off'}"
    return f"ran: {result.engine} engine{loss}, {compiled}{threads}{cv}, " + (
        f"chunks of {count_of(s.get('chunk_size', k), unit)}{waste}{ranks}"
    )


def print_report(result: SweepResult, args: argparse.Namespace, swept: list[str]) -> None:
    """The tables (best configurations, best settings over seeds or folds) and the flagged runs."""
    by = args.by or result.default_metric()
    shown = [n for n in swept if n != "seed"] + (["seed"] if "seed" in swept else [])
    names = ("loss", "acc", "mse", "val_loss", "val_acc", "val_acc_std", "val_mse", "val_mse_std", "zero_frac")
    metrics = [c for c in names if c in result.rows[0]]
    scheduled = [c for c in ("stopped_epoch", "rung") if c in result.rows[0]]
    columns = ["config", *(shown or ["seed"]), *metrics, *scheduled, "diverged", "collapsed"]
    if args.top:
        print(f"\nbest {min(args.top, len(result))} of {count_of(len(result), 'config')} by {by}:")
        print(result.table(args.top, by=by, columns=columns))
        summary = seed_summary(result, [n for n in swept if n != "seed"], by, args.top)
        if summary is not None:
            print(f"\nbest settings by mean {by} over {count_of(len(args.seeds), 'seed')}:")
            print(summary)
        folds = fold_summary(result, shown, by, args.top)
        if folds is not None:
            print(f"\nbest configs by mean {by} over {result.settings['folds']} folds:")
            print(folds)
    print()
    for flagged, what in ((result.diverged, "diverged"), (result.collapsed, "collapsed (learned a constant)")):
        line = f"{what}: {len(flagged)} of {count_of(len(result), 'config')}"
        if flagged and len(result) > 1:
            first = result.rows[flagged[0]]
            setting = ", ".join(f"{n}={fmt(first[n])}" for n in shown)
            line += f" (e.g. config {flagged[0]}{': ' + setting if setting else ''})"
        print(line)


def print_time(result: SweepResult, args: argparse.Namespace, plots_s: float) -> None:
    """The ``time:`` line: wall clock from the start (the process's, from the command line) until the files are
    written, and its parts: import, compile/warm-up, training, figures; then how the sweep ran."""
    import time

    t = result.timings
    started, imported = getattr(args, "clock", (None, None))  # imported: None when main() ran in-process
    import_s = imported or 0.0
    total = time.perf_counter() - started + import_s if started is not None else t.get("total_s", 0.0) + plots_s
    folds = result.settings.get("folds", 1)
    rate = len(result) * folds * args.epochs / max(t.get("run_s", 0.0), 1e-9)
    unit = "config-epochs/s" if folds == 1 else "config-fold-epochs/s"
    parts = [f"import {import_s:.1f} s"] if imported is not None else []
    parts += [f"compile/warm-up {t.get('compile_s', 0):.1f} s", f"training {t.get('run_s', 0):.1f} s"]
    parts += [f"figures {plots_s:.1f} s"] if not args.no_plots else []
    rest = total - import_s - t.get("total_s", 0.0) - plots_s
    parts += [f"other (data, model, setup, files) {max(rest, 0.0):.1f} s"]
    print(f"time: {total:.1f} s wall clock ({', '.join(parts)}; {rate:,.0f} {unit})")
    print(_settings_line(result, getattr(args, "loss_text", None)))


def write_results(result: SweepResult, out: pathlib.Path, args: argparse.Namespace) -> float:
    """``results.csv``, ``results.json``, the best parameters (``--save-params``) and (unless ``--no-plots``)
    the figures in ``out``; prints what it wrote.

    Returns the seconds the figures took."""
    import time

    try:
        result.to_csv(out / "results.csv")
        result.to_json(out / "results.json")
    except OSError as err:
        raise CLIError(f"--out {args.out}: cannot write results ({err.strerror or err})") from None
    written = [out / "results.csv", out / "results.json"]
    if args.save_params:
        try:
            result.save(out / "params", [row["config"] for row in result.best(args.save_params, args.by)])
        except OSError as err:
            raise CLIError(f"--out {args.out}: cannot write the parameters ({err.strerror or err})") from None
        written.append(out / "params")
    t0 = time.perf_counter()
    if not args.no_plots:
        try:
            from .. import plot

            figures = plot.plot_all(result, out, metric=args.by)
        except ImportError:
            print("figures skipped: matplotlib is not installed (pip install 'regfn[plot]' or pip install matplotlib)")
            figures = []
        written += figures
    print("wrote " + ", ".join(str(p) for p in written))
    plots_s = time.perf_counter() - t0
    if args.tensorboard is not None:
        result.to_tensorboard(args.tensorboard)
        print(f"wrote {len(result)} TensorBoard runs in {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
    if args.mlflow is not None:
        run_id = result.to_mlflow(args.mlflow_experiment, tracking_uri=args.mlflow)
        print(f"logged to MLflow {args.mlflow}: experiment {args.mlflow_experiment!r}, parent run {run_id}")
    return plots_s
