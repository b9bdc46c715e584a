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


def _collapsed(output: Mapping[str, Any], folds: Folds, data: Dataset, diverged: Tensor) -> Tensor:
    """``(K * k,)``: whether each row learned a constant, judged on its fold's held-out rows."""
    final, k = output["final"], len(folds)
    majority = [majority_rate(data[folds.val[f].to(data.x.device)]) for f in range(k)]
    n_val = folds.val.shape[1]
    constant, acc = final["val__constant"].tolist(), final.get("val_acc")
    return torch.tensor(
        [
            not diverged[r]
            and is_collapsed(bool(constant[r]), None if acc is None else float(acc[r]), majority[r % k], n_val)
            for r in range(len(constant))
        ],
        dtype=torch.bool,
    )


def reduce(output: Mapping[str, Any], folds: Folds, data: Dataset) -> dict[str, Any]:
    """One chunk-output dict of ``K * k`` rows as ``K`` rows: means over folds, and fold statistics.

    Every metric becomes its mean over the folds. Each validation metric
    ``val_m`` but the penalty (the same on any data) also gets ``val_m_std``
    (over the folds, ``correction=0``, as numpy's ``std``) and its ``k``
    per-fold values (under ``"folds"``). A configuration has diverged
    (``bad``, not ``finite``) or collapsed when any of its folds has;
    sparsities and curves are means over the folds.
    """
    k = len(folds)

    def per_fold(t: Tensor) -> Tensor:
        return t.reshape(t.shape[0] // k, k, *t.shape[1:])

    bad = per_fold(output["bad"])
    diverged = output["bad"].any(1) | ~output["finite"]
    final: dict[str, Tensor] = {}
    fold_values: dict[str, Tensor] = {}
    for name, v in output["final"].items():
        if "_constant" in name:
            final[name] = per_fold(v).any(1)
            continue
        values = per_fold(v.double())
        final[name] = values.mean(1)
        if name.startswith("val_") and name != "val_penalty":  # the penalty does not depend on the data
            final[f"{name}_std"] = values.std(1, correction=0)
            fold_values[name] = values
    more = {}
    if "nonfinite_epoch" in output:  # a configuration's first non-finite epoch over its folds (0: none)
        epochs = per_fold(output["nonfinite_epoch"])
        first = torch.where(epochs > 0, epochs, torch.iinfo(torch.int64).max).amin(1)
        more["nonfinite_epoch"] = torch.where(first == torch.iinfo(torch.int64).max, 0, first)
    return {
        **more,
        "final": final,
        "folds": fold_values,
        "zero_frac": per_fold(output["zero_frac"].double()).mean(1),
        "tiny_frac": per_fold(output["tiny_frac"].double()).mean(1),
        "finite": per_fold(output["finite"]).all(1),
        "bad": bad.any(1),
        "collapsed": per_fold(_collapsed(output, folds, data, diverged)).any(1),
        "curves": {name: per_fold(v.double()).mean(1) for name, v in output["curves"].items()},
        "logged": output["logged"],
    }
