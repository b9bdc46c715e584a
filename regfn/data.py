"""Data for the regularization experiments: CSV loading, synthetic sets, splits, batches.

Everything random takes an explicit :mod:`regfn.random` key, so a split, a
synthetic data set or an epoch's shuffle is a pure function of its key.

* :class:`Dataset` holds features ``x`` of shape ``(n, d)`` and targets ``y``
  of shape ``(n, 1)`` (float, ready for ``BCEWithLogitsLoss`` / ``MSELoss``
  against a model with one output), with column names and a task.
* :func:`load_csv` reads a numeric CSV (the tutorial's format: a header row,
  numeric columns, the label last) and reports bad input as one-line
  ``ValueError`` messages that name the file, row and column.
* :func:`quadrants` and :func:`sparse_regression` make the tutorial's
  synthetic data from a key.
* :func:`standardize`, :func:`train_val_split` and :func:`batches` prepare
  training: z-scores with train statistics, a keyed split, keyed mini-batch
  indices (which also work under ``torch.func.vmap`` over keys).

Examples:
    >>> import regfn.random as rr
    >>> k_data, k_split, k_epoch = rr.split(rr.key(0), 3)
    >>> data = quadrants(k_data, 200)
    >>> train, val = train_val_split(k_split, data, 0.25)
    >>> train, val, stats = standardize(train, val)
    >>> len(train), len(val), train.task
    (150, 50, 'binary')
    >>> idx = batches(k_epoch, len(train), 32)
    >>> idx.shape, train.x[idx].shape, train.y[idx].shape
    (torch.Size([4, 32]), torch.Size([4, 32, 2]), torch.Size([4, 32, 1]))
"""

from __future__ import annotations

import csv
import dataclasses
import math
import numbers
import os
from collections.abc import Sequence
from typing import Literal, NamedTuple, Union

import torch
from torch import Tensor

from . import random as rr

__all__ = [
    "Dataset",
    "FeatureStats",
    "batches",
    "load_csv",
    "quadrants",
    "sparse_regression",
    "standardize",
    "synthetic_diabetes",
    "train_val_split",
]

Task = Literal["binary", "regression"]
_TASKS = ("binary", "regression")
PathLike = Union[str, "os.PathLike[str]"]


# ----------------------------------------------------------------- helpers


def _check_count(value: object, name: str, fn: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"regfn.data.{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < lo:
        raise ValueError(f"regfn.data.{fn}: {name} must be >= {lo}, got {value}")
    return value


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


# ----------------------------------------------------------------- CSV


def _show(value: str, limit: int = 40) -> str:
    """A cell or name quoted for a one-line message (control characters escaped, long text cut)."""
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return repr(value)


def _show_path(path: str) -> str:
    return path if path.isprintable() else repr(path)


def _parse_cell(cell: str) -> float | str:
    """The cell's finite float value, or a short description of why it is not one."""
    text = cell.strip()
    if not text:
        return "empty cell (missing value)"
    try:
        if "_" in text:  # float() accepts "1_000"; a CSV number does not
            raise ValueError
        value = float(text)
    except ValueError:
        return f"{_show(cell)} is not a number"
    if math.isnan(value):
        return f"{_show(cell)} is a missing value (NaN)"
    if math.isinf(value):
        return f"{_show(cell)} is not a finite number"
    return value


def load_csv(
    path: PathLike,
    *,
    target: int | str = -1,
    header: bool | Literal["infer"] = "infer",
    dtype: torch.dtype = torch.float32,
    task: Task | None = None,
    delimiter: str = ",",
) -> Dataset:
    """Load a numeric CSV table (one row per example) as a :class:`Dataset`.

    The format is the tutorial's: an optional header row, numeric cells, and
    one target column (by default the last). Blank lines are skipped, cells
    may have surrounding spaces, and a UTF-8 byte order mark is ignored.

    Args:
        path: the CSV file.
        target: the target column, as an index into the columns (negative
            counts from the end) or as a header name.
        header: ``True`` if the first row holds column names, ``False`` if it
            is data, ``"infer"`` (default) to treat it as a header when any
            of its cells is not a number. Without a header, columns are named
            ``col0, col1, ...``.
        dtype: floating dtype of ``x`` and ``y``.
        task: ``"binary"`` (the target must be 0/1), ``"regression"``, or
            ``None`` to infer: binary when every target is 0 or 1. A 0/1
            regression target needs ``task="regression"``.
        delimiter: the field separator.

    Returns:
        A :class:`Dataset` with ``y`` of shape ``(n, 1)``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be used: it is a directory, not UTF-8
            text, empty, has fewer than 2 data rows or 2 columns, ragged
            rows, a cell that is empty, not a number, NaN or infinite, a
            ``target`` that names no column, or (``task="binary"``) a label
            other than 0/1. Each message is a single line naming the file
            and, where it applies, the row (numbered like the file's lines,
            header included: row 1 is the first line) and the column, e.g.
            ``data.csv: row 12, column 'Glucose': 'abc' is not a number``.
        TypeError: an argument of the wrong type.

    Examples:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "toy.csv")
        ...     with open(path, "w") as f:
        ...         _ = f.write("age,bmi,label\\n50,33.6,1\\n31,26.6,0\\n32,23.3,1\\n")
        ...     data = load_csv(path)
        >>> data.x.shape, data.y.shape, data.feature_names, data.target_name, data.task
        (torch.Size([3, 2]), torch.Size([3, 1]), ('age', 'bmi'), 'label', 'binary')
    """
    if isinstance(target, bool) or not isinstance(target, (numbers.Integral, str)):
        raise TypeError(f"regfn.data.load_csv: target must be a column index or name, got {target!r}")
    if header not in (True, False, "infer"):
        raise ValueError(f"regfn.data.load_csv: header must be True, False or 'infer', got {header!r}")
    dtype = _check_float_dtype(dtype, "load_csv")
    if task is not None:
        _check_task(task, "load_csv")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"regfn.data.load_csv: delimiter must be a single character, got {delimiter!r}")

    where = _show_path(os.fspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{where}: is a directory, not a CSV file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no such file")

    names: list[str] | None = None
    values: list[list[float]] = []
    line_nums: list[int] = []
    ncols = 0
    col_names: list[str] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            first = True
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if first:
                    first = False
                    ncols = len(row)
                    parsed = [_parse_cell(c) for c in row]
                    is_header = header is True or (
                        header == "infer"
                        and any(isinstance(p, str) and c.strip() for p, c in zip(parsed, row, strict=True))
                    )
                    if is_header:
                        names = [c.strip() or f"col{j}" for j, c in enumerate(row)]
                        col_names = names
                        continue
                    col_names = [f"col{j}" for j in range(ncols)]
                if len(row) != ncols:
                    source = "the header" if names is not None else "the first row"
                    raise ValueError(f"{where}: row {line} has {len(row)} columns, expected {ncols} as in {source}")
                out = []
                for j, cell in enumerate(row):
                    v = _parse_cell(cell)
                    if isinstance(v, str):
                        raise ValueError(f"{where}: row {line}, column {_show(col_names[j])}: {v}")
                    out.append(v)
                values.append(out)
                line_nums.append(line)
    except csv.Error as e:
        raise ValueError(f"{where}: row {reader.line_num}: malformed CSV ({e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None

    if ncols == 0:
        raise ValueError(f"{where}: file is empty")
    if ncols < 2:
        raise ValueError(f"{where}: has {ncols} column; needs at least 2 (features and a target)")

    # Resolve the target column.
    if isinstance(target, str):
        matches = [j for j, s in enumerate(col_names) if s == target]
        if not matches:
            shown = ", ".join(_show(s) for s in col_names[:20]) + (", ..." if ncols > 20 else "")
            raise ValueError(f"{where}: target column {_show(target)} not found; columns are {shown}")
        if len(matches) > 1:
            raise ValueError(f"{where}: target column {_show(target)} is ambiguous: columns {matches} share that name")
        t = matches[0]
    else:
        t = int(target)
        if not -ncols <= t < ncols:
            raise ValueError(
                f"{where}: target column index {t} does not exist; the file has {ncols} columns "
                f"(valid indices {-ncols} to {ncols - 1})"
            )
        t %= ncols

    if len(values) < 2:
        raise ValueError(f"{where}: needs at least 2 data rows, found {len(values)}")

    table = torch.tensor(values, dtype=torch.float64)
    y64 = table[:, t]
    feat = [j for j in range(ncols) if j != t]
    binary = bool(((y64 == 0) | (y64 == 1)).all())
    if task == "binary" and not binary:
        i = int(((y64 != 0) & (y64 != 1)).nonzero()[0, 0])
        raise ValueError(
            f"{where}: row {line_nums[i]}, column {_show(col_names[t])}: label {values[i][t]:g} is not 0 or 1 "
            f"(task='binary' needs 0/1 labels)"
        )
    if task is None:
        task = "binary" if binary else "regression"

    x = table[:, feat].to(dtype)
    y = y64.reshape(-1, 1).to(dtype)
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError(f"{where}: values too large for {dtype} (they overflow to infinity)")
    return Dataset(
        x=x,
        y=y,
        feature_names=tuple(col_names[j] for j in feat),
        target_name=col_names[t],
        task=task,
    )


# ----------------------------------------------------------------- synthetic data


def quadrants(key: Tensor, n: int = 200, *, dtype: torch.dtype = torch.float32) -> Dataset:
    """The tutorial's synthetic classification data: same-sign quadrants.

    ``x = regfn.random.normal(key, (n, 2))`` and ``y = 1`` where both
    coordinates have the same sign (quadrants I and III), else 0. Binary task.

    Args:
        key: a :mod:`regfn.random` key.
        n: the number of points (>= 1).
        dtype: floating dtype of ``x`` and ``y``.

    Returns:
        A :class:`Dataset` with ``x`` of shape ``(n, 2)`` and ``y`` of shape ``(n, 1)``.

    Examples:
        >>> import regfn.random as rr
        >>> d = quadrants(rr.key(0), 200)
        >>> d.x.shape, d.y.shape, d.task
        (torch.Size([200, 2]), torch.Size([200, 1]), 'binary')
        >>> bool(((d.x[:, 0] * d.x[:, 1] > 0) == (d.y[:, 0] == 1)).all())
        True
    """
    n = _check_count(n, "n", "quadrants", 1)
    dtype = _check_float_dtype(dtype, "quadrants")
    x = rr.normal(key, (n, 2), dtype)
    same_sign = torch.sign(x[:, 0]) * torch.sign(x[:, 1]) > 0  # no underflow in low precision
    return Dataset(x=x, y=same_sign.to(dtype).reshape(n, 1), feature_names=("x0", "x1"), target_name="y", task="binary")


_PIMA_COLUMNS = (
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
)
_PIMA_SCALES = ((3.8, 3.4), (121, 32), (69, 19), (21, 16), (80, 115), (32, 7.9), (0.47, 0.33), (33, 12))  # ~mean, std
_PIMA_WEIGHTS = (0.4, 1.2, 0.1, 0.1, 0.2, 0.8, 0.4, 0.5)


def synthetic_diabetes(key: Tensor, n: int = 768, *, dtype: torch.dtype = torch.float32) -> Dataset:
    """A stand-in for the tutorial's Pima diabetes table, generated from a key.

    Same shape (``n`` x 8), column names and rough per-column scales as the
    real table, with a noisy logistic label (about 35% positive). It lets the
    examples and benchmarks run anywhere; for the real data pass its CSV to
    :func:`load_csv`.

    Args:
        key: a :mod:`regfn.random` key.
        n: number of rows (>= 2).
        dtype: floating dtype of ``x`` and ``y``.

    Returns:
        A binary :class:`Dataset` whose target is named ``Outcome``.

    Examples:
        >>> import regfn.random as rr
        >>> d = synthetic_diabetes(rr.key(0))
        >>> d.x.shape, d.feature_names[1], d.task
        (torch.Size([768, 8]), 'Glucose', 'binary')
    """
    n = _check_count(n, "n", "synthetic_diabetes", 2)
    kx, kw, kn = rr.split(_check_key(key, "synthetic_diabetes"), 3)
    z = rr.normal(kx, (n, 8))
    w = rr.normal(kw, (8,)) * torch.tensor(_PIMA_WEIGHTS, device=z.device)
    logits = z @ w - 0.7 + 1.2 * rr.normal(kn, (n,))
    mean, std = torch.tensor(_PIMA_SCALES, device=z.device).T
    x = (mean + std * z).to(_check_float_dtype(dtype, "synthetic_diabetes"))
    return Dataset(x=x, y=(logits > 0).to(x.dtype), feature_names=_PIMA_COLUMNS, target_name="Outcome", task="binary")


def sparse_regression(
    key: Tensor,
    n: int = 200,
    d: int = 10,
    *,
    n_informative: int = 3,
    noise: float = 0.1,
    dtype: torch.dtype = torch.float32,
) -> tuple[Dataset, Tensor]:
    """Linear regression data with a sparse true weight vector (the tutorial's ``Linear(10, 1)``).

    ``x ~ N(0, 1)`` of shape ``(n, d)``; the true weights ``w`` (shape
    ``(d,)``, no bias) are zero except at ``n_informative`` positions drawn
    from the key, where they are ``±U[1, 3]`` (random sign, magnitude at
    least 1); ``y = x @ w + noise * N(0, 1)``. An L1 penalty should recover
    the support ``w != 0``.

    Args:
        key: a :mod:`regfn.random` key.
        n: the number of examples (>= 1).
        d: the number of features (>= 1).
        n_informative: how many weights are non-zero (0 to ``d``).
        noise: standard deviation of the additive Gaussian noise (>= 0).
        dtype: floating dtype of ``x``, ``y`` and ``w``.

    Returns:
        ``(data, w)``: a regression :class:`Dataset` (``y`` of shape
        ``(n, 1)``) and the true weights of shape ``(d,)``.

    Examples:
        >>> import regfn.random as rr
        >>> data, w = sparse_regression(rr.key(0), 200, 10, n_informative=3)
        >>> data.x.shape, data.y.shape, w.shape, int((w != 0).sum()), data.task
        (torch.Size([200, 10]), torch.Size([200, 1]), torch.Size([10]), 3, 'regression')
        >>> bool((w[w != 0].abs() >= 1).all())
        True
    """
    n = _check_count(n, "n", "sparse_regression", 1)
    d = _check_count(d, "d", "sparse_regression", 1)
    k = _check_count(n_informative, "n_informative", "sparse_regression", 0)
    if k > d:
        raise ValueError(f"regfn.data.sparse_regression: n_informative must be <= d={d}, got {k}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not (0 <= noise < math.inf):
        raise ValueError(f"regfn.data.sparse_regression: noise must be a finite float >= 0, got {noise!r}")
    dtype = _check_float_dtype(dtype, "sparse_regression")

    k_x, k_pos, k_mag, k_sign, k_noise = rr.split(key, 5)
    x = rr.normal(k_x, (n, d), dtype)
    support = torch.sort(rr.permutation(k_pos, d)[:k]).values
    magnitude = rr.uniform(k_mag, (k,), dtype, 1.0, 3.0)
    sign = torch.where(rr.bernoulli(k_sign, 0.5, (k,)), 1.0, -1.0).to(dtype)
    w = torch.zeros(d, dtype=dtype, device=x.device)
    w[support.to(x.device)] = sign * magnitude
    y = x @ w + float(noise) * rr.normal(k_noise, (n,), dtype)
    data = Dataset(
        x=x,
        y=y.reshape(n, 1),
        feature_names=tuple(f"x{j}" for j in range(d)),
        target_name="y",
        task="regression",
    )
    return data, w


# ----------------------------------------------------------------- preprocessing


class FeatureStats(NamedTuple):
    """Per-feature mean and standard deviation from :func:`standardize`.

    Attributes:
        mean: shape ``(d,)``.
        std: shape ``(d,)``, with zero standard deviations replaced by 1.
    """

    mean: Tensor
    std: Tensor

    def apply(self, data: Dataset) -> Dataset:
        """Standardize ``data``'s features with these statistics (e.g. a test split later)."""
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


def _check_key(key: object, fn: str) -> Tensor:
    if not isinstance(key, Tensor) or key.shape != (2,):
        shape = tuple(key.shape) if isinstance(key, Tensor) else type(key).__name__
        raise TypeError(f"regfn.data.{fn}: expected a key of shape (2,) from regfn.random.key, got {shape}")
    return key


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
        >>> train, val = train_val_split(rr.key(1), quadrants(rr.key(0), 200), 0.2)
        >>> len(train), len(val)
        (160, 40)
    """
    _check_key(key, "train_val_split")
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
    n = _check_count(n, "n", "batches", 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"regfn.data.batches: batch_size must be an int, got {type(batch_size).__name__}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"regfn.data.batches: batch_size must be in [1, n={n}], got {batch_size}")
    batch_size = int(batch_size)
    n_batches = n // batch_size
    return rr.permutation(key, n)[: n_batches * batch_size].reshape(n_batches, batch_size)
