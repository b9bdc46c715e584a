"""The vmap engine: the per-configuration step, vmapped over a chunk and compiled.

It runs any model, loss and optimizer. Each epoch calls the compiled step
(once per mini-batch); on CUDA with compilation on, a block of epochs is
captured once in a CUDA graph and replayed, so a block costs one launch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree

from ._engine import ChunkState, Engine, Job, LogFn, Runs, mark_nonfinite, warn
from ._fold_sizes import SizeGroups, orders_by_size
from ._groups import flatten_tree
from ._program import Program

__all__ = ["VmapEngine"]


def tree_clone(tree: Any) -> Any:
    """A copy of every tensor of ``tree`` (unbatched init outputs come back expanded: clone them)."""
    return _pytree.tree_map(lambda t: t.clone() if isinstance(t, Tensor) else t, tree)


def _tree_copy_(dst: Any, src: Any) -> None:
    for d, s in zip(_pytree.tree_leaves(dst), _pytree.tree_leaves(src), strict=True):
        d.copy_(s)


class _Loop:
    """Runs epochs of one chunk: plain calls, or replays of a captured CUDA graph.

    ``rows`` (cross-validation) are each configuration's training rows of
    ``(x, y)``, ``(K, n_rows)``; ``None``: every configuration trains on all of them.
    ``sizes``: folds of different sizes, the configurations grouped by their
    fold's size (each draws its mini-batch order for its own size); ``None``: one size.
    """

    def __init__(
        self, prog: Program, hp: dict[str, Tensor], x: Tensor, y: Tensor, batch_size: int | None, rows: Tensor | None,
        sizes: SizeGroups | None = None,
    ):  # fmt: skip
        self.prog, self.hp, self.x, self.y, self.rows, self.sizes = prog, hp, x, y, rows, sizes
        self.n = x.shape[0] if rows is None else rows.shape[1]
        self.batch_size = batch_size
        self.n_batches = 1 if batch_size is None else self.n // batch_size
        self.batch_ids = torch.arange(self.n_batches, device=x.device)

    def epoch(self, state: Any, epoch_t: Tensor, batches: int | None = None) -> tuple[Any, Tensor]:
        """One epoch from ``state`` (its first ``batches`` mini-batches only, when given: a warm-up's);
        advances ``epoch_t`` in place; returns (state, last objective)."""
        if self.batch_size is None and self.rows is None:
            state, value = self.prog.step(state, self.hp, self.x, self.y, epoch_t, self.batch_ids[0])
        elif self.batch_size is None:  # a fold's rows, full batch
            state, value = self.prog.step_batch(state, self.hp, self.x, self.y, self.rows, epoch_t, self.batch_ids[0])
        else:
            order = orders_by_size(self.prog.order, state, epoch_t, self.n, self.batch_size, self.sizes)
            count = self.n_batches if batches is None else min(batches, self.n_batches)
            for b in range(count):
                idx = order[:, b] if self.rows is None else torch.gather(self.rows, 1, order[:, b])
                step = self.prog.step_batch if b == count - 1 else self.prog.step_batch_unread  # the last is read
                state, value = step(state, self.hp, self.x, self.y, idx, epoch_t, self.batch_ids[b])
        epoch_t.add_(1)
        return state, value

    def capture(self, state: Any, epoch_t: Tensor, block: int) -> tuple[torch.cuda.CUDAGraph, Tensor]:
        """Capture ``block`` epochs in a CUDA graph that updates ``state`` and ``epoch_t`` in place."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up on throwaway copies: compile, autotune, allocate
            warm_state, warm_epoch = tree_clone(state), epoch_t.clone()
            for _ in range(2):
                warm_state, _ = self.epoch(warm_state, warm_epoch)
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
        value_out = torch.empty(self.hp["lr"].shape, device=epoch_t.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            s = state
            for _ in range(block):
                s, value = self.epoch(s, epoch_t)
            _tree_copy_(state, s)
            value_out.copy_(value)
        return graph, value_out


class VmapEngine(Engine):
    """Any model, loss and optimizer: the step vmapped over configurations (and compiled)."""

    name = "vmap"
    runs = Runs(copies=True)  # any loss, penalty, optimizer; folds; schedules that stop or copy rows

    _OWN_KEYS = ("dkey", "skey")  # a configuration's own dropout and shuffle keys: a PBT copy leaves them alone

    def __init__(self, job: Job):
        super().__init__(job)
        self.use_graphs = job.cuda_graphs and job.compile and job.device.type == "cuda"

    def _loop(self, hp: dict[str, Tensor]) -> _Loop:
        job = self.job
        return _Loop(self.program, hp, job.data.x, job.data.y, job.batch_size, job.train_rows(hp), job.train_sizes(hp))

    def warm_up(self, hp: dict[str, Tensor]) -> dict[str, Tensor]:
        def two_steps() -> dict[str, Tensor]:  # two steps compile every graph: the second takes the first's output
            state = tree_clone(self.program.init(hp))
            loop = self._loop(hp)
            epoch_t = torch.zeros((), dtype=torch.int64, device=self.job.device)
            for _ in range(2):
                state, _ = loop.epoch(state, epoch_t, batches=1)
            return state["params"]

        return self.compiling(two_steps)

    def copied(self, state: ChunkState) -> dict[str, Tensor]:
        """Parameters and optimizer state: everything but the configuration's own keys."""
        out: dict[str, Tensor] = {}
        for name, part in state.tree.items():
            if name not in self._OWN_KEYS:
                out.update(flatten_tree(name, part))
        return out

    def start(self, hp: dict[str, Tensor]) -> ChunkState:
        return ChunkState(tree_clone(self.program.init(hp)), 0)

    def params(self, state: ChunkState) -> dict[str, Tensor]:
        return state.tree["params"]

    def advance(self, state: ChunkState, hp: dict[str, Tensor], until: int, log: LogFn, bar: Any) -> ChunkState:
        tree = state.tree
        epoch_t = torch.tensor(state.epoch, dtype=torch.int64, device=self.job.device)
        loop = self._loop(hp)
        block = math.gcd(self.job.log_every, 100)
        graphs = self.use_graphs
        graph: torch.cuda.CUDAGraph | None = None
        done = state.epoch
        nonfinite = state.nonfinite  # issue 23 item 6: the epoch each configuration went non-finite
        while done < until:
            if graphs and done % block == 0 and until - done >= block:
                if graph is None:  # captured on the tree as it is now; replays update it in place
                    try:
                        graph, value_out = loop.capture(tree, epoch_t, block)
                    except Exception as err:  # any capture failure falls back to plain calls
                        warn(f"regfn.sweep: CUDA graph capture failed ({err}); running without graphs")
                        graphs = False
                        continue
                graph.replay()
                value, n = value_out, block
            else:
                tree, value = loop.epoch(tree, epoch_t)
                n = 1
            done += n
            nonfinite = mark_nonfinite(nonfinite, value, done)  # with CUDA graphs: to the block's end
            bar.update(n)
            if self.is_log_point(done):
                log(done, value, tree["params"])
        return ChunkState(tree, done, nonfinite)
