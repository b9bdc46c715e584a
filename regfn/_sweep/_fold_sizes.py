"""Cross-validation folds of different sizes in one program: rows grouped by their fold's size.

Under ``regfn.sweep(..., cv=folds)`` with folds of different sizes
(:meth:`regfn.data.Folds.from_splits`), each row draws its mini-batch order
for its own fold's number of training rows and is evaluated on its own
fold's rows; both run a group of rows per size (:func:`size_groups`). With
folds of one size, nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["SizeGroups", "by_size", "orders_by_size", "size_groups"]

SizeGroups = list[tuple[int, Tensor]]
"""Rows grouped by their fold's size: ``[(size, row indices), ...]`` (sizes ascending)."""


def size_groups(sizes: list[int], device: torch.device) -> SizeGroups:
    """Rows grouped by ``sizes`` (one per row).

    Examples:
        >>> [(n, idx.tolist()) for n, idx in size_groups([455, 456, 455], torch.device("cpu"))]
        [(455, [0, 2]), (456, [1])]
    """
    return [
        (n, torch.tensor([r for r, m in enumerate(sizes) if m == n], dtype=torch.int64, device=device))
        for n in sorted(set(sizes))
    ]


def orders_by_size(order: Callable[..., Tensor], tree: Mapping[str, Any], epoch: Tensor, n: int,
                   batch_size: int, groups: SizeGroups | None) -> Tensor:  # fmt: skip
    """Every row's mini-batch order of ``epoch`` (``order``: :attr:`Program.order <regfn._sweep._program.Program>`),
    each drawn for its own fold's size: a group of rows per size (``None``: every row's is ``n``).

    The orders need the same number of batches from every size (:func:`check_uneven`).
    """
    if groups is None or len(groups) == 1:  # one size: every row's (a chunk may hold one fold size only)
        return order(tree, epoch, n if groups is None else groups[0][0], batch_size)
    parts = [(rows, order({"skey": tree["skey"][rows]}, epoch, size, batch_size)) for size, rows in groups]
    out = parts[0][1].new_empty((tree["skey"].shape[0], *parts[0][1].shape[1:]))
    for rows, part in parts:
        out[rows] = part
    return out


def by_size(evaluate: Callable[[Tensor, int], dict[str, Tensor]], k: int, groups: SizeGroups,
            min_rows: int) -> dict[str, Tensor]:  # fmt: skip
    """``k`` rows' evaluations run a group of rows per size: ``evaluate(rows, size)`` evaluates the rows
    ``rows`` on their first ``size`` rows of data; a group of fewer than ``min_rows`` rows is padded by
    repeating its last (as chunks are, so that every row sums as among others)."""
    out: dict[str, Tensor] = {}
    for size, rows in groups:
        padded = torch.cat([rows, rows[-1:].expand(max(0, min_rows - len(rows)))])
        part = evaluate(padded, size)
        for name, value in part.items():
            if name not in out:
                out[name] = value.new_empty((k, *value.shape[1:]))
            out[name][rows] = value[: len(rows)]
    return out
