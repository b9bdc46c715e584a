"""How the sweep loop keeps its checkpoints: each chunk on its own, or the whole loop in one file.

A strategy that never decides (a sweep without a schedule) leaves every
chunk independent of the others: :class:`ChunkFiles` saves a running chunk
(``chunk-<first>-<size>.safetensors``: its state and its rows' curves so far)
and a finished one (``.done``: its rows' results), so that a resumed sweep
skips finished chunks and continues a running one, on any number of ranks
and with any split of the rows. A strategy that decides ties the chunks
together: :class:`LoopFile` saves the loop whole (``schedule.safetensors``:
every chunk's state and hyperparameters, every row's results so far, where
the loop and the strategy stand, the counters). The loop calls the same
four methods on either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checkpoint import Checkpoint
from ._engine import ChunkState
from ._groups import Group, flatten_tree, unset

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

    def saved_stretch(self, loop: Loop, g: Group) -> None:
        """After ``g`` trained a stretch that ends before the last epoch."""

    def finished(self, loop: Loop, g: Group) -> None:
        """After ``g``'s rows all ended."""

    def close(self, loop: Loop) -> None:
        """After the last stage."""


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
    """The whole loop in one file (see the module docstring)."""

    def __init__(self, store: Checkpoint):
        self.store = store

    def save(self, loop: Loop) -> None:
        tensors = {f"results/{n}": v for n, v in loop.results.tensors().items()}
        for i, g in enumerate(loop.current):
            if g.state is not None:
                tensors.update(flatten_tree(f"g{i}/tree", g.state.tree))
                if g.state.nonfinite is not None:
                    tensors[f"g{i}/nonfinite"] = g.state.nonfinite
            tensors.update({f"g{i}/hp/{n}": v for n, v in g.hp.items()})
        meta = {
            "position": loop.position,
            "groups": [{"ids": g.ids, "epoch": g.epoch, "started": g.state is not None} for g in loop.current],
            "hp": list(loop.hp_all),
            "results": loop.results.names(),
            "counters": {"sizes": loop.sizes, "padded": loop.padded, "config_epochs": loop.config_epochs},
            "chunk": loop.chunk,
            "owned": loop.owned,
        }
        self.store.save_schedule(tensors, meta)

    def restore(self, loop: Loop) -> list[Group] | None:
        loaded = self.store.load_schedule()
        if loaded is None:
            return None
        tensors, meta = loaded
        results = {n.removeprefix("results/"): v for n, v in tensors.items() if n.startswith("results/")}
        loop.results.fill(range(loop.k), results, meta["results"])
        counters = meta["counters"]
        loop.sizes, loop.padded, loop.config_epochs = (
            list(counters["sizes"]),
            counters["padded"],
            counters["config_epochs"],
        )
        loop.chunk, loop.owned, loop.position = meta["chunk"], list(meta["owned"]), meta["position"]
        loop.strategy.restore(loop.position["strategy"])
        groups = []
        for i, info in enumerate(meta["groups"]):
            hp = {n: tensors[f"g{i}/hp/{n}"].to(loop.engine.job.device) for n in meta["hp"]}
            g = Group(list(info["ids"]), hp)
            if info["started"]:
                tree = self.store.fill(loop.engine.start(hp).tree, tensors, f"g{i}/tree", self.store.schedule_path)
                nonfinite = tensors.get(f"g{i}/nonfinite")
                device = loop.engine.job.device
                g.state = ChunkState(tree, int(info["epoch"]), None if nonfinite is None else nonfinite.to(device))
            groups.append(g)
        return groups

    def saved_stretch(self, loop: Loop, g: Group) -> None:
        self.save(loop)

    def close(self, loop: Loop) -> None:
        loop.current = []
        self.save(loop)


def keeper(store: Checkpoint | None, independent: bool) -> Keeper:
    """How the loop keeps ``store``: chunk files for independent chunks, else one file."""
    if store is None:
        return Keeper()
    return ChunkFiles(store) if independent else LoopFile(store)
