"""Preparing data for training: :func:`standardize` (with :class:`FeatureStats`), :func:`train_val_split`, :func:`batches`.

Splits and shuffles are drawn from explicit :mod:`regfn.random` keys;
:func:`batches` returns a tensor, so it also works under ``torch.func.vmap``
over keys.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple

import torch
from torch import Tensor

from .. import random as rr
from .._checks import check_int, is_int
from ..random import _check_key
from ._dataset import Dataset

__all__ = ["FeatureStats", "batches", "standardize", "train_val_split"]


class FeatureStats(NamedTuple):
    """Per-feature mean and standard deviation from :func:`standardize`.

    Attributes:
        mean: shape ``(d,)``.
        std: shape ``(d,)``, with zero standard deviations replaced by 1.
    """

    mean: Tensor
    std: Tensor

    def apply(self, data: Dataset) -> Dataset:
        """Standardize ``data``'s features with these statistics (e.g. a test split later).

        Examples:
            >>> import torch
            >>> from regfn.data import Dataset
            >>> stats = FeatureStats(mean=torch.tensor([1.0, 10.0]), std=torch.tensor([2.0, 5.0]))
            >>> stats.apply(Dataset(torch.tensor([[3.0, 0.0]]), torch.zeros(1, 1))).x
            tensor([[ 1., -2.]])
        """
        if data.n_features != self.mean.shape[0]:
            raise ValueError(
                f"regfn.data.FeatureStats.apply: data has {data.n_features} features, "
                f"the statistics have {self.mean.shape[0]}"
            )
        mean = self.mean.to(device=data.x.device, dtype=data.x.dtype)
        std = self.std.to(device=data.x.device, dtype=data.x.dtype)
        return dataclasses.replace(data, x=(data.x - mean) / std)


def standardize(train: Dataset, *others: Dataset) -> tuple:
    """Z-score the features with the *training* split's statistics.

    Computes each feature's mean and (population, ``correction=0``) standard
    deviation on ``train`` only, replaces a zero standard deviation (a
    constant column) by 1, and applies ``(x - mean) / std`` to ``train`` and
    to every dataset in ``others``. Targets are unchanged.

    Args:
        train: the dataset whose statistics are used (at least one row).
        *others: datasets to transform the same way (validation, test).

    Returns:
        ``(train_z, *others_z, stats)``, where ``stats`` is a
        :class:`FeatureStats` (``stats.mean``, ``stats.std``, and
        ``stats.apply(data)`` for data that comes later).

    Examples:
        >>> import regfn.random as rr
        >>> from regfn.data import quadrants
        >>> a, b = rr.split(rr.key(0))
        >>> train_z, val_z, stats = standardize(quadrants(a, 100), quadrants(b, 50))
        >>> torch.allclose(train_z.x.mean(0), torch.zeros(2), atol=1e-6), stats.std.shape
        (True, torch.Size([2]))
    """
    if not isinstance(train, Dataset) or not all(isinstance(o, Dataset) for o in others):
        raise TypeError("regfn.data.standardize: expected Dataset arguments")
    if len(train) == 0:
        raise ValueError("regfn.data.standardize: the training dataset is empty; cannot compute its statistics")
    x64 = train.x.to(torch.float64)
    mean = x64.mean(0)
    std = x64.std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    stats = FeatureStats(mean.to(train.x.dtype), std.to(train.x.dtype))
    exact = FeatureStats(mean, std)  # apply in float64, then cast back
    out = []
    for data in (train, *others):
        z = exact.apply(data.to(dtype=torch.float64))
        out.append(dataclasses.replace(data, x=z.x.to(data.x.dtype)))
    return (*out, stats)


def train_val_split(
    key: Tensor,
    data: Dataset,
    val_fraction: float = 0.2,
    *,
    stratify: bool = False,
) -> tuple[Dataset, Dataset]:
    """Split ``data`` into training and validation rows, drawn from ``key``.

    The validation split takes ``round(val_fraction * n)`` rows (halves
    round up) chosen by ``regfn.random.permutation(key, n)``; the training
    split takes the rest. Both keep the rows' original order. The same key
    gives the same split. With ``val_fraction=0`` the validation split is
    empty (0 rows, same columns).

    Args:
        key: a :mod:`regfn.random` key.
        data: the dataset to split.
        val_fraction: the share of rows for validation, in ``[0, 1)``.
        stratify: for binary tasks, split each class separately so that both
            splits keep the class balance (``round(val_fraction * n_c)``
            validation rows per class).

    Returns:
        ``(train, val)`` datasets.

    Raises:
        ValueError: ``val_fraction`` outside ``[0, 1)``, a split that would
            leave no training rows, or ``stratify=True`` on a regression task.

    Examples:
        >>> import regfn.random as rr
        >>> from regfn.data import quadrants
        >>> train, val = train_val_split(rr.key(1), quadrants(rr.key(0), 200), 0.2)
        >>> len(train), len(val)
        (160, 40)
    """
    _check_key(key, "regfn.data.train_val_split")
    if not isinstance(data, Dataset):
        raise TypeError(f"regfn.data.train_val_split: data must be a Dataset, got {type(data).__name__}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not (0 <= val_fraction < 1):
        raise ValueError(f"regfn.data.train_val_split: val_fraction must be in [0, 1), got {val_fraction!r}")
    n = len(data)
    perm = rr.permutation(key, n).to(data.x.device)

    def n_val_of(count: int) -> int:
        return math.floor(float(val_fraction) * count + 0.5)

    if stratify:
        if data.task != "binary":
            raise ValueError("regfn.data.train_val_split: stratify=True needs a binary task, got 'regression'")
        labels = data.y[perm, 0]
        parts = []
        for c in (0.0, 1.0):
            idx_c = perm[labels == c]
            parts.append(idx_c[: n_val_of(idx_c.numel())])
        val_idx = torch.cat(parts)
    else:
        val_idx = perm[: n_val_of(n)]
    if val_idx.numel() >= n and n > 0:
        raise ValueError(
            f"regfn.data.train_val_split: val_fraction={val_fraction!r} leaves no training rows out of {n}"
        )
    in_val = torch.zeros(n, dtype=torch.bool, device=data.x.device)
    in_val[val_idx] = True
    return data[~in_val], data[in_val]


def batches(key: Tensor, n: int, batch_size: int) -> Tensor:
    """Shuffled mini-batch indices for one epoch, drawn from ``key``.

    A permutation ``regfn.random.permutation(key, n)`` cut into
    ``n // batch_size`` rows of ``batch_size`` indices. The last incomplete
    batch is dropped (``drop_last=True`` behaviour): the ``n % batch_size``
    rows left out differ from epoch to epoch because the permutation does.
    The result is a tensor, not a generator, so this works under
    ``torch.func.vmap`` over a batch of keys (one shuffle per key). Use a
    new key each epoch, e.g. ``regfn.random.fold_in(key, epoch)``.

    Args:
        key: a :mod:`regfn.random` key.
        n: the number of rows to shuffle.
        batch_size: rows per batch, in ``[1, n]``.

    Returns:
        An int64 tensor of shape ``(n // batch_size, batch_size)``; its
        entries are distinct indices in ``[0, n)``. Use ``data.x[idx[b]]``
        for batch ``b``.

    Examples:
        >>> import regfn.random as rr
        >>> idx = batches(rr.key(0), 10, 3)
        >>> idx.shape, len(set(idx.flatten().tolist()))
        (torch.Size([3, 3]), 9)
        >>> keys = rr.split(rr.key(0), 4)
        >>> torch.func.vmap(lambda k: batches(k, 10, 3))(keys).shape
        torch.Size([4, 3, 3])
    """
    n = check_int(n, "n", "regfn.data.batches", low=1)
    if not is_int(batch_size):
        raise TypeError(f"regfn.data.batches: batch_size must be an int, got {type(batch_size).__name__}")
    batch_size = int(batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(f"regfn.data.batches: batch_size must be in [1, n={n}], got {batch_size}")
    n_batches = n // batch_size
    return rr.permutation(key, n)[: n_batches * batch_size].reshape(n_batches, batch_size)
