"""What a sweep records about its rows while it trains, typed, until the results table is written.

:class:`Results` holds one row per trained row (configuration x fold): its
curves, filled at every log point, and, once the row ends (at the last
epoch, or where a schedule stopped it), its final metrics, its constant
flags, the sparsity and finiteness of its parameters and the epoch it ended
at. It is written once for every schedule, saved in checkpoints and
gathered across ranks from here. :meth:`Results.outputs` hands the table an
:class:`Outputs`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import _distributed
from ._engine import Metrics

__all__ = ["Outputs", "Results", "sparsity"]


def sparsity(params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Each row's fraction of exact zeros and of ``|w| < 1e-6`` over its weight matrices (all parameters
    when it has none)."""
    weights = [p.flatten(1) for p in params.values() if p.ndim >= 3]  # (K, ...) weight matrices
    if not weights:
        weights = [p.flatten(1) for p in params.values()]
    w = torch.cat(weights, dim=1)
    return (w == 0).float().mean(1), (w.abs() < 1e-6).float().mean(1)


@dataclass
class Outputs:
    """Every row's results (``(K,)`` tensors unless said), as the table reads them.

    Attributes:
        metrics: final metrics by column name, in column order (training, then ``val_*``).
        constant: 1 where the final model predicts one value on its training data.
        val_constant: the same on the validation data (``None`` without it).
        zero_frac, tiny_frac: sparsity of the weights.
        finite: whether every parameter is finite.
        ended: the epoch each row stopped training at.
        nonfinite_epoch: the first epoch whose objective was NaN or inf (0: none, or not tracked).
        curves: ``name -> (K, T)`` at ``logged`` (NaN after a row ended).
        logged: the epochs the curves sample.
        collapsed: judged already (cross-validation: per fold), else ``None``.
        folds: cross-validation's per-fold values ``name -> (K, k)``.
        params: the final parameters of the rows kept so far, by row (on the CPU).
    """

    metrics: dict[str, Tensor]
    constant: Tensor
    val_constant: Tensor | None
    zero_frac: Tensor
    tiny_frac: Tensor
    finite: Tensor
    ended: Tensor
    nonfinite_epoch: Tensor
    curves: dict[str, Tensor]
    logged: list[int]
    collapsed: Tensor | None = None
    folds: dict[str, Tensor] = field(default_factory=dict)
    params: dict[int, dict[str, Tensor]] = field(default_factory=dict)

    @property
    def bad(self) -> Tensor:
        """``(K, T)``: the log points where a row's objective was not finite (before it ended)."""
        points = torch.tensor(self.logged).unsqueeze(0)
        return ~torch.isfinite(self.curves["loss"]) & (points <= self.ended.unsqueeze(1))


def _by_kept_row(name: str) -> bool:
    """Whether a tensor of :meth:`Results.tensors` is stacked over the kept rows (``kept_rows``), not every row."""
    return name == "kept_rows" or name.startswith("params/")


class Results:
    """The results of ``k`` rows, filled as they train (see the module docstring)."""

    def __init__(self, k: int, epochs: int, log_every: int):
        self.k = k
        self.logged = [e for e in range(1, epochs + 1) if e % log_every == 0 or e == epochs]
        self.column = {e: i for i, e in enumerate(self.logged)}
        self.metrics: dict[str, Tensor] = {}
        self.flags: dict[str, Tensor] = {}
        self.curves: dict[str, Tensor] = {}
        self.arrays = {
            "zero_frac": torch.zeros(k),
            "tiny_frac": torch.zeros(k),
            "finite": torch.ones(k, dtype=torch.bool),
            "ended": torch.full((k,), epochs, dtype=torch.int64),
            "nonfinite_epoch": torch.zeros(k, dtype=torch.int64),
        }
        self.params: dict[int, dict[str, Tensor]] = {}  # row -> its final parameters (CPU), once it ended
        self.ended_rows: set[int] = set()  # the rows whose parameters reached here (kept or pruned since)

    @staticmethod
    def _slot(table: dict[str, Tensor], name: str, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        if name not in table:
            table[name] = torch.full(shape, math.nan, dtype=like.dtype)
        return table[name]

    def log(self, ids: Sequence[int], done: int, objective: Tensor, val: Metrics | None) -> None:
        """The curves of the rows ``ids`` (the first ``len(ids)`` of a chunk) at log point ``done``."""
        rows, n, column = torch.tensor(ids, dtype=torch.int64), len(ids), self.column[done]
        shape = (self.k, len(self.logged))
        self._slot(self.curves, "loss", objective, shape)[rows, column] = objective.detach()[:n].cpu()
        for name, v in (val.values if val is not None else {}).items():
            self._slot(self.curves, f"val_{name}", v, shape)[rows, column] = v.detach()[:n].cpu()

    def finish(
        self,
        ids: Sequence[int],
        pos: Sequence[int],
        epoch: int,
        params: Mapping[str, Tensor],
        train: Metrics,
        val: Metrics | None,
        nonfinite: Tensor | None = None,
    ) -> None:
        """The final results of the rows ``ids``, at positions ``pos`` of their chunk, which ended at ``epoch``."""
        rows, at = torch.tensor(list(ids), dtype=torch.int64), torch.tensor(list(pos), dtype=torch.int64)
        values = dict(train.values)
        flags = {"constant": train.constant}
        if val is not None:
            values.update({f"val_{name}": v for name, v in val.values.items()})
            flags["val_constant"] = val.constant
        for table, new in ((self.metrics, values), (self.flags, flags)):
            for name, v in new.items():
                self._slot(table, name, v, (self.k,))[rows] = v.detach().cpu()[at]
        zero, tiny = sparsity(params)
        finite = torch.stack([torch.isfinite(p.flatten(1)).all(1) for p in params.values()]).all(0)
        self.arrays["zero_frac"][rows] = zero.cpu()[at]
        self.arrays["tiny_frac"][rows] = tiny.cpu()[at]
        self.arrays["finite"][rows] = finite.cpu()[at]
        self.arrays["ended"][rows] = epoch
        if nonfinite is not None:  # engines that track it: the epoch each row's objective turned NaN or inf
            self.arrays["nonfinite_epoch"][rows] = nonfinite.cpu()[at]
        ended = {n: p.detach()[at.to(p.device)].cpu() for n, p in params.items()}  # one copy per chunk
        for j, row in enumerate(ids):
            self.params[row] = {n: p[j].clone() for n, p in ended.items()}
        self.ended_rows.update(ids)

    def prune(self, best: Sequence[int], folds: int) -> None:
        """Drop the parameters of every configuration but ``best`` and those with a fold still training
        (rows ``c * folds .. c * folds + folds - 1`` are configuration ``c``'s)."""
        kept = set(best)
        for row in self.params:
            c = row // folds
            if any(r not in self.ended_rows for r in range(c * folds, (c + 1) * folds)):
                kept.add(c)
        self.params = {row: p for row, p in self.params.items() if row // folds in kept}

    # -- as tensors: checkpoints and gathering

    def names(self) -> dict[str, list[str]]:
        """The names of the metrics, flags, curves and parameters, in their order (JSON, beside :meth:`tensors`)."""
        params = list(next(iter(self.params.values()), {}))
        return {"metrics": list(self.metrics), "flags": list(self.flags), "curves": list(self.curves), "params": params}

    def tensors(self, rows: Sequence[int] | None = None) -> dict[str, Tensor]:
        """Everything recorded, of the rows ``rows`` (all when ``None``), by name.

        The parameters come as ``params/<name>``, stacked over the rows of
        ``rows`` that hold them, listed (in order) by ``kept_rows``.
        """
        index = None if rows is None else torch.tensor(list(rows), dtype=torch.int64)
        out: dict[str, Tensor] = {}
        for group, table in (("metrics", self.metrics), ("flags", self.flags), ("curves", self.curves)):
            out.update({f"{group}/{n}": v for n, v in table.items()})
        out.update(self.arrays)
        if index is not None:
            out = {n: v[index] for n, v in out.items()}
        kept = [r for r in (range(self.k) if rows is None else rows) if r in self.params]
        if kept:
            out["kept_rows"] = torch.tensor(kept, dtype=torch.int64)
            out.update({f"params/{n}": torch.stack([self.params[r][n] for r in kept]) for n in self.params[kept[0]]})
        return out

    @staticmethod
    def select(tensors: Mapping[str, Tensor], saved: Sequence[int], wanted: Sequence[int]) -> dict[str, Tensor]:
        """The rows ``wanted`` (some of ``saved``) of what :meth:`tensors` gave for the rows ``saved``.

        Every tensor is indexed by row, but the parameters and ``kept_rows``,
        which are stacked over the kept rows only.
        """
        place = {r: j for j, r in enumerate(saved)}
        at = torch.tensor([place[r] for r in wanted], dtype=torch.int64)
        out = {n: v[at] for n, v in tensors.items() if not _by_kept_row(n)}
        if "kept_rows" in tensors:
            keep = set(wanted)
            kept = tensors["kept_rows"].tolist()
            pick = torch.tensor([j for j, r in enumerate(kept) if r in keep], dtype=torch.int64)
            out.update({n: v[pick] for n, v in tensors.items() if _by_kept_row(n)})
        return out

    def fill(self, rows: Sequence[int], tensors: Mapping[str, Tensor], names: Mapping[str, list[str]]) -> None:
        """Put the rows ``rows`` of :meth:`tensors` (with :meth:`names`) back."""
        index = torch.tensor(list(rows), dtype=torch.int64)
        for group, table in (("metrics", self.metrics), ("flags", self.flags), ("curves", self.curves)):
            for n in names[group]:
                v = tensors[f"{group}/{n}"]
                self._slot(table, n, v, (self.k, *v.shape[1:]))[index] = v
        for name, array in self.arrays.items():
            if name in tensors:
                array[index] = tensors[name]
        if "kept_rows" in tensors:
            for j, row in enumerate(tensors["kept_rows"].tolist()):
                self.params[row] = {n: tensors[f"params/{n}"][j].clone() for n in names.get("params", [])}
                self.ended_rows.add(row)

    def merge(self, world: _distributed.World, rows: Sequence[int], everywhere: bool, counters: Any) -> list[Any]:
        """Under torch.distributed, every rank's rows ``rows`` of the results and its ``counters`` (JSON),
        on every rank (``everywhere``) or on rank 0; the ranks' counters in rank order (``[]`` on a rank
        that gets nothing). One process: ``[counters]``."""
        value = {"rows": list(rows), "names": self.names(), "counters": counters}
        shared = _distributed.share(
            world,
            "gathering the results",
            value,
            self.tensors(rows) if world.distributed else {},
            everywhere=everywhere,
        )
        if shared is None:
            return []
        if world.distributed:
            for got, tensors in shared:
                if got["rows"]:
                    self.fill(got["rows"], tensors, got["names"])
        return [got["counters"] for got, _ in shared]

    def outputs(self) -> Outputs:
        """The typed results of every row."""
        return Outputs(
            metrics=dict(self.metrics),
            constant=self.flags["constant"],
            val_constant=self.flags.get("val_constant"),
            zero_frac=self.arrays["zero_frac"],
            tiny_frac=self.arrays["tiny_frac"],
            finite=self.arrays["finite"],
            ended=self.arrays["ended"],
            nonfinite_epoch=self.arrays["nonfinite_epoch"],
            curves=dict(self.curves),
            logged=list(self.logged),
            params=dict(self.params),
        )
