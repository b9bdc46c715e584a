"""``regfn sweep --schedule halving|hyperband|pbt``: the schedules of :mod:`regfn.search` at the command line.

``--schedule`` picks the schedule; ``--schedule-metric``, ``--min-epochs``,
``--eta``, ``--max-rungs`` (halving, Hyperband), ``--interval``,
``--quantile``, ``--perturb`` and ``--schedule-seed`` (PBT) are its
arguments, as :func:`regfn.search.successive_halving`,
:func:`regfn.search.hyperband` and :func:`regfn.search.pbt` take them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._argtypes import int_at_least, positive_int
from ._errors import CLIError

if TYPE_CHECKING:
    from ..search._schedules import Schedule

__all__ = ["add_schedule_options", "schedule_of"]

_KINDS = ("halving", "hyperband", "pbt")


def _factors(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"use two factors LOW,HIGH, e.g. 0.8,1.2; got {text!r}") from None
    return low, high


def add_schedule_options(g: argparse._ArgumentGroup) -> None:
    """``--schedule`` and its options, in the group ``g``."""
    g.add_argument(
        "--schedule",
        choices=_KINDS,
        default=None,
        help="stop or copy configurations as they train (needs validation data or --cv): halving (successive "
        "halving: keep the best 1/eta at each rung), hyperband (several halvings from different first rungs), "
        "pbt (population-based training: every --interval epochs the worst copy the best, perturbed); "
        "default: every configuration trains all --epochs",
    )
    g.add_argument(
        "--schedule-metric",
        choices=("val_loss", "val_acc", "val_mse"),
        default=None,
        help="what the schedule ranks by (default: --by when it is one of these, else val_loss)",
    )
    g.add_argument(
        "--min-epochs",
        type=positive_int,
        default=None,
        help="halving, hyperband: the first rung in epochs (default: epochs // eta**2, at least 1)",
    )
    g.add_argument("--eta", type=int_at_least(2), default=3, help="halving, hyperband: the reduction factor")
    g.add_argument("--max-rungs", type=positive_int, default=None, help="halving: at most this many rungs")
    g.add_argument(
        "--interval", type=positive_int, default=None, help="pbt: epochs between exploit steps (default: epochs // 10)"
    )
    g.add_argument("--quantile", type=float, default=0.25, help="pbt: the share that copies, in (0, 0.5]")
    g.add_argument("--perturb", type=_factors, default=(0.8, 1.2), metavar="LOW,HIGH", help="pbt: perturbation factors")
    g.add_argument("--schedule-seed", type=int, default=0, help="pbt: key of the copies and perturbations")


def schedule_of(args: argparse.Namespace) -> Schedule | None:
    """The schedule the options describe, or ``None`` without ``--schedule``."""
    from .. import random, search

    kind = args.schedule
    if kind is None:
        for option in ("schedule_metric", "min_epochs", "max_rungs", "interval"):
            if getattr(args, option) is not None:
                raise CLIError(f"--{option.replace('_', '-')} is an option of --schedule")
        return None
    by = args.by if args.by in ("val_loss", "val_acc", "val_mse") else "val_loss"
    metric = args.schedule_metric or by
    if kind == "pbt":
        interval = args.interval or max(1, args.epochs // 10)
        return search.pbt(interval, args.quantile, args.perturb, key=random.key(args.schedule_seed), metric=metric)
    min_epochs = args.min_epochs or max(1, args.epochs // args.eta**2)
    if kind == "hyperband":
        return search.hyperband(metric, min_epochs=min_epochs, eta=args.eta)
    return search.successive_halving(metric, min_epochs=min_epochs, eta=args.eta, max_rungs=args.max_rungs)
