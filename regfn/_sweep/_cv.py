"""Cross-validation inside one sweep: configurations x folds as rows of one vmapped program.

``regfn.sweep(..., cv=k)`` expands the ``K`` configurations into ``K * k``
rows, configuration-major (row ``c * k + f`` is configuration ``c`` on fold
``f``), each carrying ``hp["fold"]``. Every fold has the same number of rows
(:func:`regfn.data.kfold`), so the engines run all of them in one program:
a row trains on its fold's training rows (gathered by index) and is
validated on its fold's held-out rows. A row's keys come from its
configuration's seed alone, so it trains exactly as a sweep of that one
configuration on that fold's data would (masks and mini-batch orders bit for
bit). After training, :func:`reduce` folds the ``K * k`` rows back into
``K``: the mean over folds of every metric, and for the validation metrics
also their standard deviation and per-fold values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .._checks import is_int
from .._train import is_collapsed, majority_rate
from ..data import Dataset, Folds, kfold
from ..random import key as make_key
from ._checkpoint import tensor_hash
from ._outputs import Outputs

__all__ = ["CV_KEY", "expand", "fingerprint", "folds_from_record", "record", "reduce", "resolve"]

CV_KEY = 0
"""``cv=k`` draws its folds as ``regfn.data.kfold(regfn.random.key(CV_KEY), data, k)``."""


def resolve(cv: Any, data: Dataset, val: Dataset | None, where: str = "regfn.sweep") -> Folds | None:
    """The folds ``cv`` asks for (``None``: no cross-validation), checked against the sweep's data.

    Raises:
        TypeError: ``cv`` neither ``None``, an int nor :class:`~regfn.data.Folds`.
        ValueError: ``cv`` outside ``[2, len(data)]``, folds drawn for other
            data, or ``val`` given as well.
    """
    if cv is None:
        return None
    if is_int(cv):
        if not 2 <= int(cv) <= len(data):
            raise ValueError(f"{where}: cv must be an int in [2, len(data)={len(data)}] (the folds), got {cv}")
        folds = kfold(make_key(CV_KEY), data.to("cpu"), int(cv))
    elif isinstance(cv, Folds):
        folds = cv
        folds.check(data, f"{where}: cv")
    else:
        raise TypeError(
            f"{where}: cv must be None, an int (the number of folds) or regfn.data.kfold(...)'s Folds, "
            f"got {type(cv).__name__} {cv!r}"
        )
    if val is not None:
        raise ValueError(
            f"{where}: pass either val= or cv=, not both: under cross-validation each fold's held-out rows "
            "are its validation data"
        )
    return folds


def expand(hp_all: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """``K`` configurations' tensors as ``K * k`` rows, configuration-major, with ``hp["fold"]``.

    Examples:
        >>> out = expand({"seed": torch.tensor([7, 9])}, 3)
        >>> out["seed"].tolist(), out["fold"].tolist()
        ([7, 7, 7, 9, 9, 9], [0, 1, 2, 0, 1, 2])
    """
    n = next(iter(hp_all.values())).shape[0]
    device = next(iter(hp_all.values())).device
    out = {name: v.repeat_interleave(k) for name, v in hp_all.items()}
    out["fold"] = torch.arange(k, device=device).repeat(n)
    return out


def record(folds: Folds) -> dict[str, Any]:
    """The folds as provenance: their number, the held-out rows (the training rows are the rest) and a hash."""
    return {
        "k": len(folds),
        "n": folds.n,
        "stratified": folds.stratified,
        "val": folds.val.tolist(),
        "sha256": fingerprint(folds),
    }


def fingerprint(folds: Folds | None) -> str | None:
    """sha256 of the folds' index tensors (``None`` without folds)."""
    return None if folds is None else tensor_hash([folds.train.cpu(), folds.val.cpu()])


def folds_from_record(rec: Mapping[str, Any]) -> Folds:
    """The :class:`~regfn.data.Folds` that :func:`record` wrote."""
    val = torch.tensor(rec["val"], dtype=torch.int64).reshape(rec["k"], -1)
    return Folds.from_val(val, int(rec["n"]), bool(rec["stratified"]))


def _collapsed(outputs: Outputs, folds: Folds, data: Dataset, diverged: Tensor) -> Tensor:
    """``(K * k,)``: whether each row learned a constant, judged on its fold's held-out rows."""
    k = len(folds)
    majority = [majority_rate(data[folds.val[f].to(data.x.device)]) for f in range(k)]
    n_val = folds.val.shape[1]
    if outputs.val_constant is None:
        raise ValueError("regfn.sweep: cross-validation evaluates every row on its fold's held-out rows")
    constant, acc = outputs.val_constant.tolist(), outputs.metrics.get("val_acc")
    return torch.tensor(
        [
            not diverged[r]
            and is_collapsed(bool(constant[r]), None if acc is None else float(acc[r]), majority[r % k], n_val)
            for r in range(len(constant))
        ],
        dtype=torch.bool,
    )


def reduce(outputs: Outputs, folds: Folds, data: Dataset) -> Outputs:
    """The results of ``K * k`` rows as ``K`` configurations: means over folds, and fold statistics.

    Every metric becomes its mean over the folds. Each validation metric
    ``val_m`` but the penalty (the same on any data) also gets ``val_m_std``
    (over the folds, ``correction=0``, as numpy's ``std``) and its ``k``
    per-fold values (in ``folds``). A configuration has diverged (a bad
    curve point, not ``finite``; its first non-finite epoch is the earliest
    over its folds) or collapsed when any of its folds has;
    sparsities and curves are means over the folds.
    """
    k = len(folds)

    def per_fold(t: Tensor) -> Tensor:
        return t.reshape(t.shape[0] // k, k, *t.shape[1:])

    diverged = outputs.bad.any(1) | ~outputs.finite
    metrics: dict[str, Tensor] = {}
    fold_values: dict[str, Tensor] = {}
    for name, v in outputs.metrics.items():
        values = per_fold(v.double())
        metrics[name] = values.mean(1)
        if name.startswith("val_") and name != "val_penalty":  # the penalty does not depend on the data
            metrics[f"{name}_std"] = values.std(1, correction=0)
            fold_values[name] = values
    val_constant = outputs.val_constant
    return Outputs(
        metrics=metrics,
        constant=per_fold(outputs.constant).any(1),
        val_constant=None if val_constant is None else per_fold(val_constant).any(1),
        zero_frac=per_fold(outputs.zero_frac.double()).mean(1),
        tiny_frac=per_fold(outputs.tiny_frac.double()).mean(1),
        finite=per_fold(outputs.finite).all(1),
        ended=outputs.ended[::k],
        curves={name: per_fold(v.double()).mean(1) for name, v in outputs.curves.items()},
        logged=outputs.logged,
        collapsed=per_fold(_collapsed(outputs, folds, data, diverged)).any(1),
        folds=fold_values,
        nonfinite_epoch=_first_nonfinite(per_fold(outputs.nonfinite_epoch)),
    )


def _first_nonfinite(epochs: Tensor) -> Tensor:
    """``(K, k)`` epochs (0: none) as each configuration's first over its folds (0: none)."""
    never = torch.iinfo(torch.int64).max
    first = torch.where(epochs > 0, epochs, never).amin(1)
    return torch.where(first == never, 0, first)
