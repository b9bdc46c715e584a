"""What a schedule decides while a sweep trains: the strategies behind ``schedule=``.

The sweep loop (:mod:`regfn._sweep._loop`) trains whatever schedule runs in
the same way: it asks the :class:`Strategy` for its *stages* (sets of
configurations trained together from epoch 0, one after another, each with
its decision epochs), trains a stage's rows to its next decision epoch,
hands the strategy every live configuration's metric there (the mean over
its folds), and carries out the :class:`Decision` it returns: stop some
configurations (their results stay as they stand), copy the state of some
into others, and give some new hyperparameter values. The loop never asks
which strategy runs.

* :class:`Plain`: one stage, no decisions: every row trains to the end (a
  sweep without a schedule);
* :class:`Halving`: successive halving (one stage) and Hyperband (one
  stage per bracket): at each rung the best ``ceil(n / eta)`` continue;
* :class:`Population`: population-based training: at every exploit the
  worst copy the best and perturb their hyperparameters.

A new schedule is a settings class in :mod:`regfn.search` (what the user
passes), a :class:`Strategy` here, and one line in :data:`STRATEGIES`; a
:class:`Strategy` passed as ``schedule=`` runs as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._hparams import HPARAMS, OPTIMIZER_ARGS, HParam
from ..random import fold_in, uniform
from ..search._schedules import PBT, Hyperband, SuccessiveHalving, lower_is_better, schedule_to_dict

__all__ = ["STRATEGIES", "Context", "Decision", "Halving", "Plain", "Population", "Stage", "Strategy", "strategy_of"]

_WHERE = "regfn.sweep"


@dataclass(frozen=True)
class Stage:
    """Configurations trained together from epoch 0, and the epochs (below the last) where the strategy decides."""

    configs: list[int]
    points: list[int]


@dataclass
class Decision:
    """What the loop does at a decision epoch.

    Attributes:
        stop: configurations that stop training now (their results as they stand).
        copy: destination configuration -> source: the destination's rows take
            the source's state (parameters, optimizer state; not the keys),
            fold by fold.
        values: configuration -> new values of hyperparameters (of :attr:`Strategy.names`).
    """

    stop: list[int] = field(default_factory=list)
    copy: dict[int, int] = field(default_factory=dict)
    values: dict[int, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """The sweep a strategy decides for (checked by :meth:`Strategy.check`, bound by :meth:`Strategy.bind`).

    Attributes:
        rows: the validated configurations (every name, defaults filled in).
        given: the names some configuration set.
        registry: every hyperparameter the sweep knows (the registry's and the caller's own).
        optimizer: the optimizer's name.
        task_metric: ``"val_acc"`` or ``"val_mse"``, what the loss's task records.
        validated: whether the configurations are validated (``val=`` or ``cv=``).
        epochs: the sweep's epochs.
        hp: each configuration's hyperparameter tensors ``(configurations,)`` (fold 0's).
    """

    rows: Sequence[Mapping[str, Any]]
    given: Sequence[str]
    registry: Mapping[str, HParam]
    optimizer: str
    task_metric: str
    validated: bool
    epochs: int = 0
    hp: Mapping[str, Tensor] = field(default_factory=dict)


class Strategy:
    """A schedule's decisions (see the module docstring); the base class is :class:`Plain`'s behaviour.

    Attributes:
        metric: the validation metric it ranks by (``None``: it never decides).
        names: hyperparameters it rewrites (handed to the program as tensors).
        stops: whether it stops configurations (the engine then cuts its state by rows).
        copies: whether it copies state between configurations (the engine must allow it).
    """

    metric: str | None = None
    names: tuple[str, ...] = ()
    stops = False
    copies = False

    def check(self, context: Context) -> None:
        """Refuse a sweep this strategy cannot decide for (before anything is built)."""
        if self.metric is None:
            return
        if not context.validated:
            raise ValueError(
                f"{_WHERE}: schedule={self!r} ranks configurations on validation data: pass val= "
                "(e.g. regfn.data.train_val_split) or cv="
            )
        allowed = ["val_loss", context.task_metric]
        if self.metric not in allowed:
            raise ValueError(
                f"{_WHERE}: schedule metric must be one of {allowed} (what this sweep records for its loss), "
                f"got {self.metric!r}"
            )

    def bind(self, context: Context) -> None:
        """Start deciding for this sweep (called once, before :meth:`stages`)."""

    def stages(self, n_configs: int, epochs: int) -> list[Stage]:
        """The stages, in the order they train."""
        return [Stage(list(range(n_configs)), [])]

    def decide(self, stage: int, epoch: int, configs: list[int], values: list[float]) -> Decision:
        """The decision after ``epoch`` of stage ``stage``: ``configs`` are the live configurations
        (ascending), ``values`` their metric (mean over folds)."""
        return Decision()

    def budget(self, stages: Sequence[Stage], epochs: int) -> int:
        """The configuration-epochs the stages will train (for progress): all, when nothing stops."""
        return sum(len(st.configs) for st in stages) * epochs

    def position(self) -> Any:
        """Where the strategy stands (JSON), saved with checkpoints."""
        return None

    def restore(self, position: Any) -> None:
        """Continue from :meth:`position`'s value."""

    def record(self, ended: Sequence[int]) -> dict[str, Any] | None:
        """What the result keeps (``result.schedule``), with ``"columns"`` (``name -> one value per
        configuration``) for the rows; ``ended``: the epoch each configuration stopped at. ``None``: nothing."""
        return None

    def describe(self) -> str | None:
        """The strategy in words, for a checkpoint's record (``None``: no schedule)."""
        return None if self.metric is None else repr(self)

    def settings(self) -> dict[str, Any] | None:
        """The schedule as provenance (``None``: no schedule)."""
        return None if self.metric is None else {"kind": type(self).__qualname__, "repr": repr(self)}


class Plain(Strategy):
    """No schedule: every configuration trains to the last epoch."""

    def __repr__(self) -> str:
        return "plain"


def _rank(values: Sequence[float], ids: Sequence[int], metric: str) -> list[int]:
    """``ids`` best first by ``values`` (non-finite last; ties by configuration index)."""
    sign = 1.0 if lower_is_better(metric) else -1.0

    def key(j: int) -> tuple[bool, float, int]:
        v = values[j]
        bad = not math.isfinite(v)
        return (bad, 0.0 if bad else sign * v, ids[j])

    return [ids[j] for j in sorted(range(len(ids)), key=key)]


class _FromSettings(Strategy):
    """A strategy of one of regfn.search's schedules: described and recorded as its settings."""

    def __init__(self, settings: Any):
        self.settings_ = settings
        self.metric = settings.metric

    def __repr__(self) -> str:
        return repr(self.settings_)

    def settings(self) -> dict[str, Any] | None:
        return schedule_to_dict(self.settings_)


class Halving(_FromSettings):
    """Successive halving (one stage) or Hyperband (one stage per bracket)."""

    stops = True

    def __init__(self, settings: SuccessiveHalving | Hyperband, brackets: bool):
        super().__init__(settings)
        self.eta, self.brackets = settings.eta, brackets
        self.rung: list[int | None] = []
        self.record_: list[dict[str, Any]] = []

    def stages(self, n_configs: int, epochs: int) -> list[Stage]:
        s = self.settings_
        if not self.brackets:
            self.staged = [Stage(list(range(n_configs)), s.rungs(epochs))]
        else:
            self.staged, start = [], 0
            for n, first in s.brackets(n_configs, epochs):
                rungs = SuccessiveHalving(s.metric, first, s.eta).rungs(epochs)
                self.staged.append(Stage(list(range(start, start + n)), rungs))
                start += n
        if not self.rung:
            self.rung = [None] * n_configs
            self.record_ = [{"configs": st.configs, "rungs": []} for st in self.staged]
        return self.staged

    def decide(self, stage: int, epoch: int, configs: list[int], values: list[float]) -> Decision:
        ranked = _rank(values, configs, self.settings_.metric)
        kept = sorted(ranked[: math.ceil(len(configs) / self.eta)])
        stopped = sorted(ranked[len(kept) :])
        rungs = self.record_[stage]["rungs"]
        for c in stopped:
            self.rung[c] = len(rungs)
        rungs.append({"epoch": epoch, "live": configs, "values": list(values), "kept": kept})
        return Decision(stop=stopped)

    def budget(self, stages: Sequence[Stage], epochs: int) -> int:
        total = 0
        for st in stages:
            n, done = len(st.configs), 0
            for epoch in [*st.points, epochs]:
                total += n * (epoch - done)
                n, done = math.ceil(n / self.eta), epoch
        return total

    def position(self) -> Any:
        return {"rung": self.rung, "brackets": self.record_}

    def restore(self, position: Any) -> None:
        self.rung, self.record_ = list(position["rung"]), list(position["brackets"])

    def record(self, ended: Sequence[int]) -> dict[str, Any] | None:
        bracket = [0] * len(self.rung)
        rung = list(self.rung)
        for b, st in enumerate(self.staged):
            for c in st.configs:
                bracket[c] = b
                if rung[c] is None:
                    rung[c] = len(st.points)
        columns: dict[str, list[Any]] = {"stopped_epoch": list(ended), "rung": rung}
        if self.brackets:
            columns["bracket"] = bracket
        kind = "hyperband" if self.brackets else "successive_halving"
        return {"kind": kind, "metric": self.metric, "eta": self.eta, "brackets": self.record_, "columns": columns}


def _clip(value: float, param: HParam, like: Tensor) -> float:
    """``value`` clipped into ``param``'s range, in ``like``'s dtype (an open end is not reached)."""
    low, high = param.low, param.high
    if high is not None and math.isfinite(high):
        value = min(value, high)
    if low is not None and math.isfinite(low):
        value = max(value, low)
    out = torch.tensor(value, dtype=like.dtype)
    if not param.contains(float(out)):  # an open end, reached in float or by rounding: step inside
        inward = -math.inf if high is not None and float(out) >= high else math.inf
        out = torch.nextafter(out, torch.tensor(inward, dtype=like.dtype))
    return float(out)


class Population(_FromSettings):
    """Population-based training: every ``interval`` epochs the worst copy the best and perturb."""

    copies = True

    def __init__(self, settings: PBT):
        super().__init__(settings)
        self.pbt = settings
        self.sources: list[list[int]] = []
        self.history: dict[str, list[list[float]]] = {}

    def __repr__(self) -> str:
        return f"{self.pbt!r} key={self.pbt.key.tolist()}"  # the key decides the copies: part of the record

    def check(self, context: Context) -> None:
        super().check(context)
        floats = [n for n, p in context.registry.items() if not p.integer]
        if self.pbt.names is None:
            self.names = tuple(n for n in context.given if n in floats and len({r[n] for r in context.rows}) > 1)
            return
        for name in self.pbt.names:
            if name not in floats:
                raise ValueError(
                    f"{_WHERE}: pbt names must be float hyperparameters of this sweep, one of {floats}, got {name!r}"
                )
            if context.registry[name].target == "optimizer" and name not in OPTIMIZER_ARGS[context.optimizer]:
                raise ValueError(
                    f"{_WHERE}: pbt names: optimizer {context.optimizer!r} has no {name}; "
                    f"it takes {', '.join(OPTIMIZER_ARGS[context.optimizer])}"
                )
        self.names = tuple(dict.fromkeys(self.pbt.names))

    def bind(self, context: Context) -> None:
        self.registry, self.like = context.registry, context.hp
        self.epochs = context.epochs
        self.history = {n: [context.hp[n].double().cpu().tolist()] for n in self.names}

    def stages(self, n_configs: int, epochs: int) -> list[Stage]:
        self.n = n_configs
        return [Stage(list(range(n_configs)), list(range(self.pbt.interval, epochs, self.pbt.interval)))]

    def decide(self, stage: int, epoch: int, configs: list[int], values: list[float]) -> Decision:
        s, names, n = self.pbt, self.names, self.n
        n_q = max(1, math.floor(s.quantile * n)) if n >= 2 else 0
        ranked = _rank(values, configs, s.metric)
        top, bottom = ranked[:n_q], sorted(ranked[len(ranked) - n_q :]) if n_q else []
        key = fold_in(s.key, epoch)
        pick = uniform(fold_in(key, 0), (max(n_q, 1),), dtype=torch.float64).tolist()
        coin = uniform(fold_in(key, 1), (max(n_q, 1), max(len(names), 1)), dtype=torch.float64).tolist()
        source = list(range(n))
        now = {name: list(self.history[name][-1]) for name in names}
        decision = Decision()
        for q, dst in enumerate(bottom):
            src = top[min(int(pick[q] * n_q), n_q - 1)]
            source[dst] = src
            decision.copy[dst] = src
            factors = [s.perturb[0] if coin[q][c] < 0.5 else s.perturb[1] for c in range(len(names))]
            new = {
                name: _clip(self.history[name][-1][src] * f, self.registry[name], self.like[name])
                for name, f in zip(names, factors, strict=True)
            }
            decision.values[dst] = new
            for name, v in new.items():
                now[name][dst] = v
        self.sources.append(source)
        for name in names:
            self.history[name].append(now[name])
        return decision

    def position(self) -> Any:
        return {"sources": self.sources, "history": self.history}

    def restore(self, position: Any) -> None:
        self.sources = [list(x) for x in position["sources"]]
        self.history = {n: [list(h) for h in position["history"][n]] for n in self.names}

    def record(self, ended: Sequence[int]) -> dict[str, Any] | None:
        names, ids = self.names, range(self.n)
        lineage = [[s[i] for s in self.sources] for i in ids]
        per_config = [{name: [h[i] for h in self.history[name]] for name in names} for i in ids]
        return {
            "kind": "pbt",
            "metric": self.metric,
            "interval": self.pbt.interval,
            "epochs": [0, *range(self.pbt.interval, self.epochs, self.pbt.interval)],
            "names": list(names),
            "sources": self.sources,
            "hp": {name: [[h[i] for h in self.history[name]] for i in ids] for name in names},
            "columns": {"lineage": lineage, "hp_schedule": per_config},
        }


STRATEGIES: Mapping[type, Callable[[Any], Strategy]] = {
    SuccessiveHalving: lambda s: Halving(s, brackets=False),
    Hyperband: lambda s: Halving(s, brackets=True),
    PBT: Population,
}
"""The strategy of each of regfn.search's schedule settings."""


def strategy_of(schedule: Any) -> Strategy:
    """The strategy that runs ``schedule=`` (``None``: :class:`Plain`).

    Raises:
        TypeError: for anything but a schedule of :mod:`regfn.search` or a :class:`Strategy`.
    """
    if schedule is None:
        return Plain()
    if isinstance(schedule, Strategy):
        return schedule
    make = STRATEGIES.get(type(schedule))
    if make is None:
        raise TypeError(
            f"{_WHERE}: schedule must be made by regfn.search.successive_halving, hyperband or pbt, "
            f"got {type(schedule).__name__} {schedule!r}"
        )
    return make(schedule)


def context_registry(extra: Mapping[str, HParam]) -> dict[str, HParam]:
    """The registry a strategy sees: regfn's hyperparameters and the caller's own."""
    return {**HPARAMS, **extra}
