"""Loading a numeric CSV table as a :class:`~regfn.data.Dataset`: :func:`load_csv` and its cell parsing.

Bad input is reported as one-line ``ValueError`` messages that name the file,
the row and the column.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from collections.abc import Sequence
from typing import Literal

import torch

from ._dataset import Dataset, PathLike, Task, _check_float_dtype, _check_task
from ._finite import nonfinite_cells

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
    "(see \"The tutorial's data\" in regfn's docs, docs/tutorial.md); without it, regfn.data.synthetic_diabetes is a stand-in of "
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
    value = _number(cell)
    return f"{_show(cell)} is not a number" if value is None else value


def _number(cell: str) -> float | str | None:
    """The cell's finite float value, ``None`` for text that is not a number, or why it is a missing value."""
    text = cell.strip()
    if not text:
        return "empty cell (missing value)"
    try:
        if "_" in text:  # float() accepts "1_000"; a CSV number does not
            raise ValueError
        value = float(text)
    except ValueError:
        return None
    if math.isnan(value):
        return f"{_show(cell)} is a missing value (NaN)"
    if math.isinf(value):
        return f"{_show(cell)} is not a finite number"
    return value


def _label(cell: str) -> float | str:
    """A target cell: its float value, a :class:`_Text` class name, or (a plain str) why it is a missing value."""
    value = _number(cell)
    if value is None:
        return _Text(cell.strip())
    return value


class _Text(str):
    """A target cell that is a class name, not a number."""


def _class_name(value: float | str) -> str:
    """A class's name: the label text, or the number written without a needless ``.0``."""
    if isinstance(value, str):  # a _Text: the label as written
        return str(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _class_order(value: float | str) -> tuple[int, float, str]:
    """Numbers first, in numeric order, then text labels in alphabetical order."""
    return (1, 0.0, str(value)) if isinstance(value, _Text) else (0, float(value), "")


def load_csv(
    path: PathLike,
    *,
    target: int | str = -1,
    header: bool | Literal["infer"] = "infer",
    dtype: torch.dtype = torch.float32,
    task: Task | None = None,
    delimiter: str = ",",
    columns: Sequence[int | str] | None = None,
    drop: Sequence[int | str] = (),
) -> Dataset:
    """Load a CSV table (one row per example) as a :class:`Dataset`.

    The format is the tutorial's: an optional header row, numeric feature
    cells, and one target column (by default the last). Blank lines are
    skipped, cells may have surrounding spaces, and a UTF-8 byte order mark
    is ignored.

    The target decides the task (unless ``task`` is given):

    * numbers, every one 0 or 1: binary, ``y`` float of shape ``(n, 1)``;
    * other numbers: regression, ``y`` float ``(n, 1)``;
    * any text label (``"setosa"``, ``"cat"``): multiclass, ``y`` int64 class
      indices ``(n,)`` into ``class_names``, the distinct labels sorted
      (labels that are numbers first, in numeric order, then text labels
      alphabetically; a number is named as written without a needless
      ``.0``: ``"3"``, ``"2.5"``).

    Args:
        path: the CSV file.
        target: the target column, as an index into the columns (negative
            counts from the end) or as a header name.
        header: ``True`` if the first row holds column names, ``False`` if it
            is data, ``"infer"`` (default) to treat it as a header when any
            of its cells is not a number. Without a header, columns are named
            ``col0, col1, ...``.
        dtype: floating dtype of ``x`` (and of a floating ``y``).
        task: ``None`` to infer it (above); ``"binary"`` (the target must be
            0/1, or text with exactly two classes, which become 0 and 1 in
            sorted order and keep their names); ``"regression"`` (a numeric
            target, 0/1 included); ``"multiclass"`` (numeric targets too: the
            distinct values, sorted, become classes ``0..K-1``, e.g. a rating
            1 to 5 or digit labels 0 to 9).
        delimiter: the field separator.
        columns: the feature columns to keep (names or indices, in the
            file's order); ``None`` (the default): every column but the target.
        drop: feature columns to leave out (names or indices), e.g. an id
            or a text column. Columns left out are not read, so their cells
            may hold anything.

    Returns:
        A :class:`Dataset`.

    Raises:
        FileNotFoundError: the file does not exist (one line; for the name of
            the tutorial's diabetes table it says where that table comes from).
        ValueError: the file cannot be used: it is a directory, not UTF-8
            text, empty, has fewer than 2 data rows or 2 columns, ragged
            rows, a feature cell that is empty, not a number, NaN or
            infinite, a target cell that is empty, NaN or infinite, a
            ``target`` that names no column, a label other than 0/1
            (``task="binary"``) or a text label (``task="regression"``).
            Each message is a single line naming the file and, where it
            applies, the row (numbered like the file's lines, header
            included: row 1 is the first line) and the column, e.g.
            ``data.csv: row 12, column 'Glucose': 'abc' is not a number``.
        TypeError: an argument of the wrong type.

    Examples:
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = os.path.join(tmp.name, "toy.csv")
        >>> with open(path, "w") as f:
        ...     _ = f.write("age,bmi,label\\n50,33.6,1\\n31,26.6,0\\n32,23.3,1\\n")
        >>> data = load_csv(path)
        >>> data.x.shape, data.y.shape, data.feature_names, data.target_name, data.task
        (torch.Size([3, 2]), torch.Size([3, 1]), ('age', 'bmi'), 'label', 'binary')

        Text labels are classes:

        >>> with open(path, "w") as f:
        ...     _ = f.write("length,width,species\\n5.1,3.5,setosa\\n7.0,3.2,versicolor\\n6.3,3.3,virginica\\n4.9,3.0,setosa\\n")
        >>> data = load_csv(path)
        >>> data.task, data.class_names, data.y.tolist()
        ('multiclass', ('setosa', 'versicolor', 'virginica'), [0, 1, 2, 0])
        >>> tmp.cleanup()
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

    features: list[list[float]] = []
    labels: list[float | str] = []
    line_nums: list[int] = []
    ncols = 0
    t = 0
    col_names: list[str] = []
    keep: set[int] = set()
    has_header = False
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
                    has_header = header is True or (
                        header == "infer"
                        and any(isinstance(p, str) and c.strip() for p, c in zip(parsed, row, strict=True))
                    )
                    if has_header:
                        col_names = [c.strip() or f"col{j}" for j, c in enumerate(row)]
                    else:
                        col_names = [f"col{j}" for j in range(ncols)]
                    if ncols < 2:
                        raise ValueError(f"{where}: has {ncols} column; needs at least 2 (features and a target)")
                    t = _target_column(target, col_names, where)
                    keep = _kept_columns(columns, drop, col_names, t, where)
                    if has_header:
                        continue
                if len(row) != ncols:
                    source = "the header" if has_header else "the first row"
                    raise ValueError(f"{where}: row {line} has {len(row)} columns, expected {ncols} as in {source}")
                out: list[float] = []
                for j, cell in enumerate(row):
                    if j != t and j not in keep:
                        continue
                    v = _label(cell) if j == t else _parse_cell(cell)
                    if isinstance(v, str) and not isinstance(v, _Text):
                        leave = f" (leave the column out: drop=[{col_names[j]!r}])" if "not a number" in v else ""
                        raise ValueError(f"{where}: row {line}, column {_show(col_names[j])}: {v}{leave}")
                    if j == t:
                        labels.append(v)
                    else:
                        out.append(float(v))
                features.append(out)
                line_nums.append(line)
    except csv.Error as e:
        raise ValueError(f"{where}: row {reader.line_num}: malformed CSV ({e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None

    if ncols == 0:
        raise ValueError(f"{where}: file is empty")
    if len(features) < 2:
        raise ValueError(f"{where}: needs at least 2 data rows, found {len(features)}")

    x = torch.tensor(features, dtype=torch.float64).reshape(len(features), len(keep)).to(dtype)
    target_name = col_names[t]
    feature_names = tuple(col_names[j] for j in sorted(keep))
    count, cells = nonfinite_cells(x, feature_names)
    if count:
        raise ValueError(f"{where}: values too large for {dtype} (they overflow to infinity): {', '.join(cells)}")
    column = f"column {_show(target_name)}"

    texts = [i for i, v in enumerate(labels) if isinstance(v, _Text)]
    if task == "regression" and texts:
        i = texts[0]
        raise ValueError(
            f"{where}: row {line_nums[i]}, {column}: {_show(str(labels[i]))} is not a number "
            f"(task='regression' needs a numeric target)"
        )
    if texts or task == "multiclass":
        classes = sorted(set(labels), key=_class_order)
        class_names = tuple(_class_name(c) for c in classes)
        if task == "binary" and len(classes) != 2:
            shown = ", ".join(_show(c) for c in class_names[:5]) + (", ..." if len(classes) > 5 else "")
            raise ValueError(
                f"{where}: {column} has {len(classes)} classes ({shown}); task='binary' needs 2 (or 0/1 numbers)"
            )
        index = {c: i for i, c in enumerate(classes)}
        y = torch.tensor([index[v] for v in labels], dtype=torch.int64)
        if task == "binary":
            return Dataset(x, y.to(dtype).reshape(-1, 1), feature_names, target_name, "binary", class_names)
        return Dataset(x, y, feature_names, target_name, "multiclass", class_names)

    y64 = torch.tensor(labels, dtype=torch.float64)
    binary = bool(((y64 == 0) | (y64 == 1)).all())
    if task == "binary" and not binary:
        i = int(((y64 != 0) & (y64 != 1)).nonzero()[0, 0])
        raise ValueError(
            f"{where}: row {line_nums[i]}, {column}: label {labels[i]:g} is not 0 or 1 (task='binary' needs 0/1 labels)"
        )
    if task is None:
        task = "binary" if binary else "regression"
    y = y64.reshape(-1, 1).to(dtype)
    if not torch.isfinite(y).all():
        raise ValueError(f"{where}: values too large for {dtype} (they overflow to infinity)")
    return Dataset(x=x, y=y, feature_names=feature_names, target_name=target_name, task=task)


def _kept_columns(
    columns: Sequence[int | str] | None, drop: Sequence[int | str], col_names: list[str], t: int, where: str
) -> set[int]:
    """The feature columns to read: ``columns`` (or all but the target) without ``drop``; at least one."""
    for name, given in (("columns", columns), ("drop", drop)):
        if given is not None and (isinstance(given, (str, int)) or not isinstance(given, Sequence)):
            raise TypeError(f"regfn.data.load_csv: {name} must be a list of column names or indices, got {given!r}")
    every = set(range(len(col_names)))
    chosen = {_target_column(c, col_names, where, "column") for c in columns} if columns is not None else every
    if columns is not None and t in chosen:
        raise ValueError(f"{where}: columns names the target column {_show(col_names[t])}; list the features only")
    keep = chosen - {t} - {_target_column(c, col_names, where, "column") for c in drop}
    if not keep:
        raise ValueError(f"{where}: no feature column left (columns={columns!r}, drop={list(drop)!r})")
    return keep


def _target_column(target: int | str, col_names: list[str], where: str, what: str = "target column") -> int:
    """The index of the ``target`` column (a name or an index, negative from the end)."""
    ncols = len(col_names)
    if isinstance(target, str):
        matches = [j for j, s in enumerate(col_names) if s == target]
        if not matches:
            shown = ", ".join(_show(s) for s in col_names[:20]) + (", ..." if ncols > 20 else "")
            raise ValueError(f"{where}: {what} {_show(target)} not found; columns are {shown}")
        if len(matches) > 1:
            raise ValueError(f"{where}: {what} {_show(target)} is ambiguous: columns {matches} share that name")
        return matches[0]
    t = int(target)
    if not -ncols <= t < ncols:
        raise ValueError(
            f"{where}: {what} index {t} does not exist; the file has {ncols} columns "
            f"(valid indices {-ncols} to {ncols - 1})"
        )
    return t % ncols
