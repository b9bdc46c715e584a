"""One check for NaN and infinite values in a :class:`~regfn.data.Dataset`, naming the rows and columns.

:func:`regfn.sweep` and :func:`regfn.train` refuse such data before training
with it, and :func:`regfn.data.load_csv` uses the same message for values
that overflow the requested dtype.

Examples:
    >>> import torch
    >>> from regfn.data import Dataset
    >>> data = Dataset(torch.tensor([[0.0, 1.0], [float("nan"), 2.0], [3.0, float("inf")]]),
    ...                torch.tensor([0.0, 1.0, 0.0]))
    >>> check_finite(data, "regfn.sweep")
    Traceback (most recent call last):
    ...
    ValueError: regfn.sweep: the data has 2 non-finite values (NaN or inf): row 1 column 'x0' (nan), row 2 column 'x1' (inf); drop or impute those rows before training
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ._dataset import Dataset

__all__ = ["check_finite", "nonfinite_cells"]

_SHOWN = 5  # cells named in a message; the rest are counted


def nonfinite_cells(values: Tensor, names: Sequence[str], limit: int = _SHOWN) -> tuple[int, list[str]]:
    """How many cells of ``values`` (rows first) are NaN or infinite, and the first ``limit`` named.

    A cell is ``row i column 'name'`` (``column j`` when ``names`` has no name
    for it), with its value.
    """
    if not values.dtype.is_floating_point:
        return 0, []
    flat = values.reshape(values.shape[0], -1)
    bad = ~flat.isfinite()
    count = int(bad.sum())
    shown = []
    for i, j in bad.nonzero()[:limit].tolist():
        column = repr(names[j]) if j < len(names) else str(j)
        shown.append(f"row {i} column {column} ({float(flat[i, j])})")
    return count, shown


def check_finite(data: Dataset, where: str, what: str = "the data") -> None:
    """Refuse ``data`` when a feature or a target is NaN or infinite, naming the first rows and columns.

    Raises:
        ValueError: ``"<where>: <what> has N non-finite values ...: row i column 'name' (nan), ..."``.
    """
    n_x, cells_x = nonfinite_cells(data.x, data.feature_names)
    n_y, cells_y = nonfinite_cells(data.y, [data.target_name] if data.y.ndim == 2 and data.y.shape[1] == 1 else [])
    count = n_x + n_y
    if count == 0:
        return
    cells = (cells_x + [f"target {c}" for c in cells_y])[:_SHOWN]
    more = f", and {count - len(cells)} more" if count > len(cells) else ""
    raise ValueError(
        f"{where}: {what} has {count} non-finite value{'s' if count != 1 else ''} (NaN or inf): "
        f"{', '.join(cells)}{more}; drop or impute those rows before training"
    )
