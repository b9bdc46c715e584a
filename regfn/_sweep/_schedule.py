"""Schedules inside one sweep: successive halving, Hyperband and population-based training.

:func:`regfn.sweep` hands a sweep with ``schedule=`` to this module after it
has validated the configurations and set up the engine. The runner drives
the engine through :meth:`~regfn._sweep._engine.Engine.start`,
:meth:`~regfn._sweep._engine.Engine.advance` and
:meth:`~regfn._sweep._engine.Engine.params` in stretches between decision
epochs, evaluates with the engine's shared evaluation, and between
stretches works on the rows of the chunks' state (every leaf of a
:class:`~regfn._sweep._engine.ChunkState` tree has one row per
configuration):

* successive halving **selects** the survivors' rows and regroups them into
  chunks of bucket sizes (compiled: powers of two and three times them,
  :func:`regfn._sweep._driver._bucket`), so a schedule compiles one program
  per bucket it meets, at most one per rung, shared with any other sweep of
  that size; a stopped configuration is evaluated where it stopped;
* population-based training **copies** rows (parameters and optimizer state,
  not the keys) from the best configurations into the worst and rewrites
  their hyperparameter tensors: the chunks keep their size and nothing
  recompiles.

Because every configuration's keys, masks and mini-batch orders depend only
on its own seed and the epoch, a configuration trains the same whichever
others share its chunk. Under cross-validation (``cv=k``) a configuration is
``k`` rows, one per fold: the schedules rank configurations by their mean
over the folds, and stop, keep or copy all ``k`` rows of a configuration
together (a PBT copy takes each fold's row from the same fold of the source).

Under torch.distributed the runner on each rank owns the rows ``r`` with
``r % world_size == rank`` for the whole schedule (a row never moves): it
starts, trains, regroups, evaluates and finishes only those (possibly none).
At every decision the ranks share their rows' metric values
(:func:`regfn._sweep._distributed.share`), so every rank ranks the same
values and takes the same decisions; a PBT copy gets its source's state
from the source's rank, and every rank computes the new hyperparameter
values from the history. At the end the ranks' results are gathered, and
equal one process's (bit for bit eager).

The results table is the driver's, with columns
added: ``stopped_epoch`` and ``rung`` (and ``bracket`` for Hyperband), or
``lineage`` and ``hp_schedule`` for PBT; ``result.schedule`` holds the
record that :func:`regfn.plot.plot_rungs` and :func:`regfn.plot.plot_pbt` draw.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree

from .._hparams import HPARAMS, OPTIMIZER_ARGS, HParam
from ..losses import Loss
from ..random import fold_in, uniform
from ..results import SweepResult
from ..search._schedules import PBT, Hyperband, Schedule, SuccessiveHalving, lower_is_better
from . import _distributed
from ._checkpoint import Checkpoint, flatten_tree
from ._engine import ChunkState, Engine

__all__ = ["Runner", "Scheduled", "prepare"]

_WHERE = "regfn.sweep"
_OWN_KEYS = ("dkey", "skey")  # vmap engine state entries a PBT copy leaves alone: the configuration's own keys


def prepare(
    schedule: Any,
    rows: Sequence[Mapping[str, Any]],
    given: Sequence[str],
    extra: Mapping[str, HParam],
    loss: Loss,
    validated: bool,
    optimizer: str,
    engine: str,
) -> Scheduled:
    """Check ``schedule`` against the sweep (before anything is built) and return its runner's settings.

    Raises:
        TypeError: for a schedule that is not one of regfn.search's.
        ValueError: without validation data (``validated``: ``val`` or ``cv``), for a metric the sweep does
            not record, for PBT names that are not float hyperparameters of
            the sweep, or PBT on an engine other than ``"vmap"``.
    """
    if not isinstance(schedule, SuccessiveHalving | Hyperband | PBT):
        raise TypeError(
            f"{_WHERE}: schedule must be made by regfn.search.successive_halving, hyperband or pbt, "
            f"got {type(schedule).__name__} {schedule!r}"
        )
    if not validated:
        raise ValueError(
            f"{_WHERE}: schedule={schedule!r} ranks configurations on validation data: pass val= "
            "(e.g. regfn.data.train_val_split) or cv="
        )
    task_metric = "val_mse" if loss.resolved_task == "regression" else "val_acc"
    allowed = ["val_loss", task_metric]
    if schedule.metric not in allowed:
        raise ValueError(
            f"{_WHERE}: schedule metric must be one of {allowed} (what this sweep records for its loss), "
            f"got {schedule.metric!r}"
        )
    names: tuple[str, ...] = ()
    if isinstance(schedule, PBT):
        if engine != "vmap":
            raise ValueError(f"{_WHERE}: schedule=pbt(...) copies the vmap engine's state; use engine='vmap'")
        registry = {**HPARAMS, **extra}
        floats = [n for n, p in registry.items() if not p.integer]
        if schedule.names is None:
            names = tuple(n for n in given if n in floats and len({r[n] for r in rows}) > 1)
        else:
            for name in schedule.names:
                if name not in floats:
                    raise ValueError(
                        f"{_WHERE}: pbt names must be float hyperparameters of this sweep, one of {floats}, "
                        f"got {name!r}"
                    )
                if registry[name].target == "optimizer" and name not in OPTIMIZER_ARGS[optimizer]:
                    raise ValueError(
                        f"{_WHERE}: pbt names: optimizer {optimizer!r} has no {name}; "
                        f"it takes {', '.join(OPTIMIZER_ARGS[optimizer])}"
                    )
            names = tuple(dict.fromkeys(schedule.names))
    return Scheduled(schedule, names, {**HPARAMS, **extra})


@dataclass(frozen=True)
class Scheduled:
    """A checked schedule: what it adds to the program's spec, its runner, and the columns it adds."""

    schedule: Schedule
    names: tuple[str, ...]  # PBT: the hyperparameters it copies and perturbs
    registry: Mapping[str, HParam]

    def describe(self) -> str:
        """The schedule in words, for a checkpoint's record (PBT's key included: it decides the copies)."""
        text = repr(self.schedule)
        if isinstance(self.schedule, PBT):
            text += f" key={self.schedule.key.tolist()}"
        return text

    def optimizer_args(self, live: tuple[str, ...], optimizer: str) -> tuple[str, ...]:
        """The optimizer arguments handed over as tensors: ``live`` and any PBT perturbs.

        The program builds an argument nobody moves off its default in as a
        Python number; one that PBT perturbs must be a tensor for the new
        values to reach the step.
        """
        more = [n for n in self.names if n in OPTIMIZER_ARGS[optimizer] and n not in live]
        return tuple(n for n in OPTIMIZER_ARGS[optimizer] if n in live or n in more)

    def annotate(self, result: SweepResult, record: dict[str, Any]) -> SweepResult:
        """Add the schedule's columns to the rows and its record to ``result.schedule``."""
        for name, values in record.pop("columns").items():
            for row, value in zip(result.rows, values, strict=True):
                row[name] = value
        result.schedule = record
        return result


# ----------------------------------------------------------------- groups of rows


@dataclass
class _Group:
    """One chunk in training: the configurations it holds (``ids``, the rest is padding), state and hp."""

    ids: list[int]
    state: ChunkState
    hp: dict[str, Tensor]


@dataclass
class _Resumed:
    """A checkpointed schedule as it was saved: where it stood (``position``) and its chunks."""

    position: dict[str, Any]
    groups: list[_Group]


def _rows(tree: Any, index: Tensor) -> Any:
    return _pytree.tree_map(lambda t: t[index] if isinstance(t, Tensor) else t, tree)


def _cat(trees: Sequence[Any]) -> Any:
    leaves = [_pytree.tree_flatten(t) for t in trees]
    spec = leaves[0][1]
    joined = [
        torch.cat(parts) if isinstance(parts[0], Tensor) else parts[0]
        for parts in zip(*(flat for flat, _ in leaves), strict=True)
    ]
    return _pytree.tree_unflatten(joined, spec)


def _pad_rows(tree: Any, size: int) -> Any:
    """Every leaf padded to ``size`` rows by repeating its last row (padding is trained, then dropped)."""

    def pad(t: Any) -> Any:
        if not isinstance(t, Tensor) or t.shape[0] == size:
            return t
        return torch.cat([t, t[-1:].expand(size - t.shape[0], *t.shape[1:])])

    return _pytree.tree_map(pad, tree)


def _rank(values: Tensor, ids: Sequence[int], metric: str) -> list[int]:
    """``ids`` best first by ``values`` (non-finite last; ties by configuration index)."""
    sign = 1.0 if lower_is_better(metric) else -1.0
    listed = values.double().tolist()

    def key(j: int) -> tuple[bool, float, int]:
        v = listed[j]
        bad = not math.isfinite(v)
        return (bad, 0.0 if bad else sign * v, ids[j])

    return [ids[j] for j in sorted(range(len(ids)), key=key)]


# ----------------------------------------------------------------- the runner


class Runner:
    """Trains the configurations of one sweep call under a schedule; returns what the driver's table takes."""

    def __init__(
        self,
        scheduled: Scheduled,
        engine: Engine,
        hp_all: dict[str, Tensor],
        limit: int,
        *,
        bucketed: bool,
        quiet: bool,
        folds: int = 1,
        world: _distributed.World = _distributed.SINGLE,
        everywhere: bool = True,
    ):
        self.scheduled, self.engine, self.hp_all = scheduled, engine, hp_all
        # Under torch.distributed, row r lives on rank r % world.size for the whole schedule; the ranks
        # share their rows' metrics at every decision and their results at the end (everywhere: on every rank).
        self.world, self.everywhere = world, everywhere
        self.limit, self.bucketed, self.quiet = limit, bucketed, quiet
        self.k = next(iter(hp_all.values())).shape[0]  # rows: configurations x folds
        self.folds = folds  # rows per configuration (row c * folds + f: configuration c, fold f)
        self.n_configs = self.k // folds
        job = engine.job
        self.epochs = job.epochs
        self.points = [e for e in range(1, job.epochs + 1) if e % job.log_every == 0 or e == job.epochs]
        self.column = {e: i for i, e in enumerate(self.points)}
        self.curves: dict[str, Tensor] = {}
        self.final: dict[str, Tensor] = {}
        self.zero = torch.zeros(self.k)
        self.tiny = torch.zeros(self.k)
        self.finite = torch.ones(self.k, dtype=torch.bool)
        self.ended = torch.full((self.k,), job.epochs, dtype=torch.int64)
        self.sizes: list[int] = []
        self.warm: set[int] = set()
        self.padded = 0
        self.config_epochs = 0
        self.compile_s = 0.0
        self.bar: Any = None
        self.store: Checkpoint | None = None  # set by the driver for checkpoint=DIR
        self.position: dict[str, Any] = {}  # where the schedule stands, saved with each checkpoint (JSON)

    @property
    def job(self) -> Any:
        return self.engine.job

    def size(self, n: int) -> int:
        """The chunk size for ``n`` live configurations (a bucket size when compiled)."""
        from ._driver import _bucket

        return _bucket(self.limit, n) if self.bucketed else min(self.limit, n)

    def rows_of(self, configs: Sequence[int]) -> list[int]:
        """The rows of the configurations ``configs`` (each one's folds, in order)."""
        return [c * self.folds + f for c in configs for f in range(self.folds)]

    def per_config(self, values: Tensor) -> Tensor:
        """``(rows,)`` values of whole configurations as ``(configs,)``: each configuration's fold 0."""
        return values[:: self.folds]

    def mine(self, rows: Sequence[int]) -> list[int]:
        """The rows of ``rows`` this rank trains (row ``r`` on rank ``r % world_size``; all on one process)."""
        return [r for r in rows if r % self.world.size == self.world.rank]

    def _share_of(self, total: int) -> int:
        """This rank's share of ``total`` configuration-epochs (for its progress bar: its rows' part)."""
        return math.ceil(total * len(self.mine(range(self.k))) / self.k)

    # -- set-up

    def warm_up(self, counts: Sequence[int]) -> None:
        """Compile every chunk size the schedule will use, before any training (engine fallbacks happen here)."""
        from ._driver import _Driver, _pad

        if not self.engine.needs_warm_up:
            return
        for size in dict.fromkeys(self.size(n) for n in counts if n > 0):
            if size in self.warm:
                continue
            driver = _Driver(self.engine, self.hp_all, size, adaptive=False, quiet=True)
            t0 = time.perf_counter()
            driver._warm_up(_pad({n: v[:size] for n, v in self.hp_all.items()}, size))
            self.compile_s += time.perf_counter() - t0
            if type(driver.engine) is not type(self.engine) and self.warm:
                raise RuntimeError(f"{_WHERE}: the engine changed while warming up chunks of {size}")
            self.engine = driver.engine
            self.warm.add(size)
            if not self.engine.needs_warm_up:
                return

    def start(self, rows: Sequence[int]) -> list[_Group]:
        """Fresh chunks for this rank's rows of ``rows`` (ascending); none when it has none of them."""
        from ._driver import _pad

        ids = self.mine(rows)
        if not ids:
            return []
        size = self.size(len(ids))
        groups = []
        for i in range(0, len(ids), size):
            part = list(ids[i : i + size])
            index = torch.tensor(part, device=self.job.device)
            hp = _pad({n: v[index] for n, v in self.hp_all.items()}, size)
            groups.append(_Group(part, self.engine.start(hp), hp))
        self._count(groups)
        return groups

    def regroup(self, groups: Sequence[_Group], keep: Sequence[int]) -> list[_Group]:
        """The rows ``keep`` (ascending) that ``groups`` hold, regrouped into chunks of one bucket size.

        Under torch.distributed the rank meets this size only now: it is
        warmed up (compiled) here; on one process every size was warmed before
        training, and this is a no-op.
        """
        wanted = set(keep)
        trees, hps, ids = [], [], []
        for g in groups:
            pos = [j for j, i in enumerate(g.ids) if i in wanted]
            if not pos:
                continue
            index = torch.tensor(pos, device=self.job.device)
            trees.append(_rows(g.state.tree, index))
            hps.append(_rows(g.hp, index))
            ids += [g.ids[j] for j in pos]
        if not ids:
            return []
        self.warm_up([len(ids)])
        epoch = groups[0].state.epoch
        tree, hp = _cat(trees), _cat(hps)
        size = self.size(len(ids))
        out = []
        for i in range(0, len(ids), size):
            part = torch.arange(i, min(i + size, len(ids)), device=self.job.device)
            out.append(
                _Group(
                    ids[i : i + size],
                    ChunkState(_pad_rows(_rows(tree, part), size), epoch),
                    _pad_rows(_rows(hp, part), size),
                )
            )
        self._count(out)
        return out

    def _count(self, groups: Sequence[_Group]) -> None:
        if not groups:
            return
        size = len(groups[0].hp["lr"])
        self.sizes.append(size)
        self.padded += size * len(groups)

    # -- training and evaluation

    def _curve(self, name: str) -> Tensor:
        if name not in self.curves:
            self.curves[name] = torch.full((self.k, len(self.points)), math.nan)
        return self.curves[name]

    def advance(self, groups: Sequence[_Group], until: int) -> None:
        """Train every group on to epoch ``until``, filling the curves at the log points.

        With a checkpoint, the groups advance together in stretches that end
        at multiples of ``checkpoint_every``, and everything is saved after
        each stretch (with :attr:`position`, where the schedule stands).
        """
        from ._driver import _ChunkBar

        every = self.store.every if self.store is not None else self.epochs
        while groups and min(g.state.epoch for g in groups) < until:
            stop = min(until, (min(g.state.epoch for g in groups) // every + 1) * every)
            for g in groups:
                if g.state.epoch < stop:
                    self.config_epochs += len(g.hp["lr"]) * (stop - g.state.epoch)
                    bar = _ChunkBar(self.bar, len(g.ids))
                    g.state = self.engine.advance(g.state, g.hp, stop, self._logger(g), bar)
            if self.store is not None and stop < self.epochs:
                self.save(groups)

    def _logger(self, g: _Group) -> Any:
        """The ``log`` of group ``g``: its rows of the curves at a log point."""
        rows, n = torch.tensor(g.ids), len(g.ids)

        def log(done: int, value: Tensor, params: dict[str, Tensor]) -> None:
            column = self.column[done]
            self._curve("loss")[rows, column] = value.detach()[:n].float().cpu()
            for name, v in self.engine.val_metrics(params, g.hp).items():
                if not name.startswith("_"):
                    self._curve(f"val_{name}")[rows, column] = v[:n].float().cpu()

        return log

    def metric(self, groups: Sequence[_Group]) -> tuple[list[int], Tensor]:
        """The schedule's metric of every configuration in ``groups`` on the validation data: (ids, values)."""
        name = self.scheduled.schedule.metric.removeprefix("val_")
        ids, values = [], [torch.zeros(0, dtype=torch.float64)]
        for g in groups:
            out = self.engine.val_metrics(self.engine.params(g.state), g.hp)
            ids += g.ids
            values.append(out[name][: len(g.ids)].double().cpu())
        return ids, torch.cat(values)

    def config_metric(self, groups: Sequence[_Group]) -> tuple[list[int], Tensor]:
        """The schedule's metric of every live configuration: (configurations, mean over folds), ascending.

        Under torch.distributed each rank evaluates its own rows and the
        ranks share the values (a configuration's folds may sit on different
        ranks), so every rank ranks the same values and takes the same decisions.
        """
        ids, values = self.metric(groups)
        by_row = dict(zip(ids, values.tolist(), strict=True))
        if self.world.distributed:
            shared = _distributed.share(self.world, "sharing the schedule's metric", [ids, values.tolist()])
            by_row = {r: v for (rows, vals), _ in shared or [] for r, v in zip(rows, vals, strict=True)}
        if self.folds == 1:
            configs = sorted(by_row)
            return configs, torch.tensor([by_row[c] for c in configs], dtype=torch.float64)
        configs = sorted({i // self.folds for i in by_row})
        means = [sum(by_row[r] for r in self.rows_of([c])) / self.folds for c in configs]
        return configs, torch.tensor(means, dtype=torch.float64)

    def finish(self, groups: Sequence[_Group], which: Sequence[int]) -> None:
        """Record the final metrics of the configurations ``which`` where their groups stand now."""
        from ._driver import _sparsity

        chosen = set(which)
        engine = self.engine
        for g in groups:
            pos = [j for j, i in enumerate(g.ids) if i in chosen]
            if not pos:
                continue
            params = self.engine.params(g.state)
            final = dict(engine.train_metrics(params, g.hp))
            final.update({f"val_{n}": v for n, v in engine.val_metrics(params, g.hp).items()})
            zero, tiny = _sparsity(params)
            finite = torch.stack([torch.isfinite(p.flatten(1)).all(1) for p in params.values()]).all(0)
            index, rows = torch.tensor(pos), torch.tensor([g.ids[j] for j in pos])
            for name, v in final.items():
                if name not in self.final:
                    self.final[name] = torch.full((self.k,), math.nan)
                self.final[name][rows] = v.detach().cpu().float()[index]
            self.zero[rows], self.tiny[rows] = zero.cpu()[index], tiny.cpu()[index]
            self.finite[rows] = finite.cpu()[index]
            self.ended[rows] = g.state.epoch

    # -- checkpoints

    _ARRAYS = ("zero", "tiny", "finite", "ended")

    def save(self, groups: Sequence[_Group]) -> None:
        """Save every group's state and hyperparameters, the results so far and :attr:`position`."""
        if self.store is None:
            return
        tensors: dict[str, Tensor] = {}
        for i, g in enumerate(groups):
            tensors.update(flatten_tree(f"g{i}/tree", g.state.tree))
            tensors.update({f"g{i}/hp/{n}": v for n, v in g.hp.items()})
        tensors.update({f"curves/{n}": v for n, v in self.curves.items()})
        tensors.update({f"final/{n}": v for n, v in self.final.items()})
        tensors.update({name: getattr(self, name) for name in self._ARRAYS})
        meta = {
            "position": self.position,
            "groups": [{"ids": g.ids, "epoch": g.state.epoch} for g in groups],
            "hp": list(groups[0].hp) if groups else [],
            "curves": list(self.curves),
            "final": list(self.final),
            "counters": {"sizes": self.sizes, "padded": self.padded, "config_epochs": self.config_epochs},
        }
        self.store.save_schedule(tensors, meta)

    def save_done(self, record: dict[str, Any]) -> None:
        """Save the finished schedule: its results and ``record``, so that calling the sweep again trains nothing."""
        self.position = {"phase": "done", "record": record}
        self.save([])

    def restore(self) -> _Resumed | None:
        """Where a checkpointed schedule stood (its results so far restored into the runner), or ``None``."""
        loaded = self.store.load_schedule() if self.store is not None else None
        if loaded is None or self.store is None:
            return None
        tensors, meta = loaded
        self.curves = {n: tensors[f"curves/{n}"] for n in meta["curves"]}
        self.final = {n: tensors[f"final/{n}"] for n in meta["final"]}
        for name in self._ARRAYS:
            setattr(self, name, tensors[name])
        counters = meta["counters"]
        self.sizes, self.padded, self.config_epochs = (
            list(counters["sizes"]),
            counters["padded"],
            counters["config_epochs"],
        )
        groups = []
        for i, info in enumerate(meta["groups"]):
            hp = {n: tensors[f"g{i}/hp/{n}"].to(self.job.device) for n in meta["hp"]}
            tree = self.store.fill(self.engine.start(hp).tree, tensors, f"g{i}/tree", self.store.schedule_path)
            groups.append(_Group(list(info["ids"]), ChunkState(tree, int(info["epoch"])), hp))
        return _Resumed(meta["position"], groups)

    # -- schedules

    def halving(
        self, stage: int, ids: list[int], rungs: Sequence[int], eta: int, resumed: _Resumed | None, done: dict[str, Any]
    ) -> dict[str, Any]:
        """Successive halving of the configurations ``ids`` (from where ``resumed`` stands, if given).

        Returns its rungs and each configuration's rung index. ``done`` is
        what the earlier stages left (saved with every checkpoint).
        """
        metric = self.scheduled.schedule.metric
        if resumed is None:
            groups, live, record, rung_of, first = self.start(self.rows_of(ids)), list(ids), [], {}, 0
        else:
            pos = resumed.position
            groups, live, record, first = resumed.groups, list(pos["live"]), list(pos["record"]), int(pos["rung_index"])
            rung_of = {int(c): int(r) for c, r in pos["rung_of"]}
        for r in range(first, len(rungs) + 1):
            self.position = {"phase": "halving", "stage": stage, "rung_index": r, "live": live, "record": record}
            self.position.update(rung_of=sorted(rung_of.items()), **done)
            if r == len(rungs):
                break
            epoch = rungs[r]
            self.advance(groups, epoch)
            order_ids, values = self.config_metric(groups)
            ranked = _rank(values, order_ids, metric)
            kept = sorted(ranked[: math.ceil(len(live) / eta)])
            stopped = sorted(ranked[len(kept) :])
            value_of = dict(zip(order_ids, values.tolist(), strict=True))
            record.append({"epoch": epoch, "live": live, "values": [value_of[i] for i in live], "kept": kept})
            self.finish(groups, self.rows_of(stopped))
            rung_of.update(dict.fromkeys(stopped, r))
            groups = self.regroup(groups, self.rows_of(kept))
            live = kept
        self.advance(groups, self.epochs)
        self.finish(groups, self.rows_of(live))
        rung_of.update(dict.fromkeys(live, len(rungs)))
        return {"rungs": record, "rung_of": rung_of}

    def stages(self) -> list[tuple[list[int], list[int], int]]:
        """The successive halvings to run: (configurations, rungs, eta) each (Hyperband: one per bracket)."""
        schedule = self.scheduled.schedule
        if isinstance(schedule, SuccessiveHalving):
            return [(list(range(self.n_configs)), schedule.rungs(self.epochs), schedule.eta)]
        if not isinstance(schedule, Hyperband):
            raise TypeError(f"{_WHERE}: no halvings for a {type(schedule).__name__} schedule")
        out, start = [], 0
        for n, first in schedule.brackets(self.n_configs, self.epochs):
            rungs = SuccessiveHalving(schedule.metric, first, schedule.eta).rungs(self.epochs)
            out.append((list(range(start, start + n)), rungs, schedule.eta))
            start += n
        return out

    def run_halving(self) -> dict[str, Any]:
        schedule = self.scheduled.schedule
        if isinstance(schedule, PBT):
            raise TypeError(f"{_WHERE}: PBT runs in run_pbt, not in the halving loop")
        resumed = self.restore()
        if resumed is not None and resumed.position["phase"] == "done":
            return dict(resumed.position["record"])
        stages = self.stages()
        counts, total = [], 0
        for ids, rungs, eta in stages:
            n, done = len(ids), 0
            for epoch in [*rungs, self.epochs]:
                counts.append(n * self.folds)
                total += n * self.folds * (epoch - done)
                n, done = math.ceil(n / eta), epoch
        if self.world.distributed:  # a rank knows only its first chunks' sizes; regroup warms up the others
            counts = [len(self.mine(self.rows_of(ids))) for ids, _, _ in stages]
        self.warm_up(counts)
        record: dict[str, Any] = {"kind": "hyperband" if isinstance(schedule, Hyperband) else "successive_halving"}
        record.update(metric=schedule.metric, eta=schedule.eta, brackets=[])
        rung = [0] * self.n_configs
        bracket = [0] * self.n_configs
        first = 0
        if resumed is not None:  # the stages finished before the interruption, and where the next one stands
            pos = resumed.position
            record["brackets"], rung, bracket, first = (
                list(pos["brackets"]),
                list(pos["rung"]),
                list(pos["bracket"]),
                pos["stage"],
            )
        with self._bar(self._share_of(total)):
            for b in range(first, len(stages)):
                ids, rungs, eta = stages[b]
                earlier = {"brackets": record["brackets"], "rung": rung, "bracket": bracket}
                out = self.halving(b, ids, rungs, eta, resumed if b == first else None, earlier)
                for i, r in out["rung_of"].items():
                    rung[i], bracket[i] = r, b
                record["brackets"].append({"configs": ids, "rungs": out["rungs"]})
        self.merge()
        columns: dict[str, list[Any]] = {"stopped_epoch": self.per_config(self.ended).tolist(), "rung": rung}
        if isinstance(schedule, Hyperband):
            columns["bracket"] = bracket
        record["columns"] = columns
        self.save_done(record)
        return record

    def run_pbt(self) -> dict[str, Any]:
        schedule = self.scheduled.schedule
        if not isinstance(schedule, PBT):
            raise TypeError(f"{_WHERE}: run_pbt needs a PBT schedule, got {type(schedule).__name__}")
        names, registry = self.scheduled.names, self.scheduled.registry
        resumed = self.restore()
        if resumed is not None and resumed.position["phase"] == "done":
            return dict(resumed.position["record"])
        self.warm_up([len(self.mine(range(self.k)))])
        ids = list(range(self.n_configs))
        n_q = max(1, math.floor(schedule.quantile * self.n_configs)) if self.n_configs >= 2 else 0
        exploits = list(range(schedule.interval, self.epochs, schedule.interval))
        history = {n: [self.per_config(self.hp_all[n]).double().cpu().clone()] for n in names}
        sources: list[list[int]] = []
        first = 0
        if resumed is not None:  # the exploits made before the interruption
            pos = resumed.position
            first, sources = int(pos["exploit"]), [list(s) for s in pos["sources"]]
            history = {n: [torch.tensor(h, dtype=torch.float64) for h in pos["history"][n]] for n in names}
        with self._bar(self._share_of(self.k * self.epochs)):
            groups = self.start(list(range(self.k))) if resumed is None else resumed.groups
            place = {r: (gi, j) for gi, g in enumerate(groups) for j, r in enumerate(g.ids)}
            for j in range(first, len(exploits) + 1):
                self.position = {"phase": "pbt", "exploit": j, "sources": sources}
                self.position["history"] = {n: [h.tolist() for h in history[n]] for n in names}
                if j == len(exploits):
                    break
                epoch = exploits[j]
                self.advance(groups, epoch)
                order_ids, values = self.config_metric(groups)
                ranked = _rank(values, order_ids, schedule.metric)
                top, bottom = ranked[:n_q], sorted(ranked[len(ranked) - n_q :]) if n_q else []
                key = fold_in(schedule.key, epoch)
                pick = uniform(fold_in(key, 0), (max(n_q, 1),), dtype=torch.float64).tolist()
                coin = uniform(fold_in(key, 1), (max(n_q, 1), max(len(names), 1)), dtype=torch.float64).tolist()
                source = list(ids)
                # Every rank computes every copy and new value (the hyperparameters' current values are the
                # history's last ones); each writes its own rows.
                now = {n: history[n][-1].clone() for n in names}
                values_of: dict[int, list[Tensor]] = {}
                for q, dst in enumerate(bottom):
                    src = top[min(int(pick[q] * n_q), n_q - 1)]
                    source[dst] = src
                    factors = [
                        schedule.perturb[0] if coin[q][c] < 0.5 else schedule.perturb[1] for c in range(len(names))
                    ]
                    values_of[dst] = [
                        _clip(float(history[n][-1][src]) * f, registry[n], self.hp_all[n])
                        for n, f in zip(names, factors, strict=True)
                    ]
                    for n, v in zip(names, values_of[dst], strict=True):
                        now[n][dst] = float(v)
                pairs = [
                    (row_src, row_dst)  # fold f from the source's fold f
                    for dst in bottom
                    for row_src, row_dst in zip(self.rows_of([source[dst]]), self.rows_of([dst]), strict=True)
                ]
                self._copy(groups, place, pairs)
                for row_dst in self.mine([d for _, d in pairs]):
                    gd, rd = place[row_dst]
                    for n, v in zip(names, values_of[row_dst // self.folds], strict=True):
                        groups[gd].hp[n][rd] = v
                sources.append(source)
                for n in names:
                    history[n].append(now[n])
            self.advance(groups, self.epochs)
            self.finish(groups, list(range(self.k)))
        self.merge()
        lineage = [[s[i] for s in sources] for i in ids]
        schedules = {n: torch.stack(h, 1) for n, h in history.items()}
        hp_rows = [{n: schedules[n][i].tolist() for n in names} for i in ids]
        record = {
            "kind": "pbt",
            "metric": schedule.metric,
            "interval": schedule.interval,
            "epochs": [0, *exploits],
            "names": list(names),
            "sources": sources,
            "hp": {n: v.tolist() for n, v in schedules.items()},
            "columns": {"lineage": lineage, "hp_schedule": hp_rows},
        }
        self.save_done(record)
        return record

    def _copy(
        self, groups: Sequence[_Group], place: Mapping[int, tuple[int, int]], pairs: list[tuple[int, int]]
    ) -> None:
        """Each destination row takes its source row's state: parameters and optimizer state, not the keys.

        ``place`` maps this rank's rows to (group, position). Under
        torch.distributed a source may live on another rank: the ranks first
        share their source rows' state (every leaf, as tensors), then each
        writes its own destination rows.
        """
        if not pairs:
            return
        sources = sorted({s for s, _ in pairs} & set(place))
        state = [self._state_leaves(g) for g in groups]
        leaves: dict[str, list[Tensor]] = {}
        for row in sources:
            gi, j = place[row]
            for path, leaf in state[gi].items():
                leaves.setdefault(path, []).append(leaf[j])
        stacked = {path: torch.stack(rows) for path, rows in leaves.items()}
        shared = _distributed.share(self.world, "sharing the rows PBT copies", sources, stacked)
        found: dict[int, tuple[dict[str, Tensor], int]] = {}
        for rows, tensors in shared or []:
            found.update({row: (tensors, i) for i, row in enumerate(rows)})
        for row_src, row_dst in pairs:
            if row_dst not in place:
                continue
            tensors, i = found[row_src]
            gd, rd = place[row_dst]
            for path, leaf in state[gd].items():
                leaf[rd] = tensors[path][i].to(leaf.device)

    @staticmethod
    def _state_leaves(group: _Group) -> dict[str, Tensor]:
        """The tensors of a group's state that a PBT copy takes (all but the keys), by their path."""
        out: dict[str, Tensor] = {}
        for name, part in group.state.tree.items():
            if name not in _OWN_KEYS:
                out.update(flatten_tree(name, part))
        return out

    def merge(self) -> None:
        """Under torch.distributed, gather every rank's rows of the results (on every rank, or on rank 0).

        Each rank sends its rows' final metrics, sparsity, finiteness, the
        epoch each ended at and curves; a receiving rank (every rank when
        :attr:`everywhere`, else rank 0) then holds one process's results.
        The counters (chunk sizes met, padded rows, configuration-epochs)
        become all the ranks' together. A no-op on one process.
        """
        if not self.world.distributed:
            return
        rows = self.mine(range(self.k))
        index = torch.tensor(rows, dtype=torch.int64)
        tensors = {f"final/{n}": v[index] for n, v in self.final.items()}
        tensors.update({f"curves/{n}": v[index] for n, v in self.curves.items()})
        tensors.update({name: getattr(self, name)[index] for name in self._ARRAYS})
        value = {
            "rows": rows,
            "final": list(self.final),
            "curves": list(self.curves),
            "counters": {"sizes": self.sizes, "padded": self.padded, "config_epochs": self.config_epochs},
        }
        shared = _distributed.share(
            self.world, "gathering the schedule's results", value, tensors, everywhere=self.everywhere
        )
        if shared is None:  # gather="rank0" on another rank: it returns no result
            return
        firsts, sizes = [], set()
        self.padded = self.config_epochs = 0
        for got, tensors in shared:
            at = torch.tensor(got["rows"], dtype=torch.int64)
            for n in got["final"]:
                self.final.setdefault(n, torch.full((self.k,), math.nan))[at] = tensors[f"final/{n}"]
            for n in got["curves"]:
                self._curve(n)[at] = tensors[f"curves/{n}"]
            for name in self._ARRAYS:
                getattr(self, name)[at] = tensors[name]
            counters = got["counters"]
            firsts += counters["sizes"][:1]
            sizes.update(counters["sizes"])
            self.padded += counters["padded"]
            self.config_epochs += counters["config_epochs"]
        self.sizes = [max(firsts), *sorted(sizes)] if firsts else []  # first: the largest chunk a rank started

    def _bar(self, total: int) -> Any:
        from ._driver import _progress

        runner = self

        class _Bar:
            def __enter__(self) -> None:
                self.inner = _progress(total, runner.quiet)
                runner.bar = self.inner.__enter__()

            def __exit__(self, *exc: Any) -> None:
                self.inner.__exit__(*exc)
                runner.bar = None

        return _Bar()

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        record = self.run_pbt() if isinstance(self.scheduled.schedule, PBT) else self.run_halving()
        if self.job.device.type == "cuda":
            torch.cuda.synchronize(self.job.device)
        total_s = time.perf_counter() - t0
        ended = self.ended.unsqueeze(1)
        points = torch.tensor(self.points).unsqueeze(0)
        output = {
            "final": self.final,
            "zero_frac": self.zero,
            "tiny_frac": self.tiny,
            "finite": self.finite,
            "bad": ~torch.isfinite(self.curves["loss"]) & (points <= ended),
            "curves": self.curves,
            "logged": self.points,
        }
        return {
            "outputs": [output],
            "timings": {"compile_s": self.compile_s, "run_s": total_s - self.compile_s, "total_s": total_s},
            "engine": self.engine.name,
            "chunk": self.sizes[0] if self.sizes else 0,
            "padded": self.padded,
            "more": {"chunk_sizes": sorted(set(self.sizes)), "config_epochs": self.config_epochs},
            "record": record,
        }


def _clip(value: float, param: HParam, like: Tensor) -> Tensor:
    """``value`` clipped into ``param``'s range, as a 0-d tensor like ``like`` (an open end is not reached)."""
    low, high = param.low, param.high
    if high is not None and math.isfinite(high):
        value = min(value, high)
    if low is not None and math.isfinite(low):
        value = max(value, low)
    out = torch.tensor(value, dtype=like.dtype, device=like.device)
    if not param.contains(float(out)):  # an open end, reached in float or by rounding: step inside
        inward = -math.inf if high is not None and float(out) >= high else math.inf
        out = torch.nextafter(out, torch.tensor(inward, dtype=like.dtype, device=like.device))
    return out
