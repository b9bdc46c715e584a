"""Schedules: stop or copy configurations while one vmapped sweep trains them.

A schedule goes to :func:`regfn.sweep` as ``schedule=``; the sweep then
trains its configurations in stretches and, between stretches, stops some
(:func:`successive_halving`, :func:`hyperband`) or lets the worst copy the
best (:func:`pbt`). The constructors only check and hold the settings; the
decisions are :mod:`regfn._sweep._strategies`'. Every schedule ranks the
configurations by a validation metric, so the sweep needs ``val=``.

Examples:
    >>> successive_halving(min_epochs=5, eta=3)
    successive_halving(metric='val_loss', min_epochs=5, eta=3, max_rungs=None)
    >>> successive_halving(min_epochs=5, eta=1)
    Traceback (most recent call last):
    ...
    ValueError: regfn.search.successive_halving: eta must be an int >= 2, got 1
    >>> import regfn
    >>> pbt(interval=10, key=regfn.random.key(0)).quantile
    0.25
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from .._checks import check_int, check_real
from ..random import _check_key

__all__ = [
    "METRICS",
    "PBT",
    "Hyperband",
    "Schedule",
    "SuccessiveHalving",
    "hyperband",
    "pbt",
    "successive_halving",
]

METRICS = ("val_loss", "val_acc", "val_mse")
"""The metrics a schedule can rank by (``val_acc`` for classification, ``val_mse`` for regression)."""


def _metric(metric: Any, where: str) -> str:
    if not isinstance(metric, str):
        raise TypeError(f"{where}: metric must be a str, got {type(metric).__name__} {metric!r}")
    if metric not in METRICS:
        raise ValueError(f"{where}: metric must be one of {list(METRICS)}, got {metric!r}")
    return metric


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` are better (losses, MSE), not larger (accuracy)."""
    return not metric.endswith("acc")


@dataclass(frozen=True)
class SuccessiveHalving:
    """Successive halving (made by :func:`successive_halving`); see there."""

    metric: str = "val_loss"
    min_epochs: int = 1
    eta: int = 3
    max_rungs: int | None = None

    def __post_init__(self) -> None:
        where = "regfn.search.successive_halving"
        _metric(self.metric, where)
        check_int(self.min_epochs, "min_epochs", where, low=1)
        check_int(self.eta, "eta", where, low=2)
        if self.max_rungs is not None:
            check_int(self.max_rungs, "max_rungs", where, low=1)

    def __repr__(self) -> str:
        return (
            f"successive_halving(metric={self.metric!r}, min_epochs={self.min_epochs}, eta={self.eta}, "
            f"max_rungs={self.max_rungs})"
        )

    def rungs(self, epochs: int) -> list[int]:
        """The epochs after which the configurations are ranked: ``min_epochs * eta**i`` below ``epochs``.

        Examples:
            >>> successive_halving(min_epochs=1, eta=3).rungs(27)
            [1, 3, 9]
            >>> successive_halving(min_epochs=2, eta=2, max_rungs=2).rungs(100)
            [2, 4]
        """
        out: list[int] = []
        r = self.min_epochs
        while r < epochs and (self.max_rungs is None or len(out) < self.max_rungs):
            out.append(r)
            r *= self.eta
        return out


@dataclass(frozen=True)
class Hyperband:
    """Hyperband (made by :func:`hyperband`); see there."""

    metric: str = "val_loss"
    min_epochs: int = 1
    eta: int = 3

    def __post_init__(self) -> None:
        where = "regfn.search.hyperband"
        _metric(self.metric, where)
        check_int(self.min_epochs, "min_epochs", where, low=1)
        check_int(self.eta, "eta", where, low=2)

    def __repr__(self) -> str:
        return f"hyperband(metric={self.metric!r}, min_epochs={self.min_epochs}, eta={self.eta})"

    def brackets(self, k: int, epochs: int) -> list[tuple[int, int]]:
        """``(configurations, first rung)`` of each bracket, most aggressive first; ``k`` configurations in all.

        With ``s_max = floor(log_eta(epochs / min_epochs))``, bracket ``s``
        (``s_max`` down to 0) weighs ``ceil((s_max + 1) / (s + 1) * eta**s)``
        (Li et al.'s bracket sizes) and starts ranking at ``min_epochs *
        eta**(s_max - s)`` epochs; the ``k`` configurations are shared out in
        proportion to the weights (largest remainders; at least one each
        while there are enough), in their order: bracket ``s_max`` takes the
        first slice. The last bracket (``s = 0``) trains its slice for every
        epoch. A row's ``bracket`` is its bracket's position in this list.

        Examples:
            >>> hyperband(min_epochs=1, eta=3).brackets(81, 27)
            [(45, 1), (20, 3), (10, 9), (6, 27)]
        """
        s_max = 0
        while self.min_epochs * self.eta ** (s_max + 1) <= epochs:
            s_max += 1
        weights = [-(-(s_max + 1) * self.eta**s // (s + 1)) for s in range(s_max, -1, -1)]
        firsts = [self.min_epochs * self.eta ** (s_max - s) for s in range(s_max, -1, -1)]
        total = sum(weights)
        sizes = [k * w // total for w in weights]
        order = sorted(range(len(weights)), key=lambda i: (-(k * weights[i] % total), i))
        for i in order[: k - sum(sizes)]:
            sizes[i] += 1
        for i in range(len(sizes)):  # every bracket gets a configuration while others have two or more
            if sizes[i] == 0:
                donor = max(range(len(sizes)), key=lambda j: (sizes[j], -j))
                if sizes[donor] > 1:
                    sizes[donor] -= 1
                    sizes[i] += 1
        return [(n, first) for n, first in zip(sizes, firsts, strict=True) if n > 0]


@dataclass(frozen=True)
class PBT:
    """Population-based training (made by :func:`pbt`); see there."""

    interval: int
    key: Tensor = field(repr=False)
    quantile: float = 0.25
    perturb: tuple[float, float] = (0.8, 1.2)
    metric: str = "val_loss"
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        where = "regfn.search.pbt"
        check_int(self.interval, "interval", where, low=1)
        object.__setattr__(self, "key", _check_key(self.key, where))
        object.__setattr__(
            self, "quantile", check_real(self.quantile, "quantile", where, low=0.0, high=0.5, low_open=True)
        )
        if isinstance(self.perturb, str) or not isinstance(self.perturb, Sequence) or len(self.perturb) != 2:
            raise TypeError(f"{where}: perturb must be a pair of numbers > 0, got {self.perturb!r}")
        pair = tuple(check_real(f, "perturb", where, low=0.0, low_open=True) for f in self.perturb)
        object.__setattr__(self, "perturb", pair)
        _metric(self.metric, where)
        if self.names is not None:
            if isinstance(self.names, str) or not all(isinstance(n, str) for n in self.names):
                raise TypeError(f"{where}: names must be a sequence of hyperparameter names, got {self.names!r}")
            object.__setattr__(self, "names", tuple(self.names))

    def __repr__(self) -> str:
        return (
            f"pbt(interval={self.interval}, quantile={self.quantile}, perturb={self.perturb}, "
            f"metric={self.metric!r}, names={self.names})"
        )


Schedule = SuccessiveHalving | Hyperband | PBT
"""What :func:`regfn.sweep` takes as ``schedule=``."""

_KINDS: dict[str, type[SuccessiveHalving] | type[Hyperband] | type[PBT]] = {
    "successive_halving": SuccessiveHalving,
    "hyperband": Hyperband,
    "pbt": PBT,
}


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """A schedule as JSON-ready settings (PBT's key as its two words), for provenance.

    Examples:
        >>> import regfn
        >>> schedule_to_dict(successive_halving(min_epochs=10))
        {'kind': 'successive_halving', 'metric': 'val_loss', 'min_epochs': 10, 'eta': 3, 'max_rungs': None}
        >>> back = schedule_from_dict(schedule_to_dict(pbt(5, key=regfn.random.key(7))))
        >>> back.interval, back.key.tolist() == regfn.random.key(7).tolist()
        (5, True)
    """
    kind = next(name for name, cls in _KINDS.items() if isinstance(schedule, cls))
    out: dict[str, Any] = {"kind": kind}
    for f in fields(schedule):
        value = getattr(schedule, f.name)
        out[f.name] = (
            value.tolist() if isinstance(value, Tensor) else list(value) if isinstance(value, tuple) else value
        )
    return out


def schedule_from_dict(settings: dict[str, Any]) -> Schedule:
    """The schedule :func:`schedule_to_dict` described (checked again by its constructor).

    Raises:
        ValueError: for a kind that is not regfn.search's (a strategy of one's own cannot be rebuilt from its record).
    """
    if settings.get("kind") not in _KINDS:
        raise ValueError(
            f"schedule {settings.get('kind')!r} is not one of regfn.search's ({', '.join(_KINDS)}): "
            f"it cannot be rebuilt from its record {settings!r}"
        )
    values = {n: v for n, v in settings.items() if n != "kind"}
    if "key" in values:
        values["key"] = torch.tensor(values["key"], dtype=torch.int64)  # a regfn.random key's dtype
    for name in ("perturb", "names"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    return _KINDS[settings["kind"]](**values)


def successive_halving(
    metric: str = "val_loss", *, min_epochs: int, eta: int = 3, max_rungs: int | None = None
) -> SuccessiveHalving:
    """Successive halving: at each rung the best ``1/eta`` continue, the rest stop.

    Rungs fall after ``min_epochs``, ``min_epochs * eta``, ``min_epochs *
    eta**2``, ... epochs (below the sweep's ``epochs``; at most
    ``max_rungs``). At a rung the live configurations are ranked by
    ``metric`` on the validation data (lower is better for ``val_loss`` and
    ``val_mse``, higher for ``val_acc``; a non-finite value ranks last; ties
    break by configuration index) and the best ``ceil(n / eta)`` continue.
    A stopped configuration keeps its row, with its metrics at the epoch it
    stopped (``stopped_epoch``, ``rung``). Survivors train on exactly as
    they would alone: each configuration's keys depend on its seed only.

    Args:
        metric: ``"val_loss"``, ``"val_acc"`` or ``"val_mse"``.
        min_epochs: the first rung, in epochs (>= 1).
        eta: the reduction factor (an int >= 2).
        max_rungs: at most this many rungs (``None``: as many as fit).

    Raises:
        ValueError, TypeError: for a metric not listed, ``eta < 2``, ``min_epochs < 1``.
    """
    return SuccessiveHalving(metric, min_epochs, eta, max_rungs)


def hyperband(metric: str = "val_loss", *, min_epochs: int, eta: int = 3) -> Hyperband:
    """Hyperband: several successive halvings (brackets) that start ranking at different epochs.

    The configurations are shared out among the brackets in their order (see
    :meth:`Hyperband.brackets` for the formula); give them in random order
    (:func:`regfn.search.sample`) so that no bracket gets one corner of a
    grid. Each bracket is a :func:`successive_halving` with the same
    ``eta`` whose first rung is ``min_epochs * eta**(s_max - s)``; rows say
    their ``bracket``.

    Raises:
        ValueError, TypeError: for a metric not listed, ``eta < 2``, ``min_epochs < 1``.
    """
    return Hyperband(metric, min_epochs, eta)


def pbt(
    interval: int,
    quantile: float = 0.25,
    perturb: Sequence[float] = (0.8, 1.2),
    *,
    key: Tensor,
    metric: str = "val_loss",
    names: Sequence[str] | None = None,
) -> PBT:
    """Population-based training: every ``interval`` epochs the worst copy the best and perturb.

    After every ``interval`` epochs (not after the last), the configurations
    are ranked by ``metric`` (as in :func:`successive_halving`). Each of the
    bottom ``floor(quantile * K)`` (at least one when ``K >= 2``) copies the
    parameters and optimizer state of a configuration of the top as many,
    chosen with ``key``, takes that configuration's values of ``names`` and
    multiplies each by ``perturb[0]`` or ``perturb[1]`` (chosen with ``key``,
    one half each), clipped into the hyperparameter's range. The copy keeps
    its own dropout and shuffle keys, so its randomness stays its own. All of
    it is tensor work on the vmapped state: nothing recompiles. Same key,
    same run, bit for bit (with ``compile`` fixed).

    Args:
        interval: epochs between exploit steps (>= 1).
        quantile: the fraction that copies, in ``(0, 0.5]``.
        perturb: two factors > 0.
        key: a key (:func:`regfn.random.key`).
        metric: ``"val_loss"``, ``"val_acc"`` or ``"val_mse"``.
        names: the hyperparameters to copy and perturb (default: every float
            hyperparameter the configurations vary, the seed never). Each is
            handed to the program as a per-configuration tensor even when no
            configuration moves it off its default.

    Raises:
        ValueError, TypeError: for a quantile outside ``(0, 0.5]``, a factor
            that is not a positive number, a bad key or interval.
    """
    pair = tuple(perturb) if isinstance(perturb, Sequence) and not isinstance(perturb, str) else perturb
    return PBT(interval, key, quantile, pair, metric, None if names is None else tuple(names))  # type: ignore[arg-type]
