"""How the sweep loop keeps its checkpoints: each chunk on its own, or the whole loop in one file.

A strategy that never decides (a sweep without a schedule) leaves every
chunk independent of the others: :class:`ChunkFiles` saves a running chunk
(``chunk-<first>-<size>.safetensors``: its state and its rows' curves so far)
and a finished one (``.done``: its rows' results), so that a resumed sweep
skips finished chunks and continues a running one, on any number of ranks
and with any split of the rows. A strategy that decides ties the chunks
together: :class:`LoopFile` saves the loop whole, one file per rank
(``schedule.safetensors`` on one process, ``schedule-rank<r>-of-<n>.safetensors``
on ``n`` ranks): the rank's chunks (state and hyperparameters), its rows'
results so far, where the loop and the strategy stand, the counters.

Ranks save on their own, at the start of every stretch between decisions
(a *generation*: stage and decision point, counted over the stages) and
after every stretch of ``checkpoint_every`` epochs. A rank cannot pass a
decision before every other rank has reached it (the ranks share their
metric there), so at any moment the ranks are at most one generation apart;
the first save of a generation moves the rank's older file aside
(``.previous``), so every rank holds the latest generation that all of them
reached. A resume takes that one (:func:`~._checkpoint.resume_point`): each
rank its own file, or, on another number of ranks, its share of all the
files (chunk ``i`` on rank ``i % world_size``; rows train the same bits in
any chunk, so the results are the same). The loop calls the same methods on
either keeper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from . import _distributed
from ._checkpoint import Checkpoint, resume_point
from ._engine import ChunkState
from ._groups import Group, flatten_tree, unset
from ._outputs import Results

if TYPE_CHECKING:
    from ._loop import Loop

__all__ = ["ChunkFiles", "Keeper", "LoopFile", "keeper"]


class Keeper:
    """No checkpoint: nothing is saved or taken back."""

    def restore(self, loop: Loop) -> list[Group] | None:
        """The groups of the stage a saved loop stood in (its results and position restored), or ``None``."""
        return None

    def take(self, loop: Loop, g: Group) -> bool:
        """Before ``g`` starts: take its rows' results from a finished save (then it need not train)."""
        return False

    def load(self, loop: Loop, g: Group) -> None:
        """After ``g`` started afresh: continue it from its last save, if any."""

    def reached(self, loop: Loop) -> None:
        """At the start of a stretch between decisions (before training it)."""

    def saved_stretch(self, loop: Loop, g: Group) -> None:
        """After ``g`` trained a stretch that ends before the last epoch."""

    def finished(self, loop: Loop, g: Group) -> None:
        """After ``g``'s rows all ended."""

    def close(self, loop: Loop) -> None:
        """After the last stage."""

    def tidy(self, loop: Loop) -> None:
        """After the ranks gathered their results (every rank closed)."""


class ChunkFiles(Keeper):
    """Each chunk in its own files (see the module docstring)."""

    def __init__(self, store: Checkpoint):
        self.store = store

    def take(self, loop: Loop, g: Group) -> bool:
        found = self.store.finished(g.ids[0], len(g.ids))
        if found is None:
            return False
        tensors, meta = found
        loop.results.fill(g.ids, tensors, meta["names"])
        loop.progress.update(loop.epochs * len(g.ids))
        return True

    def load(self, loop: Loop, g: Group) -> None:
        if g.state is None:  # an internal invariant, not user input
            raise unset("g.state")
        saved = self.store.load_state(g.ids[0], g.size, g.state)
        if saved is None:
            return
        g.state, tensors, meta = saved
        if "nonfinite" in tensors:
            g.state.nonfinite = tensors["nonfinite"].to(loop.engine.job.device)
        loop.results.fill(g.ids, tensors, {"metrics": [], "flags": [], "curves": meta["curves"]})
        loop.progress.update(g.state.epoch * len(g.ids))

    def saved_stretch(self, loop: Loop, g: Group) -> None:
        if g.state is None:  # an internal invariant, not user input
            raise unset("g.state")
        curves = {n: v for n, v in loop.results.tensors(g.ids).items() if n.startswith("curves/")}
        if g.state.nonfinite is not None:  # the epoch each row went NaN or inf, so far
            curves["nonfinite"] = g.state.nonfinite
        self.store.save_state(g.ids[0], g.size, g.state, curves, {"curves": loop.results.names()["curves"]})

    def finished(self, loop: Loop, g: Group) -> None:
        names = loop.results.names()
        self.store.save_done(g.ids[0], g.size, len(g.ids), loop.results.tensors(g.ids), {"names": names})


class LoopFile(Keeper):
    """The loop in one file per rank, two generations kept (see the module docstring)."""

    def __init__(self, store: Checkpoint):
        self.store = store

    def save(self, loop: Loop) -> None:
        """Save this rank's part of the loop where it stands."""
        tensors = {f"results/{n}": v for n, v in loop.results.tensors(loop.owned).items()}
        for i, g in enumerate(loop.current):
            if g.state is not None:
                tensors.update(flatten_tree(f"g{i}/tree", g.state.tree))
                if g.state.nonfinite is not None:
                    tensors[f"g{i}/nonfinite"] = g.state.nonfinite
            tensors.update({f"g{i}/hp/{n}": v for n, v in g.hp.items()})
        groups = [
            {"ids": g.ids, "epoch": g.epoch, "started": g.state is not None, "slot": g.slot} for g in loop.current
        ]
        meta = {
            "generation": loop.generation(),
            "position": loop.position,
            "groups": groups,
            "slots": loop.slots,
            "hp": list(loop.hp_all),
            "results": loop.results.names(),
            "counters": {"sizes": loop.sizes, "padded": loop.padded, "config_epochs": loop.config_epochs},
            "chunk": loop.chunk,
            "owned": loop.owned,
        }
        self.store.save_schedule(tensors, meta, loop.world.rank, loop.world.size)

    def restore(self, loop: Loop) -> list[Group] | None:
        """Rank 0 picks the latest generation every rank of one world size saved (:func:`resume_point`) and
        tells the others; each rank restores its own file (the same world size) or its share of all of them
        (another), saves it, and, once every rank has, rank 0 removes every other schedule file."""
        world, chosen = loop.world, self._choose(loop.world)
        if chosen is None:
            if world.rank == 0:
                self.store.drop_schedules()  # an earlier start's files that no rank set completes
            _distributed.check(world)
            return None
        own = len(chosen) == world.size  # the same world size: each rank its own file
        names = [chosen[world.rank]] if own else chosen
        loaded = [(n, *self.store.load_schedule(n)) for n in names]
        meta = loaded[0][2]
        loop.chunk, loop.position = meta["chunk"], meta["position"]
        loop.strategy.restore(loop.position["strategy"])
        groups = [g for name, tensors, m in loaded for g in self._saved_groups(loop, name, tensors, m)]
        if own:
            counters = meta["counters"]
            loop.sizes, loop.padded = list(counters["sizes"]), counters["padded"]
            loop.config_epochs, loop.slots, loop.owned = counters["config_epochs"], int(meta["slots"]), meta["owned"]
        else:
            groups = self._share_out(loop, groups, [m for _, _, m in loaded])
        self._fill(loop, [(tensors, m) for _, tensors, m in loaded])
        loop.current = groups
        self.save(loop)
        _distributed.check(world)  # every rank saved where it resumed
        if world.rank == 0:
            self.store.drop_schedules(self.store.schedule_path(r, world.size) for r in range(world.size))
        return groups

    def _choose(self, world: _distributed.World) -> list[str] | None:
        """The files to resume from (one per rank that saved them), chosen by rank 0 for every rank."""
        chosen = None
        if world.rank == 0:
            files = self.store.schedules()
            found = resume_point({w: {r: list(g) for r, g in ranks.items()} for w, ranks in files.items()}, world.size)
            if found is not None:
                size, generation = found
                chosen = [files[size][r][generation] for r in range(size)]
        shared = _distributed.share(world, "agreeing where the schedule resumes", chosen)
        return shared[0][0] if shared else None

    def _saved_groups(self, loop: Loop, name: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> list[Group]:
        """The chunks saved in the file ``name`` (``tensors``, ``meta``), their state restored."""
        device, groups = loop.engine.job.device, []
        for i, info in enumerate(meta["groups"]):
            hp = {n: tensors[f"g{i}/hp/{n}"].to(device) for n in meta["hp"]}
            g = Group(list(info["ids"]), hp, slot=info["slot"])
            if info["started"]:
                tree = self.store.fill(loop.engine.start(hp).tree, tensors, f"g{i}/tree", self.store.directory / name)
                nonfinite = tensors.get(f"g{i}/nonfinite")
                g.state = ChunkState(tree, int(info["epoch"]), None if nonfinite is None else nonfinite.to(device))
            groups.append(g)
        return groups

    def _share_out(self, loop: Loop, groups: list[Group], metas: list[dict[str, Any]]) -> list[Group]:
        """This rank's share of the chunks every rank of another world size saved (``metas``): chunk ``i``
        (in slot order while the stage's first chunks run, else in row order) on rank ``i % world_size``;
        rank 0 also keeps the rows that ended and the saved counters."""
        world = loop.world
        by_slot = all(g.slot is not None for g in groups)
        order = sorted(groups, key=lambda g: (g.slot or 0) if by_slot else g.ids[0])
        places = [(g.slot or 0) if by_slot else i for i, g in enumerate(order)]
        mine = [g for i, g in zip(places, order, strict=True) if i % world.size == world.rank]
        if not by_slot:
            for g in mine:
                g.slot = None  # a rank's own chunks: no rounds of status points
        loop.slots = int(metas[0]["slots"]) if by_slot else 0
        live = {r for g in groups for r in g.ids}
        ended = {r for m in metas for r in m["owned"]} - live
        loop.owned = sorted({r for g in mine for r in g.ids} | (ended if world.rank == 0 else set()))
        if world.rank == 0:
            loop.sizes = [s for m in metas for s in m["counters"]["sizes"]]
            loop.padded = sum(m["counters"]["padded"] for m in metas)
            loop.config_epochs = sum(m["counters"]["config_epochs"] for m in metas)
        return mine

    def _fill(self, loop: Loop, loaded: list[tuple[dict[str, Tensor], dict[str, Any]]]) -> None:
        """The saved results of the rows this rank owns."""
        mine = set(loop.owned)
        for tensors, meta in loaded:
            rows = [r for r in meta["owned"] if r in mine]
            saved = {n.removeprefix("results/"): v for n, v in tensors.items() if n.startswith("results/")}
            loop.results.fill(rows, Results.select(saved, meta["owned"], rows), meta["results"])

    def reached(self, loop: Loop) -> None:
        self.save(loop)

    def saved_stretch(self, loop: Loop, g: Group) -> None:
        self.save(loop)

    def close(self, loop: Loop) -> None:
        loop.current = []
        self.save(loop)

    def tidy(self, loop: Loop) -> None:
        self.store.schedule_path(loop.world.rank, loop.world.size, previous=True).unlink(missing_ok=True)


def keeper(store: Checkpoint | None, independent: bool) -> Keeper:
    """How the loop keeps ``store``: chunk files for independent chunks, else one file."""
    if store is None:
        return Keeper()
    return ChunkFiles(store) if independent else LoopFile(store)
