"""The ``regfn`` command's argparse parser, its ``sweep`` and ``train`` commands, and :func:`main`.

``regfn verify`` lives in :mod:`regfn.cli._verify`.

Options are parsed with the value syntax of :mod:`regfn.cli._values`; bad
input ends in :class:`CLIError` (or ``ValueError``), which :func:`main`
prints as one line ``regfn: error: <message>`` with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import math
import pathlib
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from .._hparams import HPARAMS, LAYER_RATE_NAMES, OPTIMIZER_ARGS
from .._sweep._distributed import is_lead
from .._sweep._driver import ENGINES, bytes_per_config
from .._sweep._program import PENALTIES, build_optimizer
from ._values import SearchRange, parse_hidden, parse_search_values, parse_seeds, parse_values
from ._verify import add_verify_parser, run_verify

if TYPE_CHECKING:
    import torch

    from ..data import Dataset
    from ..nn import Model
    from ..results import SweepResult

__all__ = ["PROG", "CLIError", "build_parser", "main"]

PROG = "regfn"
# The command's own defaults where they differ from the registry's: a small grid to sweep
# (regfn sweep), one setting to train (regfn train). lr and momentum depend on the
# optimizer (see _optimizer_defaults); every other name defaults to not given.
# --p's default grid is filled in by _run_sweep: 0, 0.2, 0.5, or only 0 when --p1 .. give every call's rate.
_SWEEP_GRID = {"l1": [0.0], "l2": [0.0, 1e-3, 1e-2, 1e-1], "norm2": [0.0], "weight_decay": [0.0]}
_SWEEP_P, _SWEEP_P_WITH_RATES = [0.0, 0.2, 0.5], [0.0]
_TRAIN_SETTING = {"l1": 0.0, "l2": 0.0, "norm2": 0.0, "weight_decay": 0.0, "p": 0.1}
_OPTIMIZER_DEFAULT_NOTE = {
    "lr": "default: 0.1 for sgd, 0.01 for the others",
    "momentum": "default: 0.9 for sgd, else 0",
}
# Every registry name but the seed is an option (the seed has --seeds / --seed).
_LARGE_SWEEP = 10_000  # from this many configurations the header estimates the sweep's size
_OPTION_NAMES = tuple(name for name in HPARAMS if name != "seed")
_DATA = ("quadrants", "digits")
_ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "elu", "leaky_relu", "sigmoid")
_MLP_HIDDEN, _MLP_ACTIVATION = (6, 4), "relu"  # --model mlp's defaults


class CLIError(Exception):
    """Bad input from the command line; printed as ``regfn: error: <message>``."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and do not exit the interpreter."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see '{self.prog} --help')")


def _show_default(value: object) -> str:
    """A default as it would be typed: ``0,0.001`` for a list, ``6,4`` for widths."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw epilogs, and each option's default printed once, as it would be typed.

    Not for ``None`` (the help says what happens), flags (their default is off),
    nor where the help already gives it (``default:`` in the text).
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or not action.option_strings
            or "default:" in text
        ):
            return text
        return f"{text} (default: {_show_default(default).replace('%', '%%')})"


# ----------------------------------------------------------------- argparse types


_T = TypeVar("_T")


def _type(fn: Callable[..., _T], *args: Any) -> Callable[[str], _T]:
    """An argparse ``type`` calling ``fn(text, *args)``; its ``ValueError`` becomes argparse's one-line error."""

    def convert(text: str) -> _T:
        try:
            return fn(text, *args)
        except ValueError as err:
            # argparse prefixes "argument --l2: "; drop the parser's own "--l2: ".
            message = re.sub(r"^--[\w-]+: ", "", str(err))
            raise argparse.ArgumentTypeError(message) from None

    convert.__name__ = getattr(fn, "__name__", "value")
    return convert


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= low``."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {n}")
        return n

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {v:g}")
    return v


def _one_value(name: str) -> Callable[[str], float]:
    """An argparse ``type`` for ``regfn train``'s hyperparameters: a value list of exactly one value."""

    def convert(text: str) -> float:
        values = _type(parse_values, name)(text)
        if len(values) != 1:
            raise argparse.ArgumentTypeError(f"takes one value (use 'regfn sweep' for several), got {text!r}")
        return values[0]

    return convert


def _search_option(text: str) -> tuple[str, int]:
    """``--search``: ``random:N`` or ``sobol:N`` -> ``(method, N)``."""
    method, sep, count = text.partition(":")
    if method not in ("random", "sobol") or not sep:
        raise argparse.ArgumentTypeError(f"use random:N or sobol:N (N sampled points), got {text!r}")
    try:
        n = int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the number of points {count!r} is not an integer (e.g. {method}:64)"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"the number of points must be >= 1, got {n}")
    return method, n


def _given(value: list[float] | SearchRange) -> list[float]:
    """The values an option gives: a list's, or a search range's two ends."""
    return list(value.ends()) if isinstance(value, SearchRange) else list(value)


def _chunk(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


# ----------------------------------------------------------------- parsers

_SWEEP_EPILOG = """\
examples:
  regfn sweep                                    # defaults: quadrant data, l2 x p x 2 seeds
  regfn sweep --l2 0,1e-4:1e-1:8 --p lin:0:0.5:6 --seeds 4
  regfn sweep --csv diabetes.csv --target Outcome --l1 0,1e-4:1e-2:5 --epochs 1000
  regfn sweep --data digits --model cnn --optimizer adam --lr 1e-2 --batch-size 128 --epochs 20 --l2 0 \\
      --p1 0,0.25 --p2 0.5 --label-smoothing 0,0.1
  regfn sweep --data digits --model module:net.py:Net --optimizer adam --lr 1e-3,1e-2 --beta2 0.99,0.999
  regfn sweep --weight-decay 1e-4,1e-3 --optimizer adam --lr 1e-3,1e-2 --no-plots
  regfn sweep --device cuda --seeds 32 --l2 1e-6:1e-1:32 --p lin:0:0.6:7   # 7168 configs
  regfn sweep --device cuda --engine triton --seeds 32 --l2 1e-6:1e-1:32    # one fused kernel
  regfn sweep --search sobol:256 --l2 log:1e-6:1e-1 --p lin:0:0.6 --seeds 2  # 512 configs

value lists: comma-separated numbers, LOW:HIGH:N (N log-spaced values, ends
included, ends > 0) or lin:LOW:HIGH:N (N evenly spaced values); e.g.
--l2 0,1e-4:1e-1:4 gives 0, 1e-4, 1e-3, 1e-2, 1e-1.
search: --search random:N or sobol:N samples N points (regfn.search.sample,
key regfn.random.key(--search-seed)) instead of the grid; there
log:LOW:HIGH is loguniform, lin:LOW:HIGH uniform (HIGH excluded), a list a
choice among its values, one value a constant. Each point runs with every
--seeds seed: N x seeds configs, and the summary averages each point's seeds.
seeds: --seeds 4 = seeds 0,1,2,3; --seeds 0,5,9 = those; --seeds 7, = seed 7;
--seeds 10:14 = 10,11,12,13.
models: mlp (--hidden, --activation; digits as 64 pixel features), cnn
(regfn.nn.small_cnn: two 3x3 convolutions with dropout, for the digits
images) or module:PATH.py:ClassName (your nn.Module, built with no arguments;
it gets the data as it is: (N, 1, 8, 8) images for the digits; its output:
one logit for binary data, one logit per class for multi-class data).
p sets every dropout call's rate; --p1 .. --p8 the first, second, ... call's.
penalties: l1 = s*sum|w|, l2 = s/2*sum w^2 (= SGD weight_decay s),
norm2 = s*sum_p ||p||_2 (the tutorial's), weight_decay = the optimizer's.
compile: on by default on CUDA, off on CPU (slower there for small models).
output: results.csv, results.json and PNG figures in --out (figures need
matplotlib: pip install 'regfn[plot]').
"""

_TRAIN_EPILOG = """\
examples:
  regfn train                                    # one run on the quadrant data
  regfn train --p 0.5 --l2 1e-3 --epochs 2000 --lr 0.01
  regfn train --csv diabetes.csv --hidden 6,4 --p 0.5 --l1 1e-3 --seed 3
  regfn train --data digits --model cnn --optimizer adam --lr 1e-2 --batch-size 128 --epochs 20

prints the loss every --log-every epochs as the tutorial does
(Epoch [100/2000], Loss: 0.6543): the training objective, i.e. the data loss
with dropout on plus the penalties, before that epoch's last step. Then the
final train/validation accuracy (or MSE) with dropout off, the final training
objective, and the data loss with dropout off (without penalties): the loss
of the model as evaluated.
"""

_MAIN_EPILOG = """\
examples:
  regfn sweep                 # train many (l2, p, seed) settings at once, table + figures
  regfn sweep --help          # all options
  regfn train --p 0.5         # one run, the tutorial's loss printout
  regfn verify regfn-out/results.json   # rerun a sweep, compare every row bit for bit
  python -m regfn sweep ...   # the same without the console script
"""


def _data_options(p: argparse.ArgumentParser) -> None:
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
        "--task",
        choices=("auto", "binary", "multiclass", "regression"),
        default="auto",
        help="binary (0/1 labels, BCE with logits), multiclass (class labels, cross-entropy on one logit per "
        "class) or regression (MSE); auto: multiclass for text labels, binary when every label is 0 or 1, "
        "else regression",
    )
    g.add_argument(
        "--n",
        type=_positive_int,
        default=None,
        help="rows of the built-in data: N synthetic quadrant rows (400 if not given), or the first N of the "
        "1,797 digits (all if not given; in the file's order the ten digits take turns, so the classes stay "
        "balanced)",
    )
    g.add_argument(
        "--data-seed", type=int, default=0, help="seed of the synthetic data and of the train/validation split"
    )
    g.add_argument(
        "--val-fraction", type=_fraction, default=0.2, help="share of rows held out for validation (0: none)"
    )


def _hyperparameter_options(g: argparse._ArgumentGroup, many: bool) -> None:
    """One option per registry name (a value list for ``regfn sweep``, one value for ``regfn train``)."""
    for name in _OPTION_NAMES:
        hp = HPARAMS[name]
        default = _SWEEP_GRID.get(name) if many else _TRAIN_SETTING.get(name)
        takers = [o for o, args in OPTIMIZER_ARGS.items() if name in args]
        where = f"; {', '.join(takers)} only" if hp.target == "optimizer" and len(takers) < len(OPTIMIZER_ARGS) else ""
        note = _OPTIMIZER_DEFAULT_NOTE.get(name, "default: the optimizer's" if hp.target == "optimizer" else "")
        if many and name == "p":
            note = "default: 0,0.2,0.5; 0 when --p1 .. are given"
        help_text = f"{hp.describe()}{where}" + (f" ({note})" if note and default is None else "")
        g.add_argument(
            hp.cli,
            dest=name,
            type=_type(parse_search_values, name) if many else _one_value(name),
            default=default,
            metavar="VALUES" if many else "VALUE",
            help=help_text,
        )


def _model_options(p: argparse.ArgumentParser, optimizers: Sequence[str]) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument(
        "--model",
        type=_model_option,
        default="mlp",
        metavar="{mlp,cnn,module:PATH.py:ClassName}",
        help="mlp (regfn.mlp, see --hidden), cnn (regfn.nn.small_cnn, for images: --data digits) or your own "
        "nn.Module: the class ClassName of the file PATH.py, built with no arguments (regfn.from_module)",
    )
    g.add_argument(
        "--hidden",
        type=_type(parse_hidden),
        default=None,
        metavar="W1,W2,...",
        help="hidden layer widths of --model mlp: 6,4 gives sizes (d, 6, 4, out); 'none' for a linear model "
        "(default: 6,4)",
    )
    g.add_argument(
        "--activation",
        default=None,
        choices=_ACTIVATIONS,
        help="activation of the hidden layers of --model mlp (default: relu)",
    )
    g.add_argument(
        "--optimizer", default="sgd", choices=tuple(optimizers), help="the optimizer, with torch.optim's arguments"
    )
    g.add_argument(
        "--batch-size", type=_positive_int, default=None, help="mini-batch size (default: full batch, as the tutorial)"
    )
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda when available)")
    g.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the step (default: auto, as regfn.sweep: on CUDA always, on CPU when the run is "
        "long enough to pay for compiling)",
    )
    g.add_argument(
        "--threads",
        type=_threads_option,
        default="auto",
        help="CPU threads for torch: a number, or auto (time one thread against all cores, take the faster)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``regfn`` argument parser (subcommands ``sweep`` and ``train``)."""
    optimizers = tuple(OPTIMIZER_ARGS)
    parser = _Parser(
        prog=PROG,
        description="regfn: dropout and L1/L2 regularization for PyTorch, the functional way.",
        epilog=_MAIN_EPILOG,
        formatter_class=_Formatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"regfn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{sweep,train,verify}", parser_class=_Parser)

    sw = sub.add_parser(
        "sweep",
        help="train many regularization settings at once (one vmapped run) and tabulate them",
        description="Train every combination of the given hyperparameter values at once "
        "(torch.func.vmap over configurations), print the best, write CSV/JSON and figures.",
        epilog=_SWEEP_EPILOG,
        formatter_class=_Formatter,
    )
    _data_options(sw)
    _model_options(sw, optimizers)
    g = sw.add_argument_group("swept hyperparameters (value lists, see below)")
    _hyperparameter_options(g, many=True)
    g.add_argument(
        "--seeds",
        type=_type(parse_seeds),
        default=[0, 1],
        metavar="SEEDS",
        help="run seeds (init, dropout, shuffle): N = 0..N-1, or a list 0,5,9, or START:STOP",
    )
    g.add_argument(
        "--search",
        type=_search_option,
        default=None,
        metavar="{random,sobol}:N",
        help="sample N points of the options' ranges (log:LOW:HIGH, lin:LOW:HIGH, lists) instead of the grid; "
        "each point runs with every seed (default: the grid)",
    )
    g.add_argument("--search-seed", type=int, default=0, help="key of --search: regfn.random.key(SEARCH_SEED)")
    g.add_argument("--epochs", type=_positive_int, default=300, help="passes over the training data")
    g = sw.add_argument_group("run and output")
    g.add_argument(
        "--chunk-size", type=_chunk, default="auto", help="configurations per vmapped call ('auto': from free memory)"
    )
    g.add_argument(
        "--engine",
        choices=tuple(ENGINES),
        default="vmap",
        help="vmap: any model; triton: one fused CUDA kernel per config (relu MLPs)",
    )
    g.add_argument(
        "--log-every",
        type=_positive_int,
        default=None,
        help="curve sampling interval in epochs (default: epochs // 20)",
    )
    g.add_argument("--top", type=_nonneg_int, default=10, help="rows of the best-configurations table")
    g.add_argument("--by", default=None, help="metric to rank by (default: val_acc, val_mse, acc or mse)")
    g.add_argument("--out", default="regfn-out", metavar="DIR", help="where results.csv, results.json and figures go")
    g.add_argument("--no-plots", action="store_true", help="skip the figures")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no header")
    g.add_argument(
        "--checkpoint",
        default=None,
        metavar="DIR",
        help="save the chunks in DIR as they train; the same command again resumes from them",
    )
    g.add_argument("--checkpoint-every", type=_positive_int, default=100, help="epochs between a running chunk's saves")

    tr = sub.add_parser(
        "train",
        help="train one configuration and print the tutorial's loss lines",
        description="Train one configuration (regfn.train), print 'Epoch [e/E], Loss: ...' lines "
        "and the final accuracy (or MSE) with dropout off.",
        epilog=_TRAIN_EPILOG,
        formatter_class=_Formatter,
    )
    _data_options(tr)
    _model_options(tr, optimizers)
    g = tr.add_argument_group("hyperparameters (one value each)")
    _hyperparameter_options(g, many=False)
    g.add_argument("--seed", type=int, default=0, help="run seed (initial weights, dropout masks, batch order)")
    g.add_argument("--epochs", type=_positive_int, default=500, help="passes over the training data")
    g.add_argument("--log-every", type=_positive_int, default=100, help="print the loss every this many epochs")
    g.add_argument("--quiet", action="store_true", help="only the final metrics")
    add_verify_parser(sub, _Formatter)
    return parser


# ----------------------------------------------------------------- shared steps


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CLIError(f"--device: unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def _threads_option(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _threads(n: int | str) -> None:
    """Set torch's threads for this command; ``auto`` leaves the choice to regfn.sweep (or 1 for regfn train)."""
    import torch

    if n != "auto":
        torch.set_num_threads(int(n))  # this process is the command: its own setting to make


def _model_option(text: str) -> str:
    """An argparse ``type`` for ``--model``: ``mlp``, ``cnn`` or ``module:PATH.py:ClassName``."""
    if text in ("mlp", "cnn"):
        return text
    path, _, name = text.removeprefix("module:").rpartition(":")
    if not text.startswith("module:") or not path or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"use mlp, cnn or module:PATH.py:ClassName, got {text!r}")
    return text


def _load(args: argparse.Namespace) -> tuple[Dataset, Dataset | None, str]:
    """Training and validation datasets (standardized with training statistics) and a description.

    The digits come as images, except for ``--model mlp`` (64 pixel features).
    """
    import regfn

    rr = regfn.random
    task = None if args.task == "auto" else args.task
    data_name = "csv" if args.csv is not None else (args.data or "quadrants")
    if data_name != "csv" and args.target is not None:
        raise CLIError(f"--target needs --csv (the {data_name} data has one label)")
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
        target: int | str = -1
        if args.target is not None:
            target = int(args.target) if re.fullmatch(r"[+-]?\d+", args.target.strip()) else args.target
        data = regfn.data.load_csv(args.csv, target=target, task=task)
        source = f"{args.csv} (target {data.target_name!r})"
    split_key = rr.fold_in(rr.key(args.data_seed), 1)
    train, val = regfn.data.train_val_split(split_key, data, args.val_fraction)
    if len(train) < 2:
        raise CLIError(f"only {len(train)} training row(s) after the split; use more data or a smaller --val-fraction")
    train, val, _ = regfn.data.standardize(train, val)
    task_text = f"{data.task}, {data.n_classes} classes" if data.task == "multiclass" else data.task
    desc = f"{source}: {len(train)} train / {len(val)} val rows, {data.n_features} features, {task_text}"
    return train, (val if len(val) else None), desc


def _loss_of(data: Dataset) -> str:
    """The loss of ``data``'s task (the model outputs logits for the two classification tasks)."""
    if data.task == "multiclass":
        return "cross_entropy"
    if data.task == "binary":
        return "bce_logits"
    return "mse"


def _output_width(data: Dataset) -> tuple[int, str]:
    """The model's output width for ``data`` and what it is, in words."""
    n_classes = data.n_classes
    if data.task == "multiclass" and n_classes is not None:  # a multiclass Dataset always counts its classes
        return n_classes, f"{n_classes} logits, one per class"
    if data.task == "binary":
        return 1, "one logit (binary data)"
    width = data.y.shape[1]
    return width, "one output per target" if width > 1 else "one output (regression)"


def _layer_rates(args: argparse.Namespace) -> int:
    """How many per-call dropout rates the options give: the highest ``--p<i>`` given."""
    return max((i for i, n in enumerate(LAYER_RATE_NAMES, start=1) if getattr(args, n) is not None), default=0)


def _user_module(spec_text: str) -> tuple[torch.nn.Module, str]:
    """``module:PATH.py:ClassName``: the class of that file, built with no arguments, and a description."""
    import torch

    path_text, _, class_name = spec_text.removeprefix("module:").rpartition(":")
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise CLIError(f"--model: {path}: no such file" if not path.exists() else f"--model: {path} is not a file")
    spec = importlib.util.spec_from_file_location(f"regfn_user_model_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise CLIError(f"--model: cannot import {path} (a Python file ending in .py?)")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # the file may import its neighbours
    sys.modules[spec.name] = module  # dataclasses and friends look their module up there
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: any error it raises is bad input
        sys.modules.pop(spec.name, None)
        raise CLIError(f"--model: importing {path} failed: {type(err).__name__}: {_first_line(err)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(
            n
            for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == spec.name
        )
        have = f"; it defines {', '.join(found)}" if found else "; it defines no nn.Module class"
        raise CLIError(f"--model: {path} has no class {class_name!r}{have}")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise CLIError(f"--model: {class_name} in {path} is not a torch.nn.Module class")
    try:
        inspect.signature(cls).bind()
    except TypeError as err:
        raise CLIError(
            f"--model: {class_name}() needs arguments ({err}); regfn builds it with none: give its parameters "
            "defaults, or subclass it with an __init__ that takes none"
        ) from None
    except ValueError:  # no signature to read: try it
        pass
    try:
        instance = cls()
    except Exception as err:  # the user's class: any error it raises is bad input
        raise CLIError(f"--model: {class_name}() failed: {type(err).__name__}: {_first_line(err)}") from None
    return instance, f"{class_name} from {path}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _model(args: argparse.Namespace, train: Dataset) -> tuple[Model, str, str]:
    """The model ``--model`` names for ``train``, its loss, and a description.

    A cnn or module model is checked on two rows of the data before any
    training: it must run and give the output shape the loss needs.
    """
    import regfn

    loss = _loss_of(train)
    width, what = _output_width(train)
    if args.model == "mlp":
        hidden = _MLP_HIDDEN if args.hidden is None else args.hidden
        activation = args.activation or _MLP_ACTIVATION
        sizes = (train.n_features, *hidden, width)
        rates = _layer_rates(args)
        if rates and not hidden:
            raise CLIError(f"--p{rates}: --model mlp without hidden layers has no dropout call")
        if rates and rates != len(hidden):
            raise CLIError(
                f"--p{rates}: --model mlp has {len(hidden)} hidden layers, a dropout call after each: give "
                f"{_rate_options(len(hidden))}, or only --p"
            )
        output = "identity" if train.task == "regression" else "logits"
        model = regfn.mlp(sizes, activation=activation, output=output)
        _check_output(model, train, width, what, _layer_rates(args), "the mlp")
        return model, loss, f"{'-'.join(map(str, sizes))} ({activation}, {loss})"
    for name in ("hidden", "activation"):
        if getattr(args, name) is not None:
            raise CLIError(f"--{name} is an option of --model mlp; --model {args.model} takes its layers as they are")
    module: torch.nn.Module
    if args.model == "cnn":
        x = train.x
        if x.ndim != 4 or x.shape[2] != x.shape[3]:
            raise CLIError(
                f"--model cnn needs square images (N, C, S, S), such as --data digits; this data has x of shape "
                f"{tuple(x.shape)}"
            )
        module = regfn.nn.small_cnn(in_channels=x.shape[1], n_classes=width, image_size=x.shape[2])
        name = f"small_cnn {'x'.join(map(str, x.shape[1:]))} -> {width}"
    else:
        module, name = _user_module(args.model)
    try:
        model = regfn.from_module(module)
    except (ValueError, TypeError) as err:
        raise CLIError(f"--model: {_first_line(err)}") from None
    _check_output(model, train, width, what, _layer_rates(args), name)
    n_params = sum(t.numel() for t in module.parameters())
    return model, loss, f"{name} ({n_params:,} parameters, {loss})"


def _check_output(model: Model, train: Dataset, width: int, what: str, rates: int, name: str) -> None:
    """Run ``model`` on two rows: it must give ``(2, width)`` outputs, and take ``rates`` per-call rates if any."""
    import torch

    import regfn

    rr = regfn.random
    x = train.x[:2]
    params = model.init(rr.key(0))
    try:
        with torch.no_grad():
            out = model.apply(params, x, key=rr.key(1), p=0.0, train=False)
    except Exception as err:  # the user's forward: any error it raises is bad input
        raise CLIError(
            f"--model: {name} fails on two rows of the data (x of shape {tuple(x.shape)}): "
            f"{type(err).__name__}: {_first_line(err)}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, width):
        got = f"outputs of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise CLIError(
            f"--model: {name} gives {got} for 2 rows; the data needs shape (2, {width}): {what} "
            f"({_loss_of(train)} loss)"
        )
    if rates:
        try:
            with torch.no_grad():
                model.apply(params, x, key=rr.key(1), p=(0.0,) * rates, train=True)
        except ValueError as err:
            raise CLIError(f"--p{rates}: {_first_line(err)}; give one --p<i> per dropout call, or only --p") from None


def _rate_options(n: int) -> str:
    return "--p1" if n == 1 else f"--p1 .. --p{n}" if n > 2 else "--p1 and --p2"


def _check_label_smoothing(args: argparse.Namespace, loss: str, many: bool) -> None:
    """``--label-smoothing`` away from 0 needs the cross-entropy loss (multi-class data)."""
    given = args.label_smoothing
    if loss == "cross_entropy" or given is None or not any(v for v in (_given(given) if many else [given])):
        return
    raise CLIError(
        f"--label-smoothing: only the cross_entropy loss of multi-class data smooths labels; this data's loss is "
        f"{loss} (use --data digits, or a CSV with class labels)"
    )


def _optimizer_defaults(args: argparse.Namespace, many: bool) -> None:
    """Fill in --lr and --momentum defaults for the optimizer; reject an argument it does not take.

    An optimizer argument the optimizer does not take may only be given at its
    registry default (``--momentum 0`` with adam is fine, ``--momentum 0.9`` is not).
    """
    takes = OPTIMIZER_ARGS[args.optimizer]
    for name in _OPTION_NAMES:
        given = getattr(args, name)
        if HPARAMS[name].target != "optimizer" or name in takes or given is None:
            continue
        if any(v != HPARAMS[name].default for v in (_given(given) if many else [given])):
            raise CLIError(
                f"{HPARAMS[name].cli}: optimizer {args.optimizer!r} has no {name}; it takes {', '.join(takes)}"
            )
    if args.lr is None:
        args.lr = 0.1 if args.optimizer == "sgd" else 0.01
        args.lr = [args.lr] if many else args.lr
    if args.momentum is None and "momentum" in takes:
        args.momentum = 0.9 if args.optimizer == "sgd" else 0.0
        args.momentum = [args.momentum] if many else args.momentum


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------- regfn sweep


def _writable_out(path: str) -> pathlib.Path:
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


def _seed_summary(result: SweepResult, swept: list[str], by: str, n: int) -> str | None:
    """Settings ranked by the mean of ``by`` over seeds (diverged runs count as failures)."""
    groups: dict[tuple, list[float]] = {}
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
    cells = [[_fmt(v) for v in s[0]] + [_fmt(s[1]), _fmt(s[2]), f"{s[3]}/{s[4]}"] for s in stats[:n]]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _sweep_warnings(caught: Sequence[warnings.WarningMessage]) -> list[str]:
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


def _settings_line(result: SweepResult) -> str:
    """How the sweep ran: compiled or not, threads, chunking and padding."""
    s = result.settings
    threads = "" if s.get("threads") is None else f", {s['threads']} thread{'s' if s['threads'] != 1 else ''}"
    padded, k = s.get("padded", len(result)), len(result)
    waste = f" ({padded - k} padding, {(padded - k) / padded:.0%})" if padded > k else ""
    ranks = f", world size {s['world_size']}" if s.get("world_size", 1) > 1 else ""
    return f"ran: {result.engine} engine, compile {'on' if s.get('compile') else 'off'}{threads}, " + (
        f"chunks of {s.get('chunk_size', k)} configs{waste}{ranks}"
    )


def _space_text(value: list[float] | SearchRange) -> str:
    """A swept option in the search header: its range as typed, or ``one of 0,0.2,0.5``."""
    return value.text if isinstance(value, SearchRange) else f"one of {_show_default(value)}"


def _search_configs(args: argparse.Namespace, axes: Mapping[str, list[float] | SearchRange]) -> list[dict[str, Any]]:
    """``--search``: N points sampled from the options, each with every seed (point by point)."""
    from .. import random, search

    method, n = args.search
    space: dict[str, Any] = {}
    for name, v in axes.items():
        if isinstance(v, SearchRange):
            space[name] = v.space
        else:
            space[name] = v[0] if len(v) == 1 else search.choice(v)
    points = search.sample(random.key(args.search_seed), n, method, **space)
    return [{**point, "seed": seed} for point in points for seed in args.seeds]


def _run_sweep(args: argparse.Namespace) -> int:
    import regfn

    train, val, desc = _load(args)
    model, loss, model_desc = _model(args, train)
    _check_label_smoothing(args, loss, many=True)
    _optimizer_defaults(args, many=True)
    if args.p is None:
        args.p = _SWEEP_P_WITH_RATES if _layer_rates(args) else _SWEEP_P
    device = _device(args.device)
    compile_ = "auto" if args.compile is None else args.compile
    _threads(args.threads)
    axes = {name: getattr(args, name) for name in _OPTION_NAMES if getattr(args, name) is not None}
    configs: list[dict[str, Any]] | None = None
    if args.search is None:
        for name, v in axes.items():
            if isinstance(v, SearchRange):
                raise CLIError(
                    f"{HPARAMS[name].cli}: {v.text} is a search range; add --search random:N or give a count, "
                    f"{v.text}:5"
                )
        axes["seed"] = args.seeds
        n_configs = math.prod(len(v) for v in axes.values())  # the grid is built by regfn.sweep, after its size check
        swept = [n for n, v in axes.items() if len(v) > 1]
    else:
        configs = _search_configs(args, axes)
        n_configs = len(configs)
        swept = [n for n, v in axes.items() if isinstance(v, SearchRange) or len(v) > 1]
        swept += ["seed"] if len(args.seeds) > 1 else []
    if args.by is not None:
        metric = "mse" if train.task == "regression" else "acc"
        allowed = ["loss", "penalty", metric, "zero_frac", "tiny_frac"]
        if val is not None:
            allowed += [f"val_{m}" for m in ("loss", metric)]
        if args.by not in allowed:
            raise CLIError(f"--by: unknown metric {args.by!r}; use one of {', '.join(allowed)}")
    lead = is_lead()  # under torchrun, rank 0 prints and writes; the other ranks stay quiet
    out = _writable_out(args.out) if lead else pathlib.Path(args.out)
    if not args.quiet and lead:
        if args.search is None:
            shape = " x ".join(f"{n} {len(axes[n])}" for n in swept) or "1"
            print(f"regfn sweep: {n_configs:,} configs ({shape}) on {desc}")
        else:
            method, points = args.search
            seeds = len(args.seeds)
            spaces = ", ".join(f"{n} {_space_text(axes[n])}" for n in swept if n != "seed") or "constants only"
            print(
                f"regfn sweep: {method} search: {points:,} points x {seeds} seed{'s' if seeds != 1 else ''} = "
                f"{n_configs:,} configs ({spaces}; --search-seed {args.search_seed}) on {desc}"
            )
        if n_configs >= _LARGE_SWEEP:
            size = n_configs * bytes_per_config(len(HPARAMS), args.epochs, args.log_every)
            print(
                f"size: about {size / 2**20:,.0f} MiB of rows and results on the host "
                "(the progress bar's ETA estimates the time from the first chunks)"
            )
        print(
            f"model {model_desc}, {args.optimizer}, {args.epochs} epochs, "
            f"{'full batch' if args.batch_size is None else f'batch {args.batch_size}'}, device {device}",
            flush=True,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = regfn.sweep(
            model,
            train,
            axes if configs is None else configs,
            val=val,
            loss=loss,
            optimizer=args.optimizer,
            epochs=args.epochs,
            batch_size=args.batch_size,
            log_every=args.log_every,
            chunk_size=args.chunk_size,
            device=device,
            compile=compile_,
            quiet=args.quiet,
            threads=args.threads,
            engine=args.engine,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
        )
    if result is None:  # another rank of a torchrun sweep: rank 0 has the results
        return 0
    result.provenance["argv"] = list(getattr(args, "argv", []))  # what `regfn verify` rebuilds the data from
    for message in _sweep_warnings(caught):
        if "diverged" not in message and "collapsed" not in message:
            print(f"regfn: warning: {message}", file=sys.stderr)

    by = args.by or result.default_metric()
    shown = [n for n in swept if n != "seed"] + (["seed"] if "seed" in swept else [])
    metrics = [c for c in ("loss", "acc", "mse", "val_loss", "val_acc", "val_mse", "zero_frac") if c in result.rows[0]]
    columns = ["config", *(shown or ["seed"]), *metrics, "diverged", "collapsed"]
    if args.top:
        print(f"\nbest {min(args.top, len(result))} of {len(result)} configs by {by}:")
        print(result.table(args.top, by=by, columns=columns))
        summary = _seed_summary(result, [n for n in swept if n != "seed"], by, args.top)
        if summary is not None:
            print(f"\nbest settings by mean {by} over {len(args.seeds)} seeds:")
            print(summary)
    print()
    for flagged, what in ((result.diverged, "diverged"), (result.collapsed, "collapsed (learned a constant)")):
        line = f"{what}: {len(flagged)} of {len(result)} configs"
        if flagged:
            first = result.rows[flagged[0]]
            line += " (e.g. config {}: {})".format(flagged[0], ", ".join(f"{n}={_fmt(first[n])}" for n in shown))
        print(line)
    t = result.timings
    rate = len(result) * args.epochs / max(t.get("run_s", 0.0), 1e-9)
    print(
        f"time: {t.get('total_s', 0):.1f} s total (compile/warm-up {t.get('compile_s', 0):.1f} s, "
        f"training {t.get('run_s', 0):.1f} s, {rate:,.0f} config-epochs/s)"
    )
    print(_settings_line(result))

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
    return 0


# ----------------------------------------------------------------- regfn train


def _train_rates(args: argparse.Namespace) -> float | tuple[float, ...]:
    """``--p``, or one rate per dropout call when some ``--p<i>`` is given (the others take ``--p``)."""
    rates = _layer_rates(args)
    if not rates:
        return float(args.p)
    given = (getattr(args, name) for name in LAYER_RATE_NAMES[:rates])
    return tuple(float(args.p) if v is None else float(v) for v in given)


def _run_train(args: argparse.Namespace) -> int:
    import regfn

    train, val, desc = _load(args)
    model, loss, model_desc = _model(args, train)
    _check_label_smoothing(args, loss, many=False)
    _optimizer_defaults(args, many=False)
    device = _device(args.device)
    compile_ = device.type == "cuda" if args.compile is None else args.compile
    _threads(args.threads)
    train, val = train.to(device), (val.to(device) if val is not None else None)
    takes = OPTIMIZER_ARGS[args.optimizer]
    optimizer = build_optimizer(args.optimizer, {n: getattr(args, n) for n in takes if getattr(args, n) is not None})
    penalties = [PENALTIES[n](getattr(args, n)) for n in PENALTIES if getattr(args, n)]
    if not args.quiet:
        print(f"regfn train: {desc}")
        shown = [n for n in _OPTION_NAMES if getattr(args, n) or n in ("lr", "p")]
        hp = ", ".join(f"{n}={_fmt(getattr(args, n))}" for n in shown if getattr(args, n) is not None)
        print(
            f"model {model_desc}, {args.optimizer}, {hp}, seed {args.seed}",
            flush=True,
        )

    def on_log(entry: dict[str, float]) -> None:
        if not args.quiet:
            print(f"Epoch [{int(entry['epoch'])}/{args.epochs}], Loss: {entry['loss']:.4f}", flush=True)

    t0 = time.perf_counter()
    run = regfn.train(
        model,
        train,
        optimizer=optimizer,
        key=regfn.random.key(args.seed).to(device),
        loss=loss,
        penalties=penalties,
        p=_train_rates(args),
        epochs=args.epochs,
        batch_size=args.batch_size,
        val=val,
        log_every=args.log_every,
        on_log=on_log,
        compile=compile_,
        hparams={"label_smoothing": args.label_smoothing} if loss == "cross_entropy" and args.label_smoothing else None,
    )
    seconds = time.perf_counter() - t0
    metric = "acc" if "acc" in run.metrics else "mse"
    name = "accuracy" if metric == "acc" else "MSE"
    line = f"train {name} {run.metrics[metric]:.4f}"
    if run.val_metrics:
        line += f", validation {name} {run.val_metrics[metric]:.4f}"
    print(f"{line} (dropout off); {seconds:.1f} s")
    # Two different losses: the Epoch lines print what the optimizer minimised (dropout on, penalties
    # added); the model itself is judged with dropout off, on the data loss alone.
    objective = run.history[-1]["loss"] if run.history else math.nan
    batch = ", last mini-batch" if args.batch_size is not None and args.batch_size < len(train) else ""
    print(
        f"final training objective {objective:.4f} (data loss with dropout {'on' if args.p else 'off (p=0)'}"
        f"{' + penalties' if penalties else ''}, "
        f"epoch {args.epochs}{batch}{'' if args.quiet else ': the Loss of the Epoch lines'})"
    )
    line = f"final data loss with dropout off: train {run.metrics['loss']:.4f}"
    if run.val_metrics:
        line += f", validation {run.val_metrics['loss']:.4f}"
    if penalties:
        line += f" (penalties {run.metrics['penalty']:.4f} not included)"
    print(line)
    if run.diverged:
        print("the run diverged (NaN/inf loss or weights); try a smaller --lr", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------- entry point


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``regfn`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
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
        commands = {"sweep": _run_sweep, "train": _run_train, "verify": run_verify}
        try:
            return commands[args.command](args)
        finally:
            torch.set_num_threads(threads)  # main() may run inside another program (tests)
    except (CLIError, ValueError, TypeError, OSError) as err:  # OSError: FileNotFoundError, PermissionError, ...
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
