"""Configurations: grids, validation against the registry, and the per-configuration tensors."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .._hparams import HPARAMS, OPTIMIZER_ARGS, PENALTY_NAMES, optimizer_defaults

__all__ = ["Configs", "grid", "hyper_tensors", "live_penalties", "normalize", "shown_names"]

Configs = Sequence[Mapping[str, Any]] | Mapping[str, Iterable[Any]]


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """All combinations of the given values (the last axis varies fastest).

    Examples:
        >>> grid(l2=[0.0, 1e-3], seed=[0, 1])
        [{'l2': 0.0, 'seed': 0}, {'l2': 0.0, 'seed': 1}, {'l2': 0.001, 'seed': 0}, {'l2': 0.001, 'seed': 1}]
    """
    names = list(axes)
    values = [list(v) for v in axes.values()]
    for name, vals in zip(names, values, strict=True):
        if not vals:
            raise ValueError(f"grid: the values for {name!r} are empty")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def normalize(configs: Configs, optimizer: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every configuration checked and completed with defaults, and the names some configuration set.

    Returns ``(rows, given)``: each row holds every registry name (a missing
    one takes the optimizer's default, see
    :func:`regfn._hparams.optimizer_defaults`); ``given`` lists the names any
    configuration set, in registry order.

    Raises:
        ValueError, TypeError: for an empty list, a row that is not a dict, an
            unknown name, a value out of its range, or an optimizer argument
            ``optimizer`` does not take set away from its default.
    """
    if isinstance(configs, Mapping):
        configs = grid(**configs)
    given_rows = list(configs)
    if not given_rows:
        raise ValueError("configs is empty: give at least one configuration (e.g. regfn.grid(l2=[1e-3]))")
    defaults = optimizer_defaults(optimizer)
    takes = OPTIMIZER_ARGS[optimizer]
    rows: list[dict[str, Any]] = []
    given: set[str] = set()
    for i, row in enumerate(given_rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"config {i} must be a dict of hyperparameters, got {type(row).__name__}")
        unknown = set(row) - set(HPARAMS)
        if unknown:
            raise ValueError(f"config {i}: unknown hyperparameters {sorted(unknown)}; a sweep can vary {list(HPARAMS)}")
        full = {name: HPARAMS[name].check(row.get(name, defaults[name]), f"config {i}") for name in HPARAMS}
        for name in row:
            if HPARAMS[name].target == "optimizer" and name not in takes and full[name] != defaults[name]:
                raise ValueError(f"config {i}: optimizer {optimizer!r} has no {name}; it takes {', '.join(takes)}")
        given.update(row)
        rows.append(full)
    return rows, [name for name in HPARAMS if name in given]


def shown_names(given: Sequence[str]) -> tuple[str, ...]:
    """The hyperparameter columns of the results: the usual ones and any other a configuration set."""
    return tuple(name for name, p in HPARAMS.items() if p.column or name in given)


def live_penalties(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The penalties some configuration turns on (a strength other than 0)."""
    return tuple(name for name in PENALTY_NAMES if any(r[name] != 0 for r in rows))


def hyper_tensors(rows: Sequence[Mapping[str, Any]], dtype: torch.dtype, device: torch.device) -> dict[str, Tensor]:
    """One ``(K,)`` tensor per registry name (the seed as int64, the rest in ``dtype``)."""
    return {
        name: torch.tensor(
            [r[name] for r in rows], dtype=torch.int64 if HPARAMS[name].integer else dtype, device=device
        )
        for name in HPARAMS
    }
