"""The sequential engine: one configuration after another, each step unbatched.

For models whose operations ``vmap`` cannot batch (data-dependent Python
control flow, ``.item()``, operations without a batching rule), or too
large to hold several configurations' activations at once. This engine runs
the same per-configuration step as the vmap engine
(:class:`~regfn._sweep._program.OneConfig`), without ``vmap``: every epoch,
configuration after configuration, with the configuration's own keys,
mini-batch order and hyperparameters (0-d tensors). Its state has the vmap
engine's layout (one row per configuration), so checkpoints, schedules
(stops and PBT copies), cross-validation and torch.distributed run
unchanged; a row does not depend on the chunk it trains in or on the
others, and equals the vmap engine's row to float tolerance (a vmapped
matmul sums in another order than a plain one).

``compile=True`` compiles the one-configuration step once, for every chunk
size. It needs ``torch.func.grad`` of the model, not ``vmap``: a model whose
operations ``vmap`` cannot batch runs here. Eager steps take their gradients
by plain autograd, as an eager :func:`regfn.train` does, so an eager row is
that run bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree

from ._engine import ChunkState, LogFn, Metrics, mark_nonfinite
from ._fold_sizes import SizeGroups, orders_by_size
from ._vmap import VmapEngine

__all__ = ["SequentialEngine"]


def _row(tree: Any, k: int) -> Any:
    """Row ``k`` of every leaf of ``tree`` (views)."""
    return _pytree.tree_map(lambda t: t[k], tree)


def _stack(rows: list[Any]) -> Any:
    """The rows' trees stacked leaf by leaf into one tree of ``(len(rows), ...)`` tensors."""
    return _pytree.tree_map(lambda *leaves: torch.stack(leaves), rows[0], *rows[1:])


class SequentialEngine(VmapEngine):
    """Any model, loss and optimizer: one configuration after another (see the module docstring)."""

    name = "sequential"
    batched = False  # one compiled step serves every chunk size: no padding
    min_rows = 1  # its steps are never vmapped

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.use_graphs = False

    def warm_up(self, hp: dict[str, Tensor]) -> dict[str, Tensor]:
        """Compile the one-configuration step (and order) on a throwaway run of the chunk's first row."""
        first = {n: v[:1] for n, v in hp.items()}
        state = self.compiling(lambda: self.advance(self.start(first), first, 1, lambda *_: None, _NoBar()))
        size = int(next(iter(hp.values())).shape[0])
        return {n: p.expand(size, *p.shape[1:]) for n, p in self.params(state).items()}

    def advance(self, state: ChunkState, hp: dict[str, Tensor], until: int, log: LogFn, bar: Any) -> ChunkState:
        size = int(next(iter(hp.values())).shape[0])
        rows = [_row(state.tree, k) for k in range(size)]
        hps = [{n: v[k] for n, v in hp.items()} for k in range(size)]
        own = self.job.train_rows(hp)  # cross-validation: each configuration's rows, else None
        sizes = self.job.train_sizes(hp)  # folds of different sizes: rows grouped by size, else None
        done, nonfinite = state.epoch, state.nonfinite
        while done < until:
            epoch_t = torch.tensor(done, dtype=torch.int64, device=self.job.device)
            orders = self._orders(state.tree, epoch_t, sizes)
            values = []
            for k in range(size):
                rows[k], value = self._epoch(
                    rows[k], hps[k], epoch_t, None if orders is None else orders[k], None if own is None else own[k]
                )
                values.append(value)
            done += 1
            objective = torch.stack(values)
            nonfinite = mark_nonfinite(nonfinite, objective, done)
            bar.update(1)
            if self.is_log_point(done):
                log(done, objective, _stack([r["params"] for r in rows]))
        return ChunkState(_stack(rows), done, nonfinite)

    def _orders(self, tree: dict[str, Any], epoch_t: Tensor, sizes: SizeGroups | None) -> Tensor | None:
        """Every configuration's mini-batch order of the epoch (``None``: full batch)."""
        job = self.job
        if job.batch_size is None:
            return None
        return orders_by_size(self.program.order, tree, epoch_t, job.n_train, job.batch_size, sizes)

    def _epoch(
        self, row: Any, hp: dict[str, Tensor], epoch_t: Tensor, order: Tensor | None, own: Tensor | None
    ) -> tuple[Any, Tensor]:
        """One epoch of one configuration (``order``: its mini-batches; ``own``: its fold's rows)."""
        job, one = self.job, self.program.one
        x, y = job.data.x, job.data.y
        if order is None:
            batch = torch.zeros((), dtype=torch.int64, device=job.device)
            if own is None:
                return one.step(row, hp, x, y, epoch_t, batch)
            return one.step_batch(row, hp, x, y, own, epoch_t, batch)
        value = torch.zeros(())
        for b in range(order.shape[0]):
            idx = order[b] if own is None else own[order[b]]
            row, value = one.step_batch(row, hp, x, y, idx, epoch_t, torch.tensor(b, device=job.device))
        return row, value

    def _metrics(
        self, params: dict[str, Tensor], hp: dict[str, Tensor], data: Any, rows: Tensor | None,
        groups: SizeGroups | None,
    ) -> Metrics:  # fmt: skip
        one, size = self.program.one, int(next(iter(hp.values())).shape[0])
        own = [rows.shape[1] if rows is not None else 0] * size  # each configuration's number of rows
        for n, members in groups or []:
            for k in members.tolist():
                own[k] = n
        out, block = [], self.job.eval_block_rows
        for k in range(size):
            p_k, hp_k = _row(params, k), {n: v[k] for n, v in hp.items()}
            if rows is None:
                out.append(one.eval(p_k, hp_k, data.x, data.y, block))
            else:
                out.append(one.eval_rows(p_k, hp_k, data.x, data.y, rows[k, : own[k]], block))
        return Metrics.of(_stack(out))


class _NoBar:
    """A progress bar that shows nothing (the warm-up's)."""

    def update(self, n: int) -> None:
        del n
