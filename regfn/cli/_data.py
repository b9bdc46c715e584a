"""The data options (``--data``, ``--csv``, ``--target``, ``--task``, ``--n``, the split) and loading the data.

Without ``--csv`` the data is built in: the tutorial's synthetic quadrants
(the default) or scikit-learn's digits. Rows are split into training and
validation with a key from ``--data-seed``, and the features standardized
with the training split's statistics; under ``regfn sweep --cv K`` all rows
are kept (the folds are drawn by :func:`cv_folds`) and standardized together.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from ._argtypes import fraction, int_at_least, positive_int
from ._errors import CLIError

if TYPE_CHECKING:
    from ..data import Dataset, Folds

__all__ = ["add_data_options", "cv_folds", "load_data"]

_DATA = ("quadrants", "digits")


def _names(text: str) -> list[int | str]:
    """``--columns`` / ``--drop``: comma-separated header names or indices."""
    return [_column(c) for c in text.split(",") if c.strip()]


def _column(text: str) -> int | str:
    return int(text) if re.fullmatch(r"[+-]?\d+", text.strip()) else text.strip()


def add_data_options(p: argparse.ArgumentParser, *, cv: bool = False) -> None:
    """The ``data`` option group of ``regfn sweep`` and ``regfn train`` (``cv``: with ``--cv``, the sweep's)."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        choices=_DATA,
        default=None,
        help="built-in data: quadrants (the tutorial's synthetic 2-feature binary data; the default) or digits "
        "(scikit-learn's 8x8 handwritten digits, 10 classes: images for --model cnn, 64 pixel features for "
        "--model mlp; needs scikit-learn)",
    )
    g.add_argument(
        "--csv",
        metavar="PATH",
        help="numeric CSV (header row; label last unless --target; text labels make classes); overrides --data",
    )
    g.add_argument(
        "--target",
        metavar="NAME|INDEX",
        help="label column of --csv, by header name or index (default: the last column)",
    )
    g.add_argument(
        "--columns",
        type=_names,
        default=None,
        metavar="A,B,...",
        help="feature columns of --csv to use, by header name or index (default: all but the target)",
    )
    g.add_argument(
        "--drop",
        type=_names,
        default=(),
        metavar="A,B,...",
        help="columns of --csv to leave out (an id, a text column), by header name or index",
    )
    g.add_argument(
        "--task",
        choices=("auto", "binary", "multiclass", "regression"),
        default="auto",
        help="binary (0/1 labels, BCE with logits), multiclass (class labels, cross-entropy on one logit per "
        "class) or regression (MSE); auto: multiclass for text labels, binary when every label is 0 or 1, "
        "else regression",
    )
    g.add_argument(
        "--raw-targets",
        action="store_true",
        help="regression: train on the targets as they are (default: standardized with the training rows' mean "
        "and std, the model's outputs mapped back, so mse and val_mse are in the targets' units)",
    )
    g.add_argument(
        "--n",
        type=positive_int,
        default=None,
        help="rows of the built-in data: N synthetic quadrant rows (400 if not given), or the first N of the "
        "1,797 digits (all if not given; in the file's order the ten digits take turns, so the classes stay "
        "balanced)",
    )
    g.add_argument(
        "--data-seed", type=int, default=0, help="seed of the synthetic data and of the train/validation split"
    )
    g.add_argument("--val-fraction", type=fraction, default=0.2, help="share of rows held out for validation (0: none)")
    if cv:
        g.add_argument(
            "--cv",
            type=int_at_least(2),
            default=None,
            metavar="K",
            help="K-fold cross-validation instead of the --val-fraction split: every configuration trains on each "
            "fold (all in one vmapped run) and reports the mean, std and per-fold validation metrics; folds keyed "
            "by --data-seed, stratified for classes; features standardized on all rows",
        )


def load_data(args: argparse.Namespace) -> tuple[Dataset, Dataset | None, str]:
    """Training and validation datasets (standardized with training statistics) and a description.

    The digits come as images, except for ``--model mlp`` (64 pixel features).
    """
    import regfn

    rr = regfn.random
    task = None if args.task == "auto" else args.task
    data_name = "csv" if args.csv is not None else (args.data or "quadrants")
    if data_name != "csv" and args.target is not None:
        raise CLIError(f"--target needs --csv (the {data_name} data has one label)")
    for option in ("columns", "drop"):
        if data_name != "csv" and getattr(args, option, None):
            raise CLIError(f"--{option} needs --csv (it selects the file's columns)")
    if data_name == "quadrants":
        if task not in (None, "binary"):
            raise CLIError(f"--task {task} needs --csv (the synthetic quadrant data is binary)")
        n = 400 if args.n is None else args.n
        data = regfn.data.quadrants(rr.key(args.data_seed), n)
        source = f"synthetic quadrants (n={n}, --data-seed {args.data_seed})"
    elif data_name == "digits":
        if task not in (None, "multiclass"):
            raise CLIError(f"--task {task}: the digits are multiclass (10 classes)")
        try:
            data = regfn.data.digits(flat=args.model == "mlp")
        except ImportError as err:
            raise CLIError(f"--data digits: {err}") from None
        total = len(data)
        rows = f"{total} rows"
        if args.n is not None and args.n < total:
            data = data[: args.n]
            rows = f"the first {args.n} of {total}"
        shape = "x".join(map(str, data.feature_shape))
        source = f"digits ({rows}, {shape} {'images' if data.x.ndim > 2 else 'pixels'})"
    else:
        target = -1 if args.target is None else _column(args.target)
        columns = getattr(args, "columns", None)
        drop = getattr(args, "drop", ())
        try:
            data = regfn.data.load_csv(args.csv, target=target, task=task, columns=columns, drop=drop)
        except ValueError as err:
            raise CLIError(re.sub(r"drop=\['(.*?)'\]", r"--drop \1", str(err))) from None
        source = f"{args.csv} (target {data.target_name!r})"
    task_text = f"{data.task}, {data.n_classes} classes" if data.task == "multiclass" else data.task
    if getattr(args, "cv", None) is not None:  # regfn sweep --cv K: every row, the folds hold out their own
        if args.cv > len(data):
            raise CLIError(f"--cv {args.cv}: more folds than the {len(data)} rows")
        data, _ = regfn.data.standardize(data)
        desc = f"{source}: {len(data)} rows in {args.cv} folds, {data.n_features} features, {task_text}"
        return data, None, desc
    split_key = rr.fold_in(rr.key(args.data_seed), 1)
    train, val = regfn.data.train_val_split(split_key, data, args.val_fraction)
    if len(train) < 2:
        raise CLIError(f"only {len(train)} training row(s) after the split; use more data or a smaller --val-fraction")
    train, val, _ = regfn.data.standardize(train, val)
    desc = f"{source}: {len(train)} train / {len(val)} val rows, {data.n_features} features, {task_text}"
    return train, (val if len(val) else None), desc


def cv_folds(args: argparse.Namespace, data: Dataset) -> Folds | None:
    """``--cv K``'s folds of ``data``: :func:`regfn.data.kfold` with a key from ``--data-seed``; else ``None``."""
    import regfn

    if getattr(args, "cv", None) is None:
        return None
    rr = regfn.random
    return regfn.data.kfold(rr.fold_in(rr.key(args.data_seed), 2), data, args.cv)
