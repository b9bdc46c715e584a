"""The :class:`Dataset` table, the ``Task`` and ``PathLike`` types, and the small checks all of regfn.data uses.

:class:`Dataset` holds features ``x`` of shape ``(n, d)`` and targets ``y`` of
shape ``(n, 1)``, with column names and a task (``"binary"`` or
``"regression"``). The helpers check a dtype and a task the same way for
every function of :mod:`regfn.data`.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Sequence
from typing import Literal, Union

import torch
from torch import Tensor

__all__ = ["Dataset", "PathLike", "Task"]

Task = Literal["binary", "regression"]
_TASKS = ("binary", "regression")
PathLike = Union[str, "os.PathLike[str]"]


def _check_float_dtype(dtype: object, fn: str) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"regfn.data.{fn}: dtype must be a floating torch dtype, got {dtype!r}")
    return dtype


def _check_task(task: object, fn: str) -> Task:
    if task not in _TASKS:
        raise ValueError(f"regfn.data.{fn}: task must be 'binary' or 'regression', got {task!r}")
    return task  # type: ignore[return-value]


def _is_binary(y: Tensor) -> bool:
    return y.numel() > 0 and bool(((y == 0) | (y == 1)).all())


# ----------------------------------------------------------------- Dataset


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A table of float features and one float target.

    Attributes:
        x: features, a floating tensor of shape ``(n, d)``.
        y: targets, a floating tensor of shape ``(n, 1)`` (one column, so it
            lines up with a model's single output for ``BCEWithLogitsLoss``
            or ``MSELoss``). A 1-D ``y`` of shape ``(n,)`` given to the
            constructor is reshaped to ``(n, 1)``; ``y[:, 0]`` gives it back.
        feature_names: one name per feature column (default ``x0, x1, ...``).
        target_name: the target's name (default ``"y"``).
        task: ``"binary"`` (0/1 labels) or ``"regression"``. ``None`` (the
            default) infers it: binary when every target is 0 or 1.

    Only shapes are checked on construction (binary labels are not), so a
    ``Dataset`` can be built inside compiled or vmapped code when ``task``
    is given.

    Index a ``Dataset`` with a slice, a 1-D integer tensor or list, or a
    boolean mask to take rows; the result is a ``Dataset`` with the same
    names and task.

    Examples:
        >>> d = Dataset(torch.zeros(4, 3), torch.tensor([0.0, 1.0, 1.0, 0.0]))
        >>> len(d), d.n_features, d.y.shape, d.task, d.feature_names
        (4, 3, torch.Size([4, 1]), 'binary', ('x0', 'x1', 'x2'))
        >>> len(d[1:3]), d[torch.tensor([3, 0])].y[:, 0].tolist()
        (2, [0.0, 0.0])
        >>> d.to(dtype=torch.float64).x.dtype
        torch.float64
    """

    x: Tensor
    y: Tensor
    feature_names: tuple[str, ...] = ()
    target_name: str = "y"
    task: Task | None = None

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise TypeError(
                f"regfn.data.Dataset: x and y must be tensors, got {type(x).__name__} and {type(y).__name__}"
            )
        if x.ndim != 2:
            raise ValueError(f"regfn.data.Dataset: x must have shape (n, d), got {tuple(x.shape)}")
        if not x.dtype.is_floating_point or not y.dtype.is_floating_point:
            raise TypeError(f"regfn.data.Dataset: x and y must be floating tensors, got {x.dtype} and {y.dtype}")
        n, d = x.shape
        if y.ndim == 1:
            y = y.reshape(-1, 1)
            object.__setattr__(self, "y", y)
        if y.ndim != 2 or y.shape[1] != 1 or y.shape[0] != n:
            raise ValueError(
                f"regfn.data.Dataset: y must have shape ({n}, 1) or ({n},) to match x {tuple(x.shape)}, "
                f"got {tuple(y.shape)}"
            )
        names = tuple(self.feature_names) if self.feature_names else tuple(f"x{j}" for j in range(d))
        if len(names) != d or not all(isinstance(s, str) for s in names):
            raise ValueError(
                f"regfn.data.Dataset: feature_names must be {d} strings (one per column of x), got {names!r}"
            )
        object.__setattr__(self, "feature_names", names)
        if not isinstance(self.target_name, str):
            raise TypeError(f"regfn.data.Dataset: target_name must be a str, got {self.target_name!r}")
        task = self.task
        if task is None:
            task = "binary" if _is_binary(y) else "regression"
        object.__setattr__(self, "task", _check_task(task, "Dataset"))

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        """The number of feature columns ``d``."""
        return self.x.shape[1]

    def __getitem__(self, index: slice | Tensor | Sequence[int]) -> Dataset:
        if isinstance(index, numbers.Integral) or (isinstance(index, Tensor) and index.ndim == 0):
            raise TypeError(
                "regfn.data.Dataset: index with a slice, an index tensor or a boolean mask "
                "(data[i:i + 1] for a single row), not an int"
            )
        if not isinstance(index, (slice, Tensor)):
            index = torch.as_tensor(index, dtype=torch.int64)
        if isinstance(index, Tensor):
            index = index.to(self.x.device)
            if index.numel() == 0 and index.dtype != torch.bool:
                index = index.to(torch.int64)
        return dataclasses.replace(self, x=self.x[index], y=self.y[index])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Dataset:
        """A copy with ``x`` and ``y`` moved to ``device`` and/or cast to the floating ``dtype``."""
        if dtype is not None:
            _check_float_dtype(dtype, "Dataset.to")
        return dataclasses.replace(
            self, x=self.x.to(device=device, dtype=dtype), y=self.y.to(device=device, dtype=dtype)
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(n={len(self)}, d={self.n_features}, task={self.task!r}, "
            f"target_name={self.target_name!r}, feature_names={self.feature_names!r}, "
            f"dtype={self.x.dtype}, device={self.x.device})"
        )
