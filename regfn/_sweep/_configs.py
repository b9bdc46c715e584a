"""Configurations: grids, validation against the registry, and the per-configuration tensors."""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Mapping, Sequence, Sized
from typing import Any

import torch
from torch import Tensor

from .._hparams import HPARAMS, LAYER_RATE_NAMES, OPTIMIZER_ARGS, PENALTY_NAMES, HParam, optimizer_defaults

__all__ = ["Configs", "count", "grid", "hyper_tensors", "layer_rates", "live_penalties", "normalize", "shown_names"]

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


def normalize(
    configs: Configs,
    optimizer: str,
    extra: Mapping[str, HParam] | None = None,
    loss_reads: Collection[str] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every configuration checked and completed with defaults, and the names some configuration set.

    Returns ``(rows, given)``: each row holds every registry name and every
    name of ``extra`` (the caller's own, see
    :func:`regfn._hparams.user_hparams`); a missing one takes the optimizer's
    default (:func:`regfn._hparams.optimizer_defaults`), or the value of the
    name it defaults from (``p1`` takes ``p``). ``given`` lists the names any
    configuration set, in registry order.

    Raises:
        ValueError, TypeError: for an empty list, a row that is not a dict, an
            unknown name, a value out of its range, an optimizer argument
            ``optimizer`` does not take (or a loss hyperparameter outside
            ``loss_reads``, when given) set away from its default, or a
            declared name without a default that a configuration leaves out.
    """
    if isinstance(configs, Mapping):
        configs = grid(**configs)
    given_rows = list(configs)
    checked: dict[tuple[str, type, Any], Any] = {}  # grids repeat values: check each (name, value) once

    def check(name: str, value: Any, i: int) -> Any:
        try:
            memo = (name, type(value), value)
            if memo in checked:
                return checked[memo]
        except TypeError:  # unhashable: check it every time
            return registry[name].check(value, f"config {i}")
        checked[memo] = registry[name].check(value, f"config {i}")
        return checked[memo]

    if not given_rows:
        raise ValueError("configs is empty: give at least one configuration (e.g. regfn.grid(l2=[1e-3]))")
    registry = {**HPARAMS, **(extra or {})}
    defaults = optimizer_defaults(optimizer)
    takes = OPTIMIZER_ARGS[optimizer]
    rows: list[dict[str, Any]] = []
    given: set[str] = set()
    for i, row in enumerate(given_rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"config {i} must be a dict of hyperparameters, got {type(row).__name__}")
        unknown = set(row) - set(registry)
        if unknown:
            raise ValueError(
                f"config {i}: unknown hyperparameters {sorted(unknown)}; a sweep can vary {list(registry)} "
                "(declare names of your own with hparams={name: (low, high)})"
            )
        full: dict[str, Any] = {}
        for name, hp in registry.items():
            if name in row:
                full[name] = check(name, row[name], i)
            elif hp.default_from is not None:
                full[name] = full[hp.default_from]
            elif name in defaults or hp.default is not None:
                full[name] = defaults.get(name, hp.default)
            else:
                raise ValueError(f"config {i}: {name} has no default; set it in every configuration")
        for name in row:
            target = registry[name].target
            if target == "optimizer" and name not in takes and full[name] != defaults[name]:
                raise ValueError(f"config {i}: optimizer {optimizer!r} has no {name}; it takes {', '.join(takes)}")
            if target == "loss" and loss_reads is not None and name not in loss_reads and full[name] != defaults[name]:
                raise ValueError(f"config {i}: the loss has no {name} (cross_entropy reads label_smoothing)")
        given.update(row)
        rows.append(full)
    return rows, [name for name in registry if name in given]


def count(configs: Configs) -> int:
    """How many configurations ``configs`` describes, without building a grid's rows.

    Examples:
        >>> count({"l2": [0.0, 1e-3], "seed": range(5)}), count([{}, {"p": 0.5}])
        (10, 2)
    """
    if isinstance(configs, Mapping):
        return math.prod(len(v) if isinstance(v, Sized) else len(list(v)) for v in configs.values())
    return len(configs)


def shown_names(given: Sequence[str], extra: Mapping[str, HParam] | None = None) -> tuple[str, ...]:
    """The hyperparameter columns of the results: the usual ones and any other a configuration set."""
    registry = {**HPARAMS, **(extra or {})}
    return tuple(name for name, p in registry.items() if p.column or name in given)


def layer_rates(given: Sequence[str]) -> int:
    """How many per-layer dropout rates a sweep hands the model: the highest ``p<i>`` any configuration set."""
    return max((i for i, name in enumerate(LAYER_RATE_NAMES, start=1) if name in given), default=0)


def live_penalties(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The penalties some configuration turns on (a strength other than 0)."""
    return tuple(name for name in PENALTY_NAMES if any(r[name] != 0 for r in rows))


def hyper_tensors(rows: Sequence[Mapping[str, Any]], dtype: torch.dtype, device: torch.device) -> dict[str, Tensor]:
    """One ``(K,)`` tensor per name of the rows (the seed as int64, the rest in ``dtype``)."""
    return {
        name: torch.tensor([r[name] for r in rows], dtype=torch.int64 if name == "seed" else dtype, device=device)
        for name in rows[0]
    }
