"""The :class:`Dataset` table, the ``Task`` and ``PathLike`` types, and the small checks all of regfn.data uses.

:class:`Dataset` holds features ``x`` of shape ``(n, ...)`` (a table
``(n, d)``, images ``(n, C, H, W)``, sequences) and targets ``y``: float
``(n, 1)`` or ``(n, m)`` (binary, regression, multi-output) or int64 class
labels ``(n,)`` (multi-class), with names and a task (``"binary"``,
``"multiclass"`` or ``"regression"``). The helpers check a dtype and a task
the same way for every function of :mod:`regfn.data`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Sequence
from typing import Literal, Union

import torch
from torch import Tensor

__all__ = ["Dataset", "PathLike", "Task"]

Task = Literal["binary", "multiclass", "regression"]
_TASKS = ("binary", "multiclass", "regression")
PathLike = Union[str, "os.PathLike[str]"]


def _check_float_dtype(dtype: object, fn: str) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"regfn.data.{fn}: dtype must be a floating torch dtype, got {dtype!r}")
    return dtype


def _check_task(task: object, fn: str) -> Task:
    if task not in _TASKS:
        raise ValueError(f"regfn.data.{fn}: task must be 'binary', 'multiclass' or 'regression', got {task!r}")
    return task  # type: ignore[return-value]


def _is_binary(y: Tensor) -> bool:
    return y.numel() > 0 and y.shape[1] == 1 and bool(((y == 0) | (y == 1)).all())


_MAX_INFERRED_CLASSES = 2**20  # a larger label without class_names is almost surely not a class index


def _is_int_dtype(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


# ----------------------------------------------------------------- Dataset


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Examples of any shape and their targets, with names and a task.

    Attributes:
        x: features, a floating tensor of shape ``(n, ...)`` with at least two
            dimensions: a table ``(n, d)``, images ``(n, C, H, W)``, sequences
            ``(n, T, d)``. A single feature is ``(n, 1)`` (``x[:, None]``).
        y: targets, one of: a floating tensor of shape ``(n, 1)`` (binary 0/1
            labels or one regression target, lining up with a model's single
            output for ``BCEWithLogitsLoss`` or ``MSELoss``; a 1-D floating
            ``y`` of shape ``(n,)`` is reshaped to ``(n, 1)``, and ``y[:, 0]``
            gives it back); a floating tensor of shape ``(n, m)`` (``m``
            regression targets); or an integer tensor of shape ``(n,)``: class
            labels in ``[0, n_classes)`` for a multi-class task
            (``CrossEntropyLoss``), stored as int64 (other integer dtypes are
            converted; bool is refused).
        feature_names: one name per feature, in ``x.flatten(1)``'s order.
            Default ``x0, x1, ...`` for a table ``(n, d)`` and ``()`` (no names)
            for higher-dimensional ``x``.
        target_name: the target's name (default ``"y"``).
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``. ``None`` (the
            default) infers it: integer labels are multiclass, one floating
            column whose every value is 0 or 1 is binary, any other floating
            ``y`` is regression. A given task must fit ``y``: multiclass needs
            integer labels ``(n,)``, binary one floating column, regression
            floating ``(n, m)`` (a 0/1 regression target needs
            ``task="regression"``).
        class_names: the names of the classes, ``class_names[i]`` for label
            ``i``. For multiclass the default is ``("0", "1", ..., str(max
            label))``, filled in on construction, so that ``len(class_names) ==
            n_classes`` and a subset that misses a class (a small split) keeps
            every class. Binary data has ``()`` or two names (for 0 and 1);
            regression data has none.

    Construction checks shapes and dtypes and, for multiclass, that every
    label lies in ``[0, n_classes)`` (this reads the labels). Binary labels
    are not checked when ``task`` is given, so a binary or regression
    ``Dataset`` can be built inside compiled or vmapped code.

    Index a ``Dataset`` with a slice, a 1-D integer tensor or list, or a
    boolean mask to take examples; the result is a ``Dataset`` with the same
    names, task and classes.

    Examples:
        >>> d = Dataset(torch.zeros(4, 3), torch.tensor([0.0, 1.0, 1.0, 0.0]))
        >>> len(d), d.n_features, d.y.shape, d.task, d.feature_names
        (4, 3, torch.Size([4, 1]), 'binary', ('x0', 'x1', 'x2'))
        >>> len(d[1:3]), d[torch.tensor([3, 0])].y[:, 0].tolist()
        (2, [0.0, 0.0])
        >>> d.to(dtype=torch.float64).x.dtype
        torch.float64

        Images with class labels:

        >>> images = Dataset(torch.zeros(6, 1, 8, 8), torch.tensor([0, 2, 1, 2, 0, 1]))
        >>> images.task, images.n_classes, images.class_names, images.y.dtype
        ('multiclass', 3, ('0', '1', '2'), torch.int64)
        >>> images.feature_shape, images.n_features, images[:2].n_classes
        (torch.Size([1, 8, 8]), 64, 3)
        >>> Dataset(torch.zeros(2, 1), torch.tensor([0, 3]), class_names=("a", "b", "c"))
        Traceback (most recent call last):
        ...
        ValueError: regfn.data.Dataset: class labels must be in [0, 3) (one per class name), got 3
    """

    x: Tensor
    y: Tensor
    feature_names: tuple[str, ...] = ()
    target_name: str = "y"
    task: Task | None = None
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = "regfn.data.Dataset"
        x, y = self.x, self.y
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise TypeError(f"{where}: x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
        if x.ndim < 2:
            raise ValueError(
                f"{where}: x must have shape (n, d) or (n, d1, d2, ...), with examples along the first axis "
                f"(use x[:, None] for one feature), got {tuple(x.shape)}"
            )
        if not x.dtype.is_floating_point:
            raise TypeError(f"{where}: x must be a floating tensor, got {x.dtype}")
        n = x.shape[0]
        labels = _is_int_dtype(y.dtype)
        if y.dtype.is_floating_point:
            if y.ndim == 1:
                y = y.reshape(-1, 1)
            if y.ndim != 2 or y.shape[0] != n or y.shape[1] < 1:
                raise ValueError(
                    f"{where}: y must have shape ({n}, 1), ({n}, m) or ({n},) to match x {tuple(x.shape)}, "
                    f"got {tuple(self.y.shape)}"
                )
        elif labels:
            if y.ndim != 1 or y.shape[0] != n:
                hint = " (use y[:, 0])" if y.ndim == 2 and y.shape == (n, 1) else ""
                raise ValueError(
                    f"{where}: integer class labels y must have shape ({n},) to match x {tuple(x.shape)}, "
                    f"got {tuple(y.shape)}{hint}"
                )
            y = y.to(torch.int64)
        else:
            raise TypeError(
                f"{where}: y must be a floating tensor (targets) or an integer tensor (class labels), got {y.dtype}"
            )
        object.__setattr__(self, "y", y)

        task = self.task
        if task is None:
            task = "multiclass" if labels else ("binary" if _is_binary(y) else "regression")
        task = _check_task(task, "Dataset")
        if task == "multiclass" and not labels:
            raise ValueError(
                f"{where}: task='multiclass' needs integer class labels y of shape (n,), got {y.dtype} y of shape "
                f"{tuple(y.shape)} (labels 0..K-1 stored as floats: y[:, 0].long())"
            )
        if task == "binary" and (labels or y.shape[1] != 1):
            got = "integer labels (use y.float(), or task='multiclass')" if labels else f"y of shape {tuple(y.shape)}"
            raise ValueError(f"{where}: task='binary' needs one floating column of 0/1 labels, got {got}")
        if task == "regression" and labels:
            raise ValueError(f"{where}: task='regression' needs floating targets, got {y.dtype} labels (use y.float())")
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "class_names", self._checked_class_names(task))

        n_features = math.prod(x.shape[1:])
        if self.feature_names:
            names = tuple(self.feature_names)
            if len(names) != n_features or not all(isinstance(s, str) for s in names):
                raise ValueError(
                    f"{where}: feature_names must be {n_features} strings (one per feature of x), got {names!r}"
                )
        else:
            names = tuple(f"x{j}" for j in range(n_features)) if x.ndim == 2 else ()
        object.__setattr__(self, "feature_names", names)
        if not isinstance(self.target_name, str):
            raise TypeError(f"{where}: target_name must be a str, got {self.target_name!r}")

    def _checked_class_names(self, task: Task) -> tuple[str, ...]:
        where = "regfn.data.Dataset"
        names = self.class_names
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise TypeError(f"{where}: class_names must be a tuple of str, got {names!r}")
        names = tuple(names)
        if not all(isinstance(s, str) for s in names):
            raise TypeError(f"{where}: class_names must be a tuple of str, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: class_names must be distinct, got {names!r}")
        if task == "regression" and names:
            raise ValueError(f"{where}: class_names must be empty for task='regression', got {names!r}")
        if task == "binary" and names and len(names) != 2:
            raise ValueError(f"{where}: class_names must be 2 names (for 0 and 1) for task='binary', got {names!r}")
        if task != "multiclass" or self.y.numel() == 0:
            return names
        low, high = (int(v) for v in torch.aminmax(self.y))
        if names:
            bad = low if low < 0 else high if high >= len(names) else None
            if bad is not None:
                raise ValueError(f"{where}: class labels must be in [0, {len(names)}) (one per class name), got {bad}")
            return names
        if low < 0:
            raise ValueError(f"{where}: class labels must be >= 0, got {low}")
        if high >= _MAX_INFERRED_CLASSES:
            raise ValueError(
                f"{where}: class labels must be below {_MAX_INFERRED_CLASSES} when class_names is not given "
                f"(labels are 0..K-1), got {high}"
            )
        return tuple(str(c) for c in range(high + 1))

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        """The number of features per example: the product of :attr:`feature_shape` (``d`` for a table)."""
        return math.prod(self.x.shape[1:])

    @property
    def feature_shape(self) -> torch.Size:
        """The shape of one example, ``x.shape[1:]`` (``(d,)`` for a table, ``(C, H, W)`` for images)."""
        return self.x.shape[1:]

    @property
    def n_classes(self) -> int | None:
        """The number of classes: 2 for binary, ``len(class_names)`` for multiclass (0 for no examples), ``None`` for regression."""
        if self.task == "binary":
            return 2
        if self.task == "multiclass":
            return len(self.class_names)
        return None

    def _replace(self, x: Tensor, y: Tensor) -> Dataset:
        """A copy with new ``x`` and ``y`` whose checks already hold (a subset, a move or a cast)."""
        new = object.__new__(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(new, f.name, getattr(self, f.name))
        object.__setattr__(new, "x", x)
        object.__setattr__(new, "y", y)
        return new

    def __getitem__(self, index: slice | Tensor | Sequence[int]) -> Dataset:
        if isinstance(index, numbers.Integral) or (isinstance(index, Tensor) and index.ndim == 0):
            raise TypeError(
                "regfn.data.Dataset: index with a slice, an index tensor or a boolean mask "
                "(data[i:i + 1] for a single row), not an int"
            )
        if not isinstance(index, (slice, Tensor)):
            index = torch.as_tensor(index, dtype=torch.int64)
        if isinstance(index, Tensor):
            if index.ndim != 1:
                raise IndexError(
                    f"regfn.data.Dataset: index with a 1-D index tensor or boolean mask, got shape {tuple(index.shape)}"
                )
            index = index.to(self.x.device)
            if index.numel() == 0 and index.dtype != torch.bool:
                index = index.to(torch.int64)
        return self._replace(self.x[index], self.y[index])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Dataset:
        """A copy with ``x`` and ``y`` moved to ``device`` and/or cast to the floating ``dtype``.

        The cast applies to ``x`` and to a floating ``y``; class labels stay int64.
        """
        if dtype is not None:
            _check_float_dtype(dtype, "Dataset.to")
        y_dtype = dtype if self.y.dtype.is_floating_point else None
        return self._replace(self.x.to(device=device, dtype=dtype), self.y.to(device=device, dtype=y_dtype))

    def __repr__(self) -> str:
        shape = f", feature_shape={tuple(self.feature_shape)}" if self.x.ndim > 2 else ""
        classes = f", n_classes={self.n_classes}" if self.task == "multiclass" else ""
        return (
            f"Dataset(n={len(self)}, d={self.n_features}{shape}, task={self.task!r}{classes}, "
            f"target_name={self.target_name!r}, feature_names={self.feature_names!r}, "
            f"dtype={self.x.dtype}, device={self.x.device})"
        )
