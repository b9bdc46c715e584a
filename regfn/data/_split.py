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
        mean: shape ``feature_shape`` (``(d,)`` for a table, ``(C, H, W)``
            for images: one value per pixel and channel).
        std: the same shape, with zero standard deviations replaced by 1.
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
        if data.feature_shape != self.mean.shape:
            if data.x.ndim == 2 and self.mean.ndim == 1:
                raise ValueError(
                    f"regfn.data.FeatureStats.apply: data has {data.n_features} features, "
                    f"the statistics have {self.mean.shape[0]}"
                )
            raise ValueError(
                f"regfn.data.FeatureStats.apply: data has examples of shape {tuple(data.feature_shape)}, "
                f"the statistics have shape {tuple(self.mean.shape)}"
            )
        mean = self.mean.to(device=data.x.device, dtype=data.x.dtype)
        std = self.std.to(device=data.x.device, dtype=data.x.dtype)
        return dataclasses.replace(data, x=(data.x - mean) / std)


def standardize(train: Dataset, *others: Dataset) -> tuple:
    """Z-score the features with the *training* split's statistics.

    Computes each feature's mean and (population, ``correction=0``) standard
    deviation on ``train`` only, over the examples (the first axis), replaces
    a zero standard deviation (a constant feature) by 1, and applies
    ``(x - mean) / std`` to ``train`` and to every dataset in ``others``.
    Features of any shape work: for images ``(n, C, H, W)`` every pixel of
    every channel gets its own statistics (of shape ``(C, H, W)``), exactly as
    for the flattened table ``x.flatten(1)``. Targets are unchanged.

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
        >>> from regfn.data import Dataset
        >>> images = Dataset(rr.normal(a, (20, 1, 4, 4)), torch.zeros(20, dtype=torch.int64))
        >>> standardize(images)[1].mean.shape
        torch.Size([1, 4, 4])
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
    stratify: bool | None = None,
) -> tuple[Dataset, Dataset]:
    """Split ``data`` into training and validation examples, drawn from ``key``.

    Both splits keep the examples' original order, the same key gives the
    same split, and with ``val_fraction=0`` the validation split is empty (0
    examples, same columns). The validation split has ``round(val_fraction *
    n)`` examples (halves round up) either way.

    * Unstratified: the validation split is the first ``round(val_fraction *
      n)`` indices of ``regfn.random.permutation(key, n)``; the training
      split takes the rest.
    * Stratified (the default for binary and multiclass data): the same
      permutation, read class by class, shuffles each class (a keyed shuffle
      within the class), and class ``c`` gives its first ``v_c`` examples to
      validation. ``v_c`` is ``val_fraction * count_c`` rounded so that the
      total is the unstratified size (largest remainders): every class gets
      ``floor(val_fraction * count_c)`` examples, and the classes with the
      largest fractional parts (ties: the lower label first) one more, until
      the total is ``round(val_fraction * n)``. So each class's share of the
      validation split is within one example of ``val_fraction * count_c``.

    Args:
        key: a :mod:`regfn.random` key.
        data: the dataset to split.
        val_fraction: the share of examples for validation, in ``[0, 1)``.
        stratify: split each class separately (above). ``None`` (default)
            means ``True`` for binary and multiclass tasks and ``False`` for
            regression. A binary task stratifies on its 0/1 labels.

    Returns:
        ``(train, val)`` datasets.

    Raises:
        ValueError: ``val_fraction`` outside ``[0, 1)``, a split that would
            leave no training rows, ``stratify=True`` on a regression task, or
            a stratified binary split whose labels are not all 0 or 1.
        TypeError: ``stratify`` that is not a bool or None.

    Examples:
        >>> import regfn.random as rr
        >>> from regfn.data import Dataset, quadrants
        >>> train, val = train_val_split(rr.key(1), quadrants(rr.key(0), 200), 0.2)
        >>> len(train), len(val)
        (160, 40)
        >>> labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
        >>> train, val = train_val_split(rr.key(1), Dataset(torch.zeros(100, 2), labels), 0.25)
        >>> torch.bincount(val.y).tolist(), torch.bincount(train.y).tolist()
        ([13, 7, 5], [37, 23, 15])
    """
    where = "regfn.data.train_val_split"
    _check_key(key, where)
    if not isinstance(data, Dataset):
        raise TypeError(f"{where}: data must be a Dataset, got {type(data).__name__}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not (0 <= val_fraction < 1):
        raise ValueError(f"{where}: val_fraction must be in [0, 1), got {val_fraction!r}")
    stratify = stratified(stratify, data, where)
    n = len(data)
    device = data.x.device
    perm = rr.permutation(key, n).to(device)
    n_val = math.floor(float(val_fraction) * n + 0.5)

    if stratify:
        labels, n_classes = _class_labels(data, where)
        labels = labels[perm]
        counts = torch.bincount(labels, minlength=n_classes)
        per_class = _largest_remainders(counts.tolist(), float(val_fraction), n_val)
        order = torch.argsort(labels, stable=True)  # the permutation, class by class
        grouped, grouped_labels = perm[order], labels[order]
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(n, device=device) - starts[grouped_labels]  # position within its class
        val_idx = grouped[rank < torch.tensor(per_class, device=device, dtype=torch.int64)[grouped_labels]]
    else:
        val_idx = perm[:n_val]
    if val_idx.numel() >= n and n > 0:
        raise ValueError(f"{where}: val_fraction={val_fraction!r} leaves no training rows out of {n}")
    in_val = torch.zeros(n, dtype=torch.bool, device=device)
    in_val[val_idx] = True
    return data[~in_val], data[in_val]


def stratified(stratify: object, data: Dataset, where: str) -> bool:
    """The ``stratify`` argument checked and resolved: ``None`` means by class unless the task is regression."""
    if stratify is not None and not isinstance(stratify, bool):
        raise TypeError(f"{where}: stratify must be a bool or None, got {type(stratify).__name__} {stratify!r}")
    if stratify is None:
        return data.task != "regression"
    if stratify and data.task == "regression":
        raise ValueError(
            f"{where}: stratify=True needs a classification task ('binary' or 'multiclass'), got 'regression'"
        )
    return stratify


def _class_labels(data: Dataset, where: str) -> tuple[Tensor, int]:
    """The int64 labels ``(n,)`` to stratify on and the number of classes."""
    if data.task == "multiclass":
        return data.y, len(data.class_names)
    y = data.y[:, 0]
    bad = (y != 0) & (y != 1)
    if bool(bad.any()):
        value = y[bad][0].item()
        raise ValueError(
            f"{where}: a stratified split of a binary task needs 0/1 labels, got {value:g} (or pass stratify=False)"
        )
    return y.to(torch.int64), 2


def _largest_remainders(counts: list[int], fraction: float, total: int) -> list[int]:
    """Per-class validation sizes: ``floor(fraction * count)``, plus one for the largest remainders up to ``total``.

    Examples:
        >>> _largest_remainders([5] * 10, 0.1, 5), _largest_remainders([70, 30], 0.2, 20)
        ([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], [14, 6])
    """
    exact = [fraction * c for c in counts]
    sizes = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(counts)), key=lambda c: (-(exact[c] - sizes[c]), c))
    for c in by_remainder[: max(total - sum(sizes), 0)]:
        sizes[c] += 1
    return sizes


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
