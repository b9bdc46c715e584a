"""Keyed k-fold cross-validation splits: :func:`kfold` and the :class:`Folds` it returns.

Every fold has the same number of validation rows (``n // k``) and of
training rows (``n - n // k``), so that the folds of a cross-validated sweep
(``regfn.sweep(..., cv=k)``) are one vmapped program: a configuration's row
of fold ``i`` trains on ``folds.train[i]`` and is scored on ``folds.val[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .. import random as rr
from .._checks import check_int
from ..random import _check_key
from ._dataset import Dataset
from ._split import _class_labels, stratified

__all__ = ["Folds", "kfold"]


@dataclass(frozen=True)
class Folds:
    """``k`` train/validation splits of one dataset, as row indices.

    Attributes:
        train: ``(k, n - n // k)`` int64 row indices of each fold's training
            split, ascending (the data's order).
        val: ``(k, n // k)`` int64 row indices of each fold's validation
            split, ascending. The ``k`` validation splits are disjoint.
        n: the number of rows of the data they index.
        stratified: whether each fold's validation split was drawn class by class.

    Examples:
        >>> import torch, regfn
        >>> data = regfn.data.Dataset(torch.arange(10.0)[:, None], torch.zeros(10, 1))
        >>> folds = regfn.data.kfold(regfn.random.key(0), data, 3, stratify=False)
        >>> len(folds), folds.train.shape, folds.val.shape
        (3, torch.Size([3, 7]), torch.Size([3, 3]))
        >>> train, val = folds.split(data, 0)
        >>> len(train), len(val)
        (7, 3)
    """

    train: Tensor
    val: Tensor
    n: int
    stratified: bool

    def __len__(self) -> int:
        return self.train.shape[0]

    @classmethod
    def from_val(cls, val: Tensor, n: int, stratified: bool) -> Folds:
        """The folds whose held-out rows are ``val`` (``(k, m)``, ascending): each trains on the other rows."""
        k = val.shape[0]
        held = torch.zeros(k, n, dtype=torch.bool)
        held.scatter_(1, val, True)
        train = torch.arange(n).expand(k, n)[~held].reshape(k, n - val.shape[1])
        return cls(train.contiguous(), val.contiguous(), n, stratified)

    def split(self, data: Dataset, i: int) -> tuple[Dataset, Dataset]:
        """Fold ``i``'s ``(train, val)`` datasets of ``data`` (the data the folds were drawn for)."""
        self.check(data, "regfn.data.Folds.split")
        i = check_int(i, "i", "regfn.data.Folds.split", low=0, high=len(self) - 1)
        device = data.x.device
        return data[self.train[i].to(device)], data[self.val[i].to(device)]

    def check(self, data: Dataset, where: str) -> None:
        """Raise a ValueError unless these folds index ``data``'s rows."""
        if len(data) != self.n:
            raise ValueError(f"{where}: the folds index {self.n} rows, but the data has {len(data)}")

    def to(self, device: torch.device | str) -> Folds:
        """The same folds with their index tensors on ``device``."""
        return Folds(self.train.to(device), self.val.to(device), self.n, self.stratified)


def kfold(key: Tensor, data: Dataset, k: int = 5, *, stratify: bool | None = None) -> Folds:
    """Split ``data`` into ``k`` folds, drawn from ``key``: every row is validated at most once.

    The rows are shuffled with ``regfn.random.permutation(key, n)`` (when
    stratified, the shuffled rows are then grouped class by class, lower label
    first) and dealt to the folds in turn: the ``j``-th row of that order goes
    to fold ``j % k``. Only the first ``k * (n // k)`` rows are dealt, so every
    fold validates exactly ``n // k`` rows and trains on the other ``n - n //
    k``; the ``n % k`` rows left over (fewer than ``k``, the last in that
    order) are in every training split. Stratified, each class's count in a
    fold's validation split is within one row of ``count_c / k``. Same key,
    same folds, on any machine.

    Args:
        key: a :mod:`regfn.random` key.
        data: the dataset to split.
        k: the number of folds, in ``[2, len(data)]``.
        stratify: deal each class in turn (above). ``None`` (default) means
            ``True`` for binary and multiclass tasks and ``False`` for
            regression; a binary task stratifies on its 0/1 labels.

    Returns:
        :class:`Folds` (``folds.split(data, i)`` gives fold ``i``'s datasets).

    Raises:
        ValueError: ``k`` outside ``[2, len(data)]``, ``stratify=True`` on a
            regression task, or a stratified binary task whose labels are not 0 or 1.
        TypeError: ``k`` not an int, ``stratify`` not a bool or None, ``data`` not a Dataset.

    Examples:
        >>> import torch, regfn
        >>> labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
        >>> data = regfn.data.Dataset(torch.zeros(100, 2), labels)
        >>> folds = kfold(regfn.random.key(0), data, 5)
        >>> [torch.bincount(labels[v], minlength=3).tolist() for v in folds.val]
        [[12, 6, 2], [12, 6, 2], [12, 6, 2], [12, 6, 2], [12, 6, 2]]
        >>> sorted(torch.cat(list(folds.val)).tolist()) == list(range(100))
        True
    """
    where = "regfn.data.kfold"
    _check_key(key, where)
    if not isinstance(data, Dataset):
        raise TypeError(f"{where}: data must be a Dataset, got {type(data).__name__}")
    n = len(data)
    if n < 2:
        raise ValueError(f"{where}: data must have at least 2 rows to split into folds, got {n}")
    k = check_int(k, "k", where, low=2, high=n)
    stratify = stratified(stratify, data, where)
    order = rr.permutation(key, n)
    if stratify:
        labels, _ = _class_labels(data.to("cpu"), where)
        order = order[torch.argsort(labels[order], stable=True)]
    n_val = n // k
    dealt = order[: k * n_val].reshape(n_val, k)  # row j of the order sits at (j // k, j % k): fold j % k
    return Folds.from_val(torch.sort(dealt.T, dim=1).values, n, stratify)
