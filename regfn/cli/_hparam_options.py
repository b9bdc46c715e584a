"""The hyperparameter options, one per name of the registry (:mod:`regfn._hparams`), and their checks.

``regfn sweep`` takes a value list per option (``--l2 0,1e-3``), ``regfn
train`` one value. The registry gives each option's name, help and range;
this module adds the command's own defaults and the checks that depend on
other options: the optimizer's arguments, per-call dropout rates
(``--p1`` .. ``--p8``) and label smoothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .._hparams import HPARAMS, LAYER_RATE_NAMES, OPTIMIZER_ARGS, optimizer_defaults
from ._argtypes import value_type
from ._errors import CLIError
from ._values import SearchRange, parse_search_values, parse_values

__all__ = [
    "OPTION_NAMES",
    "add_hparam_options",
    "apply_optimizer_defaults",
    "check_label_smoothing",
    "default_sweep_rates",
    "given_values",
    "layer_rates",
    "rate_options",
]

# Every registry name but the seed is an option (the seed has --seeds / --seed).
OPTION_NAMES = tuple(name for name in HPARAMS if name != "seed")
# The command's own defaults where they differ from the registry's: a small grid to sweep
# (regfn sweep), one setting to train (regfn train). lr and momentum are the optimizer's
# (see apply_optimizer_defaults); every other name defaults to not given.
# --p's default grid is filled in by regfn sweep (default_sweep_rates).
_SWEEP_GRID = {"l1": [0.0], "l2": [0.0, 1e-3, 1e-2, 1e-1], "norm2": [0.0], "weight_decay": [0.0]}
_SWEEP_P, _SWEEP_P_WITH_RATES = [0.0, 0.2, 0.5], [0.0]
_TRAIN_SETTING = {"l1": 0.0, "l2": 0.0, "norm2": 0.0, "weight_decay": 0.0, "p": 0.1}
# The optimizer arguments whose defaults the help states per optimizer (the registry's, as the library's).
_NOTED = ("lr", "momentum")


def _default_note(name: str) -> str:
    """``"default: 0.1 for sgd, 0.01 for adam, adamw, ..."``: the optimizers' defaults of ``name``."""
    by_value: dict[float, list[str]] = {}
    for optimizer in (o for o, takes in OPTIMIZER_ARGS.items() if name in takes):
        by_value.setdefault(optimizer_defaults(optimizer)[name], []).append(optimizer)
    return "default: " + ", ".join(f"{v:g} for {', '.join(names)}" for v, names in by_value.items())


def _one_value(name: str) -> Callable[[str], float]:
    """An argparse ``type`` for ``regfn train``'s hyperparameters: a value list of exactly one value."""

    def convert(text: str) -> float:
        values = value_type(parse_values, name)(text)
        if len(values) != 1:
            raise argparse.ArgumentTypeError(f"takes one value (use 'regfn sweep' for several), got {text!r}")
        return values[0]

    return convert


def add_hparam_options(g: argparse._ArgumentGroup, many: bool) -> None:
    """One option per registry name (a value list for ``regfn sweep``, one value for ``regfn train``)."""
    for name in OPTION_NAMES:
        hp = HPARAMS[name]
        default = _SWEEP_GRID.get(name) if many else _TRAIN_SETTING.get(name)
        takers = [o for o, args in OPTIMIZER_ARGS.items() if name in args]
        where = f"; {', '.join(takers)} only" if hp.target == "optimizer" and len(takers) < len(OPTIMIZER_ARGS) else ""
        note = _default_note(name) if name in _NOTED else "default: the optimizer's" if hp.target == "optimizer" else ""
        if many and name == "p":
            note = "default: 0,0.2,0.5; 0 when --p1 .. are given"
        help_text = f"{hp.describe()}{where}" + (f" ({note})" if note and default is None else "")
        g.add_argument(
            hp.cli,
            dest=name,
            type=value_type(parse_search_values, name) if many else _one_value(name),
            default=default,
            metavar="VALUES" if many else "VALUE",
            help=help_text,
        )


def given_values(value: list[float] | SearchRange) -> list[float]:
    """The values an option gives: a list's, or a search range's two ends."""
    return list(value.ends()) if isinstance(value, SearchRange) else list(value)


def layer_rates(args: argparse.Namespace) -> int:
    """How many per-call dropout rates the options give: the highest ``--p<i>`` given."""
    return max((i for i, n in enumerate(LAYER_RATE_NAMES, start=1) if getattr(args, n) is not None), default=0)


def default_sweep_rates(args: argparse.Namespace) -> list[float]:
    """``regfn sweep``'s ``--p`` when not given: 0, 0.2, 0.5, or only 0 when ``--p1`` .. give every call's rate."""
    return _SWEEP_P_WITH_RATES if layer_rates(args) else _SWEEP_P


def rate_options(n: int) -> str:
    """The per-call rate options of a model with ``n`` dropout calls, in words: ``--p1 .. --p3``."""
    return "--p1" if n == 1 else f"--p1 .. --p{n}" if n > 2 else "--p1 and --p2"


def check_label_smoothing(args: argparse.Namespace, loss: str, many: bool) -> None:
    """``--label-smoothing`` away from 0 needs the cross-entropy loss (multi-class data)."""
    given = args.label_smoothing
    if loss == "cross_entropy" or given is None or not any(v for v in (given_values(given) if many else [given])):
        return
    raise CLIError(
        f"--label-smoothing: only the cross_entropy loss of multi-class data smooths labels; this data's loss is "
        f"{loss} (use --data digits, or a CSV with class labels)"
    )


def apply_optimizer_defaults(args: argparse.Namespace, many: bool) -> None:
    """Fill in --lr and --momentum with the optimizer's defaults (the library's); reject an argument it does not take.

    An optimizer argument the optimizer does not take may only be given at its
    registry default (``--momentum 0`` with adam is fine, ``--momentum 0.9`` is not).
    """
    takes = OPTIMIZER_ARGS[args.optimizer]
    for name in OPTION_NAMES:
        given = getattr(args, name)
        if HPARAMS[name].target != "optimizer" or name in takes or given is None:
            continue
        if any(v != HPARAMS[name].default for v in (given_values(given) if many else [given])):
            raise CLIError(
                f"{HPARAMS[name].cli}: optimizer {args.optimizer!r} has no {name}; it takes {', '.join(takes)}"
            )
    defaults = optimizer_defaults(args.optimizer)
    for name in _NOTED:
        if getattr(args, name) is None and name in takes:
            setattr(args, name, [defaults[name]] if many else defaults[name])
