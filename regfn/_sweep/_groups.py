"""Groups of rows in training: a chunk's configurations, hyperparameters and state, and the row operations on them.

Every leaf of an engine's state tree, and every hyperparameter tensor, has
one row per configuration of its chunk; the loop pads a chunk to its size by
repeating the last row (the padding trains, then is dropped), takes rows of
it (a schedule stops configurations) and concatenates them (the survivors
regroup). These operations are written here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree

from ._engine import ChunkState, Metrics

__all__ = ["Group", "cat_rows", "flatten_tree", "pad_rows", "take_rows", "unset"]


def pad_rows(tree: Any, size: int) -> Any:
    """Every tensor leaf of ``tree`` padded to ``size`` rows by repeating its last row.

    Examples:
        >>> pad_rows({"seed": torch.tensor([7, 9])}, 3)["seed"].tolist()
        [7, 9, 9]
    """

    def pad(t: Any) -> Any:
        if not isinstance(t, Tensor) or t.shape[0] == size:
            return t
        return torch.cat([t, t[-1:].expand(size - t.shape[0], *t.shape[1:])])

    return _pytree.tree_map(pad, tree)


def take_rows(tree: Any, index: Tensor) -> Any:
    """The rows ``index`` of every tensor leaf of ``tree``."""
    return _pytree.tree_map(lambda t: t[index] if isinstance(t, Tensor) else t, tree)


def cat_rows(trees: Sequence[Any]) -> Any:
    """Trees of one structure, their tensor leaves concatenated by rows."""
    leaves = [_pytree.tree_flatten(t) for t in trees]
    spec = leaves[0][1]
    joined = [
        torch.cat(parts) if isinstance(parts[0], Tensor) else parts[0]
        for parts in zip(*(flat for flat, _ in leaves), strict=True)
    ]
    return _pytree.tree_unflatten(joined, spec)


def flatten_tree(prefix: str, tree: Any) -> dict[str, Tensor]:
    """The tensor leaves of ``tree`` by their path, each path prefixed by ``prefix``."""
    leaves, _ = _pytree.tree_flatten_with_path(tree)
    return {prefix + _pytree.keystr(p): v for p, v in leaves if isinstance(v, Tensor)}


@dataclass(eq=False)
class Group:
    """One chunk: the rows it holds (``ids``, global and ascending; the rest of its ``size`` rows is padding),
    their hyperparameters (padded), and their state once started (``None`` before).

    ``slot`` is the chunk's place in the round-robin of the first chunks
    under torch.distributed (chunk ``slot`` of the global order), ``None`` for
    a rank's own regrouped chunks. ``taken``: its results came from a
    checkpoint (it does not train). ``seen`` holds the validation metrics of
    the last log point and its epoch (the final ones, when it ends there).
    """

    ids: list[int]
    hp: dict[str, Tensor]
    state: ChunkState | None = None
    slot: int | None = None
    taken: bool = False
    seen: tuple[int, Metrics] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """The rows the engine trains, padding included."""
        return int(next(iter(self.hp.values())).shape[0])

    @property
    def epoch(self) -> int:
        """The epochs the group has trained (0 before it starts)."""
        return 0 if self.state is None else self.state.epoch


def unset(what: str) -> RuntimeError:
    """The error for an internal invariant that does not hold (``what`` is unset): a bug in regfn, not bad input."""
    return RuntimeError(f"regfn.sweep: {what} is unset here (a bug in regfn: please report it)")
