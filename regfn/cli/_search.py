"""``regfn sweep --search random:N|sobol:N``: sampled points instead of the grid.

The hyperparameter options then take search ranges too (``log:LOW:HIGH``,
``lin:LOW:HIGH``, parsed by :func:`regfn.cli._values.parse_search_values`);
a list is a choice among its values and one value a constant. The points
come from :func:`regfn.search.sample` with the key ``--search-seed``, and
each runs with every ``--seeds`` seed.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from .._hparams import HPARAMS
from ._errors import CLIError
from ._formatting import show_default
from ._values import SearchRange

__all__ = ["add_search_options", "reject_search_ranges", "search_configs", "space_text"]


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


def add_search_options(g: argparse._ArgumentGroup) -> None:
    """``--search`` and ``--search-seed``, in the group ``g``."""
    g.add_argument(
        "--search",
        type=_search_option,
        default=None,
        metavar="{random,sobol}:N",
        help="sample N points of the options' ranges (log:LOW:HIGH, lin:LOW:HIGH, lists) instead of the grid; "
        "each point runs with every seed (default: the grid)",
    )
    g.add_argument("--search-seed", type=int, default=0, help="key of --search: regfn.random.key(SEARCH_SEED)")


def reject_search_ranges(axes: Mapping[str, list[float] | SearchRange]) -> None:
    """Without ``--search`` every option is a list: a search range has no count to make a grid axis of."""
    for name, v in axes.items():
        if isinstance(v, SearchRange):
            raise CLIError(
                f"{HPARAMS[name].cli}: {v.text} is a search range; add --search random:N or give a count, {v.text}:5"
            )


def search_configs(args: argparse.Namespace, axes: Mapping[str, list[float] | SearchRange]) -> list[dict[str, Any]]:
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


def space_text(value: list[float] | SearchRange) -> str:
    """A swept option in the search header: its range as typed, or ``one of 0,0.2,0.5``."""
    return value.text if isinstance(value, SearchRange) else f"one of {show_default(value)}"
