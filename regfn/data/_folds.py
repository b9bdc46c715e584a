"""Keyed k-fold cross-validation splits: :func:`kfold`, and the :class:`Folds` it returns.

:func:`kfold` gives every fold the same number of validation rows (``n // k``)
and of training rows (``n - n // k``). Folds of other sizes, such as
scikit-learn's splitters make when ``k`` does not divide ``n``, come from
:meth:`Folds.from_splits`. Either way the folds of a cross-validated sweep
(``regfn.sweep(..., cv=folds)``) are one vmapped program: a configuration's
row of fold ``i`` trains on ``folds.train_of(i)`` and is scored on
``folds.val_of(i)`` (with mini-batches, as long as every fold makes the same
number of batches an epoch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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
        train: ``(k, n_train)`` int64 row indices of each fold's training
            split, ascending (the data's order); :func:`kfold`'s have
            ``n_train = n - n // k``.
        val: ``(k, n_val)`` int64 row indices of each fold's validation
            split, ascending; :func:`kfold`'s have ``n_val = n // k``, and its
            ``k`` validation splits are disjoint.
        n: the number of rows of the data they index.
        stratified: whether each fold's validation split was drawn class by class.
        sizes: ``None`` when every fold has as many training rows as
            ``train`` has columns, and as many validation rows as ``val``
            has (:func:`kfold`'s); else each fold's ``(n_train, n_val)``:
            fold ``i``'s rows are the first ``sizes[i]`` of its rows of
            ``train`` and ``val``, the rest padding (its own first row
            repeated). Read a fold's rows through :meth:`train_of` and
            :meth:`val_of`, which take the sizes into account.

    Examples:
        >>> import torch, regfn
        >>> data = regfn.data.Dataset(torch.arange(10.0)[:, None], torch.zeros(10, 1))
        >>> folds = regfn.data.kfold(regfn.random.key(0), data, 3, stratify=False)
        >>> len(folds), folds.train.shape, folds.val.shape
        (3, torch.Size([3, 7]), torch.Size([3, 3]))
        >>> train, val = folds.split(data, 0)
        >>> len(train), len(val)
        (7, 3)
        >>> uneven = regfn.data.Folds.from_splits([([0, 1, 2, 3], [4, 5, 6]), ([3, 4, 5, 6], [0, 1, 2, 3])], 7)
        >>> uneven.sizes, uneven.train_of(1).tolist(), uneven.val_of(0).tolist()
        (((4, 3), (4, 4)), [3, 4, 5, 6], [4, 5, 6])
    """

    train: Tensor
    val: Tensor
    n: int
    stratified: bool
    sizes: tuple[tuple[int, int], ...] | None = None

    def __len__(self) -> int:
        return self.train.shape[0]

    @classmethod
    def from_splits(cls, splits: Iterable[tuple[Any, Any]], n: int, stratified: bool = False) -> Folds:
        """Folds from ``(train_rows, val_rows)`` pairs, e.g. a scikit-learn splitter's ``split(X, y)``.

        The folds may differ in size (``sizes`` records them). Each fold's
        rows are sorted (the data's order, as :func:`kfold`'s are); a row may
        appear in several folds, and a fold's training and validation rows
        may overlap (nothing here forbids it).

        Args:
            splits: pairs of integer row-index sequences (lists, numpy arrays,
                tensors), each with at least one row, every index in ``[0, n)``.
            n: the number of rows of the data the folds index.
            stratified: recorded as given (whether the splits were drawn class by class).

        Raises:
            ValueError: fewer than two folds, an empty split, repeated rows
                within a split, or an index outside ``[0, n)``.
            TypeError: ``n`` not an int, or indices that are not integers.

        Examples:
            >>> folds = Folds.from_splits([([2, 0], [1]), ([1, 2], [0])], 3)
            >>> folds.train.tolist(), folds.val.tolist(), folds.sizes
            ([[0, 2], [1, 2]], [[1], [0]], None)
        """
        where = "regfn.data.Folds.from_splits"
        n = check_int(n, "n", where, low=1)
        pairs = [(_rows(t, n, where, f"fold {i}'s training rows"), _rows(v, n, where, f"fold {i}'s validation rows"))
                 for i, (t, v) in enumerate(splits)]  # fmt: skip
        if len(pairs) < 2:
            raise ValueError(f"{where}: splits must hold at least 2 folds, got {len(pairs)}")
        train, train_sizes = _padded([t for t, _ in pairs])
        val, val_sizes = _padded([v for _, v in pairs])
        sizes = tuple(zip(train_sizes, val_sizes, strict=True))
        uniform = len(set(train_sizes)) == 1 and len(set(val_sizes)) == 1
        return cls(train, val, n, bool(stratified), None if uniform else sizes)

    @property
    def ragged(self) -> bool:
        """Whether the folds differ in size (``sizes`` is set)."""
        return self.sizes is not None

    def train_size(self, i: int) -> int:
        """Fold ``i``'s number of training rows."""
        return self.train.shape[1] if self.sizes is None else self.sizes[i][0]

    def val_size(self, i: int) -> int:
        """Fold ``i``'s number of validation rows."""
        return self.val.shape[1] if self.sizes is None else self.sizes[i][1]

    def train_of(self, i: int) -> Tensor:
        """Fold ``i``'s training rows (ascending)."""
        return self.train[i, : self.train_size(i)]

    def val_of(self, i: int) -> Tensor:
        """Fold ``i``'s validation rows (ascending)."""
        return self.val[i, : self.val_size(i)]

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
        return data[self.train_of(i).to(device)], data[self.val_of(i).to(device)]

    def check(self, data: Dataset, where: str) -> None:
        """Raise a ValueError unless these folds index ``data``'s rows."""
        if len(data) != self.n:
            raise ValueError(f"{where}: the folds index {self.n} rows, but the data has {len(data)}")

    def to(self, device: torch.device | str) -> Folds:
        """The same folds with their index tensors on ``device``."""
        return Folds(self.train.to(device), self.val.to(device), self.n, self.stratified, self.sizes)


def _rows(rows: Any, n: int, where: str, what: str) -> Tensor:
    """``rows`` as a sorted int64 tensor of distinct indices in ``[0, n)``, at least one."""
    t = torch.as_tensor(rows)
    if t.numel() == 0:
        raise ValueError(f"{where}: {what} must hold at least one row")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{where}: {what} must be integer row indices, got dtype {t.dtype}")
    t = t.reshape(-1).to(torch.int64).cpu()
    if int(t.min()) < 0 or int(t.max()) >= n:
        raise ValueError(f"{where}: {what} must be in [0, n={n}), got {int(t.min())} .. {int(t.max())}")
    t = torch.sort(t).values
    if bool((t[1:] == t[:-1]).any()):
        raise ValueError(f"{where}: {what} must not repeat a row")
    return t


def _padded(rows: list[Tensor]) -> tuple[Tensor, list[int]]:
    """The index tensors as one ``(k, longest)`` tensor, each padded with its own first row; and their sizes."""
    sizes = [len(r) for r in rows]
    width = max(sizes)
    return torch.stack([torch.cat([r, r[:1].expand(width - len(r))]) for r in rows]), sizes


def kfold(key: Tensor, data: Dataset, k: int = 5, *, stratify: bool | None = None, every_row: bool = False) -> Folds:
    """Split ``data`` into ``k`` folds, drawn from ``key``: every row is validated at most once.

    The rows are shuffled with ``regfn.random.permutation(key, n)`` (when
    stratified, the shuffled rows are then grouped class by class, lower label
    first) and dealt to the folds in turn: the ``j``-th row of that order goes
    to fold ``j % k``. Only the first ``k * (n // k)`` rows are dealt, so every
    fold validates exactly ``n // k`` rows and trains on the other ``n - n //
    k``; the ``n % k`` rows left over (fewer than ``k``, the last in that
    order) are in every training split. With ``every_row``, all ``n`` rows
    are dealt, as scikit-learn's ``KFold`` validates every row once: the
    first ``n % k`` folds validate one row more (folds of two sizes, which a
    sweep trains in one program with mini-batches as many in each fold; where
    ``k`` divides ``n`` the folds are the same either way). Stratified, each
    class's count in a fold's validation split is within one row of
    ``count_c / k``. Same key, same folds, on any machine.

    Args:
        key: a :mod:`regfn.random` key.
        data: the dataset to split.
        k: the number of folds, in ``[2, len(data)]``.
        stratify: deal each class in turn (above). ``None`` (default) means
            ``True`` for binary and multiclass tasks and ``False`` for
            regression; a binary task stratifies on its 0/1 labels.
        every_row: deal every row (above), not only the first ``k * (n // k)``.

    Returns:
        :class:`Folds` (``folds.split(data, i)`` gives fold ``i``'s datasets).

    Raises:
        ValueError: ``k`` outside ``[2, len(data)]``, ``stratify=True`` on a
            regression task, or a stratified binary task whose labels are not 0 or 1.
        TypeError: ``k`` not an int, ``stratify`` not a bool or None, ``every_row`` not a bool,
            ``data`` not a Dataset.

    Examples:
        >>> import torch, regfn
        >>> labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
        >>> data = regfn.data.Dataset(torch.zeros(100, 2), labels)
        >>> folds = kfold(regfn.random.key(0), data, 5)
        >>> [torch.bincount(labels[v], minlength=3).tolist() for v in folds.val]
        [[12, 6, 2], [12, 6, 2], [12, 6, 2], [12, 6, 2], [12, 6, 2]]
        >>> sorted(torch.cat(list(folds.val)).tolist()) == list(range(100))
        True
        >>> every = kfold(regfn.random.key(0), data[:98], 5, every_row=True)
        >>> [every.val_size(i) for i in range(5)]
        [20, 20, 20, 19, 19]
        >>> sorted(torch.cat([every.val_of(i) for i in range(5)]).tolist()) == list(range(98))
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
    if not isinstance(every_row, bool):
        raise TypeError(f"{where}: every_row must be a bool, got {type(every_row).__name__}")
    n_val = n // k
    if every_row and n % k:  # fold j % k takes the j-th row of the order, for every j
        rows = torch.arange(n)
        return Folds.from_splits(
            [(rows[~torch.isin(rows, order[f::k])], order[f::k]) for f in range(k)], n, stratified=stratify
        )
    dealt = order[: k * n_val].reshape(n_val, k)  # row j of the order sits at (j // k, j % k): fold j % k
    return Folds.from_val(torch.sort(dealt.T, dim=1).values, n, stratify)
