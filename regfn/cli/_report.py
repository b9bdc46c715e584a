"""What ``regfn sweep`` shows and writes: the output options, the tables, the summary lines and the files.

``--top`` rows of the best configurations ranked by ``--by``, the settings
ranked by their mean over seeds, the diverged and collapsed counts, the
timings and how the sweep ran; then ``results.csv``, ``results.json`` and the
figures in ``--out`` (unless ``--no-plots``).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import tempfile
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._argtypes import nonneg_int
from ._errors import CLIError
from ._formatting import fmt

if TYPE_CHECKING:
    from ..data import Dataset
    from ..results import SweepResult

__all__ = [
    "add_output_options",
    "check_metric",
    "check_trackers",
    "print_report",
    "seed_summary",
    "sweep_warnings",
    "writable_out",
    "write_results",
]


def add_output_options(g: argparse._ArgumentGroup) -> None:
    """``--top``, ``--by``, ``--out`` and ``--no-plots``, in the group ``g``."""
    g.add_argument("--top", type=nonneg_int, default=10, help="rows of the best-configurations table")
    g.add_argument("--by", default=None, help="metric to rank by (default: val_acc, val_mse, acc or mse)")
    g.add_argument("--out", default="regfn-out", metavar="DIR", help="where results.csv, results.json and figures go")
    g.add_argument("--no-plots", action="store_true", help="skip the figures")
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


def seed_summary(result: SweepResult, swept: list[str], by: str, n: int) -> str | None:
    """Settings ranked by the mean of ``by`` over seeds (diverged runs count as failures)."""
    groups: dict[tuple[object, ...], list[float]] = {}
    for row in result.rows:
        value = row[by]
        ok = not row["diverged"] and value is not None and math.isfinite(value)
        groups.setdefault(tuple(row[h] for h in swept), []).append(value if ok else math.nan)
    if not swept or all(len(v) < 2 for v in groups.values()):
        return None
    higher = by.endswith("acc")
    stats = []
    for setting, values in groups.items():
        good = [v for v in values if math.isfinite(v)]
        mean = sum(good) / len(good) if good else math.nan
        std = math.sqrt(sum((v - mean) ** 2 for v in good) / len(good)) if good else math.nan
        stats.append((setting, mean, std, len(good), len(values)))
    stats.sort(key=lambda s: (not math.isfinite(s[1]), -s[1] if higher else s[1]))
    header = [*swept, f"mean {by}", "std", "seeds"]
    cells = [[fmt(v) for v in s[0]] + [fmt(s[1]), fmt(s[2]), f"{s[3]}/{s[4]}"] for s in stats[:n]]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _settings_line(result: SweepResult) -> str:
    """How the sweep ran: compiled or not, threads, chunking and padding."""
    s = result.settings
    threads = "" if s.get("threads") is None else f", {s['threads']} thread{'s' if s['threads'] != 1 else ''}"
    folds = s.get("folds", 1)
    unit = "configs" if folds == 1 else "rows"  # cross-validation: a row is a configuration on one fold
    padded, k = s.get("padded", len(result)), len(result) * folds
    waste = f" ({padded - k} padding, {(padded - k) / padded:.0%})" if padded > k else ""
    ranks = f", world size {s['world_size']}" if s.get("world_size", 1) > 1 else ""
    cv = f", {folds}-fold cross-validation ({k} rows)" if folds > 1 else ""
    return f"ran: {result.engine} engine, compile {'on' if s.get('compile') else 'off'}{threads}{cv}, " + (
        f"chunks of {s.get('chunk_size', k)} {unit}{waste}{ranks}"
    )


def print_report(result: SweepResult, args: argparse.Namespace, swept: list[str]) -> None:
    """The tables (best configurations, best settings over seeds), the flagged runs, the timings, how it ran."""
    by = args.by or result.default_metric()
    shown = [n for n in swept if n != "seed"] + (["seed"] if "seed" in swept else [])
    names = ("loss", "acc", "mse", "val_loss", "val_acc", "val_acc_std", "val_mse", "val_mse_std", "zero_frac")
    metrics = [c for c in names if c in result.rows[0]]
    columns = ["config", *(shown or ["seed"]), *metrics, "diverged", "collapsed"]
    if args.top:
        print(f"\nbest {min(args.top, len(result))} of {len(result)} configs by {by}:")
        print(result.table(args.top, by=by, columns=columns))
        summary = seed_summary(result, [n for n in swept if n != "seed"], by, args.top)
        if summary is not None:
            print(f"\nbest settings by mean {by} over {len(args.seeds)} seeds:")
            print(summary)
    print()
    for flagged, what in ((result.diverged, "diverged"), (result.collapsed, "collapsed (learned a constant)")):
        line = f"{what}: {len(flagged)} of {len(result)} configs"
        if flagged:
            first = result.rows[flagged[0]]
            line += " (e.g. config {}: {})".format(flagged[0], ", ".join(f"{n}={fmt(first[n])}" for n in shown))
        print(line)
    t = result.timings
    folds = result.settings.get("folds", 1)
    rate = len(result) * folds * args.epochs / max(t.get("run_s", 0.0), 1e-9)
    unit = "config-epochs/s" if folds == 1 else "config-fold-epochs/s"
    print(
        f"time: {t.get('total_s', 0):.1f} s total (compile/warm-up {t.get('compile_s', 0):.1f} s, "
        f"training {t.get('run_s', 0):.1f} s, {rate:,.0f} {unit})"
    )
    print(_settings_line(result))


def write_results(result: SweepResult, out: pathlib.Path, args: argparse.Namespace) -> None:
    """``results.csv``, ``results.json`` and (unless ``--no-plots``) the figures in ``out``; prints what it wrote."""
    try:
        result.to_csv(out / "results.csv")
        result.to_json(out / "results.json")
    except OSError as err:
        raise CLIError(f"--out {args.out}: cannot write results ({err.strerror or err})") from None
    written = [out / "results.csv", out / "results.json"]
    if not args.no_plots:
        try:
            from .. import plot

            figures = plot.plot_all(result, out, metric=args.by)
        except ImportError:
            print("figures skipped: matplotlib is not installed (pip install 'regfn[plot]' or pip install matplotlib)")
            figures = []
        written += figures
    print("wrote " + ", ".join(str(p) for p in written))
    if args.tensorboard is not None:
        result.to_tensorboard(args.tensorboard)
        print(f"wrote {len(result)} TensorBoard runs in {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
    if args.mlflow is not None:
        run_id = result.to_mlflow(args.mlflow_experiment, tracking_uri=args.mlflow)
        print(f"logged to MLflow {args.mlflow}: experiment {args.mlflow_experiment!r}, parent run {run_id}")
