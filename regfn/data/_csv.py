"""Loading a numeric CSV table as a :class:`~regfn.data.Dataset`: :func:`load_csv` and its cell parsing.

Bad input is reported as one-line ``ValueError`` messages that name the file,
the row and the column.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from typing import Literal

import torch

from ._dataset import Dataset, PathLike, Task, _check_float_dtype, _check_task

__all__ = ["load_csv"]


def _show(value: str, limit: int = 40) -> str:
    """A cell or name quoted for a one-line message (control characters escaped, long text cut)."""
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return repr(value)


def _show_path(path: str) -> str:
    return path if path.isprintable() else repr(path)


# Where the tutorial's table comes from, for a missing file with its name.
_DIABETES_HINT = (
    "the tutorial's table of that name is the Pima Indians Diabetes table (768 rows, 8 numeric features, label Outcome "
    "last, header row); a public copy is the 'Pima Indians Diabetes Database' on Kaggle or in the UCI repository "
    "(see \"The tutorial's data\" in regfn's README); without it, regfn.data.synthetic_diabetes is a stand-in of "
    "the same shape"
)


def _missing(path: str) -> str:
    """The one-line message for a CSV path that does not exist: where it was looked for, and for the
    tutorial's diabetes table, where to get it."""
    where = _show_path(path)
    message = f"{where}: no such file (the path does not exist"
    if not os.path.isabs(path):
        message += f"; looked in {_show_path(os.getcwd())}"
    message += ")"
    name = os.path.basename(path).lower()
    if "diabetes" in name or "pima" in name:
        message += f"; {_DIABETES_HINT}"
    return message


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
        FileNotFoundError: the file does not exist (one line; for the name of
            the tutorial's diabetes table it says where that table comes from).
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
        raise FileNotFoundError(_missing(os.fspath(path)))

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
