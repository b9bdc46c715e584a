"""Cross-validation inside one sweep: configurations x folds as rows of one vmapped program.

``regfn.sweep(..., cv=k)`` expands the ``K`` configurations into ``K * k``
rows, configuration-major (row ``c * k + f`` is configuration ``c`` on fold
``f``), each carrying ``hp["fold"]``. The engines run all of them in one
program: a row trains on its fold's training rows (gathered by index) and is
validated on its fold's held-out rows. Folds may differ in size
(:meth:`regfn.data.Folds.from_splits`) when mini-batches make the same number
of batches an epoch in each: a row's mini-batch order is drawn for its own
fold's size, and evaluations run a group of rows per fold size. A row's keys come from its
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

__all__ = ["CV_KEY", "check_uneven", "expand", "fingerprint", "folds_from_record", "record", "reduce", "resolve"]

CV_KEY = 0
"""``cv=k`` draws its folds as ``regfn.data.kfold(regfn.random.key(CV_KEY), data, k)``."""


def resolve(cv: Any, data: Dataset, val: Dataset | None, where: str = "regfn.sweep") -> Folds | None:
    """The folds ``cv`` asks for (``None``: no cross-validation), checked against the sweep's data.

    ``cv`` is ``None``, an int ``k`` (:func:`regfn.data.kfold` with the key
    :data:`CV_KEY`), :class:`~regfn.data.Folds`, or a scikit-learn splitter
    (an object with ``split`` and ``get_n_splits``, e.g. ``StratifiedKFold(5)``):
    its ``split(X, y)`` on the data's rows (``X`` flattened to one row per
    example, a one-column ``y`` as a vector) becomes
    :meth:`~regfn.data.Folds.from_splits`, stratified as recorded when its
    class name says ``Stratified``.

    Raises:
        TypeError: ``cv`` none of these.
        ValueError: ``cv`` outside ``[2, len(data)]``, folds drawn for other
            data, a splitter whose ``split(X, y)`` fails (one that needs
            groups), or ``val`` given as well.
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
    elif callable(getattr(cv, "split", None)) and callable(getattr(cv, "get_n_splits", None)):
        folds = _splitter_folds(cv, data, where)
    else:
        raise TypeError(
            f"{where}: cv must be None, an int (the number of folds), regfn.data.Folds or a scikit-learn "
            f"splitter (with split and get_n_splits), got {type(cv).__name__} {cv!r}"
        )
    if val is not None:
        raise ValueError(
            f"{where}: pass either val= or cv=, not both: under cross-validation each fold's held-out rows "
            "are its validation data"
        )
    return folds


def _splitter_folds(splitter: Any, data: Dataset, where: str) -> Folds:
    """A scikit-learn splitter's folds of ``data`` (see :func:`resolve`)."""
    n = len(data)
    x = data.x.detach().cpu().reshape(n, -1).numpy()
    target = data.y.detach().cpu()
    y = (target.reshape(n) if target.ndim == 2 and target.shape[1] == 1 else target).numpy()
    try:
        splits = list(splitter.split(x, y))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: cv: {type(splitter).__name__}.split(X, y) failed ({err}); for a splitter that needs more "
            "(groups=), pass cv=regfn.data.Folds.from_splits(splitter.split(X, y, groups), len(data))"
        ) from err
    return Folds.from_splits(splits, n, stratified="Stratified" in type(splitter).__name__)


def check_uneven(folds: Folds | None, batch_size: int | None) -> None:
    """Raise a ValueError unless folds of different sizes can train as one program with ``batch_size``.

    Each row draws its mini-batch order for its own fold's size; the program
    needs the same number of mini-batches an epoch from every fold.
    """
    if folds is None or not folds.ragged:
        return
    sizes = sorted({folds.train_size(i) for i in range(len(folds))})
    if len(sizes) == 1:
        return
    if batch_size is None:
        raise ValueError(
            f"regfn.sweep: cv folds of different training sizes ({', '.join(map(str, sizes))} rows) need "
            "mini-batches (batch_size=): full-batch steps of different sizes make different programs; "
            "pass cv=k (regfn.data.kfold: folds of one size), or sweep each fold size on its own"
        )
    counts = {n: n // batch_size for n in sizes}
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"regfn.sweep: cv folds of {', '.join(map(str, sizes))} training rows make "
            f"{', '.join(str(c) for c in counts.values())} mini-batches of batch_size={batch_size} an epoch; "
            "one program needs the same number from every fold: pick a batch_size that gives it, or "
            "sweep each fold size on its own"
        )


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
    """The folds as provenance: their number, the held-out rows, the training rows where they are not the
    rest of the data's rows (e.g. a scikit-learn search's folds), and a hash."""
    out: dict[str, Any] = {
        "k": len(folds),
        "n": folds.n,
        "stratified": folds.stratified,
        "val": [folds.val_of(i).tolist() for i in range(len(folds))],
    }
    if not all(_complement(folds, i) for i in range(len(folds))):
        out["train"] = [folds.train_of(i).tolist() for i in range(len(folds))]
    out["sha256"] = fingerprint(folds)
    return out


def _complement(folds: Folds, i: int) -> bool:
    """Whether fold ``i`` trains on every row it does not hold out."""
    train, val = folds.train_of(i), folds.val_of(i)
    return len(train) + len(val) == folds.n and not bool(torch.isin(train, val).any())


def fingerprint(folds: Folds | None) -> str | None:
    """sha256 of the folds' index tensors (``None`` without folds); of each fold's own rows where they differ
    in size (so that the padding does not count)."""
    if folds is None:
        return None
    if not folds.ragged:
        return tensor_hash([folds.train.cpu(), folds.val.cpu()])
    k = len(folds)
    return tensor_hash([folds.train_of(i).cpu() for i in range(k)] + [folds.val_of(i).cpu() for i in range(k)])


def folds_from_record(rec: Mapping[str, Any]) -> Folds:
    """The :class:`~regfn.data.Folds` that :func:`record` wrote.

    Raises:
        ValueError: the rebuilt folds' hash is not the recorded one.
    """
    n, stratified, val = int(rec["n"]), bool(rec["stratified"]), rec["val"]
    train = rec.get("train")
    if train is None and len({len(v) for v in val}) == 1:
        folds = Folds.from_val(torch.tensor(val, dtype=torch.int64).reshape(rec["k"], -1), n, stratified)
    else:
        if train is None:
            train = [sorted(set(range(n)) - set(v)) for v in val]
        folds = Folds.from_splits(zip(train, val, strict=True), n, stratified)
    if "sha256" in rec and fingerprint(folds) != rec["sha256"]:
        raise ValueError("the recorded folds do not match their recorded sha256")
    return folds


def _collapsed(outputs: Outputs, folds: Folds, data: Dataset, diverged: Tensor) -> Tensor:
    """``(K * k,)``: whether each row learned a constant, judged on its fold's held-out rows."""
    k = len(folds)
    majority = [majority_rate(data[folds.val_of(f).to(data.x.device)]) for f in range(k)]
    if outputs.val_constant is None:
        raise ValueError("regfn.sweep: cross-validation evaluates every row on its fold's held-out rows")
    constant, acc = outputs.val_constant.tolist(), outputs.metrics.get("val_acc")
    return torch.tensor(
        [
            not diverged[r]
            and is_collapsed(
                bool(constant[r]), None if acc is None else float(acc[r]), majority[r % k], folds.val_size(r % k)
            )
            for r in range(len(constant))
        ],
        dtype=torch.bool,
    )


def reduce(outputs: Outputs, folds: Folds, data: Dataset) -> Outputs:
    """The results of ``K * k`` rows as ``K`` configurations: means over folds, and fold statistics.

    Every metric becomes its mean over the folds. Every metric but the
    penalty (the same on any data) keeps its ``k`` per-fold values (in
    ``folds``: the training metrics, measured on each fold's training rows,
    as scikit-learn's train scores need, and the validation metrics); each
    validation metric ``val_m`` also gets ``val_m_std`` (over the folds,
    ``correction=0``, as numpy's ``std``). A configuration has diverged (a bad
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
        if name in ("penalty", "val_penalty"):  # the same on any data
            continue
        fold_values[name] = values
        if name.startswith("val_"):
            metrics[f"{name}_std"] = values.std(1, correction=0)
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
