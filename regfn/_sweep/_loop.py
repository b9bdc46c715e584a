"""The sweep loop: every schedule's rows trained in chunks, in one loop.

:func:`regfn.sweep` hands the loop an engine, the rows (configurations x
folds), a :class:`~regfn._sweep._plan.Plan` of chunk sizes and a
:class:`~regfn._sweep._strategies.Strategy`. For each of the strategy's
stages the loop cuts the stage's rows into chunks (:class:`Group`), trains
them, chunk after chunk, to the next decision epoch (a chunk starts when it
first trains and is dropped when it ends, so a sweep without decisions
holds one chunk at a time), asks the strategy to decide on the live
configurations' validation metric, and carries the decision out: stopped
rows keep their results where they stand and the rest regroup into chunks
of their own size; copied rows take their source's state (what the engine
says a copy takes); new hyperparameter values are written into the rows.

Written once here, for every schedule: warm-ups and engine fallbacks
(:mod:`._warm`), halving the chunks after running out of GPU memory
(automatic chunks), progress (:mod:`._progress`), checkpoints, and the
results (:mod:`._outputs`), gathered across ranks at the end.

Under torch.distributed the stage's chunks are shared out (chunk ``i`` of
its global order on rank ``i % world_size``), each round of chunks ending in
a status point; a rank's rows stay on it (its survivors regroup among
themselves); at every decision the ranks share their rows' metric values,
so that every rank takes the same decisions, and a copy's source state
travels to the destination's rank. A configuration's keys depend on its
own seed only, so a row trains the same bits whatever shares its chunk.

Checkpoints: a strategy that never decides leaves its chunks independent,
so each chunk is saved on its own (``chunk-<first>-<size>`` files, reusable
on any number of ranks and with any split); otherwise each rank saves its
part of the loop in one file (its chunks, its rows' results so far and
where the strategy stands) at the start of every stretch between decisions
and after every saved stretch, keeping its previous stretch's file too, so
that the ranks always share a stretch to resume from (:mod:`._saving`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import _distributed
from ._checkpoint import Checkpoint
from ._engine import ChunkState, Engine, Metrics, warn
from ._groups import Group, cat_rows, pad_rows, take_rows, unset
from ._outputs import Outputs, Results
from ._plan import Plan
from ._progress import Progress
from ._saving import Keeper, keeper
from ._strategies import Decision, Stage, Strategy
from ._warm import Warmer

__all__ = ["Loop", "Ran"]

_WHERE = "regfn.sweep"


@dataclass
class Ran:
    """What the loop hands back: the results (``None`` on a rank that gathers nothing), how it ran."""

    outputs: Outputs | None
    record: dict[str, Any] | None
    engine: str
    timings: dict[str, float]
    settings: dict[str, Any]


class Loop:
    """Trains the rows of one sweep call under a strategy (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        hp_all: dict[str, Tensor],
        plan: Plan,
        strategy: Strategy,
        *,
        folds: int = 1,
        quiet: bool = False,
        store: Checkpoint | None = None,
        world: _distributed.World = _distributed.SINGLE,
        everywhere: bool = True,
        prune: Callable[[Results], None] | None = None,
    ):
        self.warmer, self.hp_all, self.plan, self.strategy = Warmer(engine), hp_all, plan, strategy
        self.folds, self.quiet, self.store, self.world, self.everywhere = folds, quiet, store, world, everywhere
        self.k = int(next(iter(hp_all.values())).shape[0])  # rows: configurations x folds
        self.n_configs = self.k // folds
        self.epochs = engine.job.epochs
        self.results = Results(self.k, self.epochs, engine.job.log_every)
        self.sizes: list[int] = []  # chunk sizes formed, in order
        self.padded = self.config_epochs = 0
        self.chunk = 0  # the first chunks' size (after any halving for memory)
        self.position: dict[str, Any] = {}
        self.progress = Progress(0, True)
        self.independent = True
        self.keeper: Keeper = Keeper()
        self.current: list[Group] = []  # the stage's groups (those training, to train, and trained)
        self.owned: list[int] = []  # the rows this rank trains (its results)
        self.slots = 0  # the chunks the stage's rows were cut into, on all ranks together (0 once regrouped)
        self.prune = prune  # called after rows end: drops the parameters not worth keeping
        self.stages: list[Stage] = []

    @property
    def engine(self) -> Engine:
        return self.warmer.engine

    def rows_of(self, configs: Sequence[int]) -> list[int]:
        """The rows of the configurations ``configs`` (each one's folds, in order)."""
        return [c * self.folds + f for c in configs for f in range(self.folds)]

    # ----------------------------------------------------------------- the loop

    def run(self) -> Ran:
        t0 = time.perf_counter()
        stages = self.stages = self.strategy.stages(self.n_configs, self.epochs)
        self.independent = not any(st.points for st in stages)
        self.keeper = keeper(self.store, self.independent)
        resumed = self.keeper.restore(self)
        first = 0 if resumed is None else int(self.position["stage"])
        done = resumed is not None and self.position.get("done", False)
        total = self.strategy.budget(stages, self.epochs) * self.folds
        with Progress(self._share(total, stages), self.quiet) as self.progress:
            for s in range(first, len(stages)) if not done else ():
                self._stage(s, stages[s], resumed if s == first else None)
            if not done:
                self.position = {"done": True, "stage": len(stages), "strategy": self.strategy.position()}
                self.keeper.close(self)
        if self.engine.job.device.type == "cuda":
            torch.cuda.synchronize(self.engine.job.device)
        total_s = time.perf_counter() - t0
        counters = {"sizes": self.sizes, "padded": self.padded, "config_epochs": self.config_epochs}
        shared = self.results.merge(self.world, self._mine(), self.everywhere, counters)
        self.keeper.tidy(self)
        timings = {"compile_s": self.warmer.seconds, "run_s": total_s - self.warmer.seconds, "total_s": total_s}
        settings: dict[str, Any] = {"chunk_size": self.chunk, "padded": sum(c["padded"] for c in shared)}
        if not self.independent:  # what a schedule that regroups met
            sizes = sorted({s for c in shared for s in c["sizes"]})
            settings.update(chunk_sizes=sizes, config_epochs=sum(c["config_epochs"] for c in shared))
        if not shared:
            return Ran(None, None, self.engine.name, timings, settings)
        ended = self.results.arrays["ended"][:: self.folds].tolist()
        return Ran(self.results.outputs(), self.strategy.record(ended), self.engine.name, timings, settings)

    def _share(self, total: int, stages: Sequence[Stage]) -> int:
        """This rank's part of ``total`` configuration-epochs (for its progress)."""
        if not self.world.distributed or not stages:
            return total
        rows = self.rows_of(stages[0].configs)
        size = self.plan.size(len(rows))
        mine = sum(len(rows[i : i + size]) for i in range(self.world.rank * size, len(rows), self.world.size * size))
        return math.ceil(total * mine / max(len(rows), 1))

    def generation(self) -> int:
        """The stretches between decisions begun before the one the loop stands in (over every stage)."""
        s = int(self.position["stage"])
        return sum(len(st.points) + 1 for st in self.stages[:s]) + int(self.position.get("point", 0))

    def _mine(self) -> list[int]:
        """The rows whose results this rank holds."""
        return self.owned if self.world.distributed else list(range(self.k))

    def _stage(self, s: int, stage: Stage, resumed: list[Group] | None) -> None:
        if resumed is None:
            groups, live, first = self._form(self.rows_of(stage.configs)), list(stage.configs), 0
        else:
            groups, live, first = resumed, list(self.position["live"]), int(self.position["point"])
        for j in range(first, len(stage.points) + 1):
            self.position = {"stage": s, "point": j, "live": live, "strategy": self.strategy.position()}
            self.current = list(groups)
            if resumed is None or j > first:  # (a restored loop was saved where it resumed)
                self.keeper.reached(self)
            until = stage.points[j] if j < len(stage.points) else self.epochs
            groups = self._advance(groups, until)
            if j == len(stage.points):
                break
            configs, values = self._metric(groups)
            decision = self.strategy.decide(s, until, configs, values)
            groups, live = self._carry_out(decision, groups, live)
            self.progress.note(
                f"epoch {until}: {len(live)} live, {len(decision.stop)} stopped, {len(decision.copy)} copied"
            )

    # ----------------------------------------------------------------- chunks

    def _form(self, rows: list[int]) -> list[Group]:
        """Chunks of ``rows`` (a stage's, ascending): this rank's share of them, not yet started."""
        size = self.plan.size(len(rows))
        if not self.sizes:
            self.chunk = size
        self.slots = math.ceil(len(rows) / size)
        groups = [self._group(rows[i * size : (i + 1) * size], size, slot=i) for i in range(self.slots)]
        mine = [g for g in groups if g.slot is not None and g.slot % self.world.size == self.world.rank]
        self.owned = sorted({*self.owned, *(r for g in mine for r in g.ids)})
        self._count(size, len(mine))
        return mine

    def _group(self, ids: list[int], size: int, slot: int | None = None) -> Group:
        index = torch.tensor(ids, device=self.engine.job.device)
        return Group(ids, pad_rows({n: v[index] for n, v in self.hp_all.items()}, self._padded_size(size)), slot=slot)

    def _padded_size(self, size: int) -> int:
        """The rows a chunk of ``size`` trains, padding included: at least the engine's ``min_rows``."""
        return max(size, self.engine.min_rows)

    def _count(self, size: int, n: int) -> None:
        if n:
            self.sizes.append(size)
            self.padded += self._padded_size(size) * n

    def _advance(self, groups: list[Group], until: int) -> list[Group]:
        """Train every group on to epoch ``until`` (chunk after chunk); the groups still live after it.

        A group that reaches the last epoch is finished and dropped. Under
        torch.distributed each round of the first chunks ends in a status
        point. Automatic chunks that run out of GPU memory are halved and
        the rows from that chunk on trained again from their start.
        """
        queue, live = list(groups), list[Group]()
        self.current = list(groups)
        rounds = math.ceil(self.slots / self.world.size) if self.world.distributed else 0  # the same on every rank
        next_round = 0
        while queue:
            g = queue.pop(0)
            while g.slot is not None and rounds and g.slot // self.world.size > next_round:
                _distributed.check(self.world)  # a round in which this rank has no chunk
                next_round += 1
            before = self.progress.done
            try:
                self._train(g, until)
            except torch.cuda.OutOfMemoryError:
                # Rows train the same in any chunk: retry them in smaller ones, from their start (which,
                # under a schedule, must be where they stand: before its first decision).
                if not self.plan.adaptive or g.size <= self._padded_size(1) or not (self.independent or g.epoch == 0):
                    raise
                self.progress.recount(before)
                queue = self._smaller([g, *queue])
                self.current = [*live, *queue]
                continue
            if g.taken or g.epoch == self.epochs:
                if not g.taken:
                    self._finish(g, range(len(g.ids)))
                    self.keeper.finished(self, g)
                if self.prune is not None:
                    self.prune(self.results)
                g.state = None
                self.current.remove(g)
                self.progress.note(f"a chunk of {len(g.ids)} done")
            else:
                live.append(g)
            if g.slot is not None and rounds:
                _distributed.check(self.world)
                next_round = g.slot // self.world.size + 1
        while next_round < rounds:
            _distributed.check(self.world)
            next_round += 1
        return live

    def _smaller(self, queue: list[Group]) -> list[Group]:
        """After running out of GPU memory: ``queue``'s rows in chunks half the size, with a warning."""
        rows = [r for g in queue for r in g.ids]
        old = queue[0].size
        self.padded -= sum(g.size for g in queue)
        smaller = self.plan.shrink(old, len(rows))
        warn(
            f"regfn.sweep: out of GPU memory with chunks of {old} configurations; "
            f"retrying with {smaller} (a compiled step is recompiled for the new size)"
        )
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.chunk = smaller
        out = [self._group(rows[i : i + smaller], smaller) for i in range(0, len(rows), smaller)]
        self._count(smaller, len(out))
        return out

    def _train(self, g: Group, until: int) -> None:
        """Train ``g`` on to ``until``, starting it first (or taking it from a checkpoint)."""
        every = self.store.every if self.store is not None else self.epochs
        if g.state is None and self.keeper.take(self, g):
            g.taken = True  # its results are in: nothing to train
            return
        self._warm(g.size)
        if g.state is None:
            g.state = self.engine.start(g.hp)
            self.keeper.load(self, g)
        while g.epoch < until:
            if g.state is None:  # an internal invariant, not user input
                raise unset("g.state")
            stop = min(until, (g.epoch // every + 1) * every)
            self.config_epochs += g.size * (stop - g.epoch)
            g.state = self.engine.advance(g.state, g.hp, stop, self._logger(g), self.progress.chunk(len(g.ids)))
            if stop < self.epochs:
                self.keeper.saved_stretch(self, g)

    def _warm(self, size: int) -> None:
        """Warm the engine up for chunks of ``size`` (once); refuse an engine change under live chunks."""
        before = self.engine
        after = self.warmer.warm(pad_rows({n: v[:size] for n, v in self.hp_all.items()}, self._padded_size(size)))
        if type(after) is not type(before) and any(g.state is not None for g in self.current):
            raise RuntimeError(f"{_WHERE}: the engine changed while warming up chunks of {size}")

    def _logger(self, g: Group) -> Any:
        def log(done: int, value: Tensor, params: dict[str, Tensor]) -> None:
            val = self.engine.val_metrics(params, g.hp) if self.engine.job.has_val else None
            self.results.log(g.ids, done, value, val)
            g.seen = None if val is None else (done, val)

        return log

    def _finish(self, g: Group, pos: Sequence[int]) -> None:
        """Record the final results of ``g``'s rows at positions ``pos`` where it stands now."""
        if g.state is None:  # an internal invariant, not user input
            raise unset("g.state")
        engine, epoch = self.engine, g.state.epoch
        params = engine.params(g.state)
        val: Metrics | None = None
        if engine.job.has_val:
            val = g.seen[1] if g.seen is not None and g.seen[0] == epoch else engine.val_metrics(params, g.hp)
        ids = [g.ids[j] for j in pos]
        train = engine.train_metrics(params, g.hp)
        self.results.finish(ids, list(pos), epoch, params, train, val, g.state.nonfinite)

    # ----------------------------------------------------------------- decisions

    def _metric(self, groups: Sequence[Group]) -> tuple[list[int], list[float]]:
        """Every live configuration (ascending) and its strategy metric (mean over its folds), on every rank."""
        metric = self.strategy.metric
        if metric is None:  # an internal invariant, not user input
            raise unset("metric")
        name, by_row = metric.removeprefix("val_"), dict[int, float]()
        for g in groups:
            if g.state is None:  # an internal invariant, not user input
                raise unset("g.state")
            out = self.engine.val_metrics(self.engine.params(g.state), g.hp).values[name]
            by_row.update(zip(g.ids, out[: len(g.ids)].double().cpu().tolist(), strict=True))
        if self.world.distributed:
            ids, values = list(by_row), list(by_row.values())
            shared = _distributed.share(self.world, "sharing the schedule's metric", [ids, values])
            by_row = {r: v for (rows, vals), _ in shared or [] for r, v in zip(rows, vals, strict=True)}
        configs = sorted({r // self.folds for r in by_row})
        if self.folds == 1:
            return configs, [by_row[c] for c in configs]
        return configs, [sum(by_row[r] for r in self.rows_of([c])) / self.folds for c in configs]

    def _carry_out(self, d: Decision, groups: list[Group], live: list[int]) -> tuple[list[Group], list[int]]:
        if d.stop:
            stopped = set(self.rows_of(d.stop))
            for g in groups:
                pos = [j for j, r in enumerate(g.ids) if r in stopped]
                if pos:
                    self._finish(g, pos)
            if self.prune is not None:
                self.prune(self.results)
            live = [c for c in live if c not in set(d.stop)]
            groups = self._regroup(groups, set(self.rows_of(live)))
        if d.copy:
            self._copy(
                groups,
                [
                    (s, t)
                    for dst, src in d.copy.items()
                    for s, t in zip(self.rows_of([src]), self.rows_of([dst]), strict=True)
                ],
            )
        place = {r: (g, j) for g in groups for j, r in enumerate(g.ids)}
        for dst, values in d.values.items():
            for row in self.rows_of([dst]):
                if row in place:
                    g, j = place[row]
                    for name, v in values.items():
                        g.hp[name][j] = v
        return groups, live

    def _regroup(self, groups: Sequence[Group], keep: set[int]) -> list[Group]:
        """This rank's rows of ``keep`` that ``groups`` hold, in chunks of their own size (warmed up here)."""
        self.slots = 0  # a rank's own chunks from now on: no rounds of status points
        trees, hps, ids, marks = [], [], [], []
        for g in groups:
            pos = [j for j, r in enumerate(g.ids) if r in keep]
            if pos and g.state is not None:
                index = torch.tensor(pos, device=self.engine.job.device)
                trees.append(take_rows(g.state.tree, index))
                if g.state.nonfinite is not None:
                    marks.append(g.state.nonfinite[index])
                hps.append(take_rows(g.hp, index))
                ids += [g.ids[j] for j in pos]
        if not ids:
            return []
        epoch, size = groups[0].epoch, self.plan.size(len(ids), shared=False)
        self._warm(size)
        tree, hp = cat_rows(trees), cat_rows(hps)
        nonfinite = torch.cat(marks) if len(marks) == len(trees) else None  # every group tracked it, or none
        out, rows = [], self._padded_size(size)
        for i in range(0, len(ids), size):
            part = torch.arange(i, min(i + size, len(ids)), device=self.engine.job.device)
            marked = None if nonfinite is None else pad_rows(nonfinite[part], rows)
            state = ChunkState(pad_rows(take_rows(tree, part), rows), epoch, marked)
            out.append(Group(ids[i : i + size], pad_rows(take_rows(hp, part), rows), state))
        self._count(size, len(out))
        return out

    def _copy(self, groups: Sequence[Group], pairs: list[tuple[int, int]]) -> None:
        """Each destination row takes its source row's state (what the engine's :meth:`~Engine.copied` lists).

        Under torch.distributed a source may live on another rank: the ranks
        first share their source rows' state, then each writes its own
        destination rows.
        """
        place = {r: (gi, j) for gi, g in enumerate(groups) for j, r in enumerate(g.ids)}
        sources = sorted({s for s, _ in pairs} & set(place))
        state = [self.engine.copied(g.state) if g.state is not None else {} for g in groups]
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
            if row_dst in place:
                tensors, i = found[row_src]
                gd, rd = place[row_dst]
                for path, leaf in state[gd].items():
                    leaf[rd] = tensors[path][i].to(leaf.device)
