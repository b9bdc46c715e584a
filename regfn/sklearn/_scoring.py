"""How :mod:`regfn.sklearn`'s searches score a fold from a sweep's metrics, and their threads from ``n_jobs``."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["CLASSIFIER_SCORES", "REGRESSOR_SCORES", "fold_metrics", "fold_score", "threads_of"]

# scoring name -> how a fold's score follows from the sweep's metrics; None is the estimator's own score
CLASSIFIER_SCORES = {None: "accuracy", "accuracy": "accuracy", "neg_log_loss": "neg_log_loss"}
REGRESSOR_SCORES = {
    None: "r2",
    "r2": "r2",
    "neg_mean_squared_error": "neg_mean_squared_error",
    "neg_root_mean_squared_error": "neg_root_mean_squared_error",
}


def fold_score(kind: str, metrics: Mapping[str, float], y_val: np.ndarray) -> float:
    """A fold's score from the sweep's metrics on its rows (``acc``, ``loss``: the data loss, log loss for a
    classifier; ``mse``); ``y_val``: the scored rows' targets (for R²'s variance).

    Examples:
        >>> import numpy as np
        >>> fold_score("neg_log_loss", {"acc": 0.9, "loss": 0.25}, np.zeros(4))
        -0.25
        >>> fold_score("r2", {"mse": 0.5}, np.array([0.0, 2.0]))  # 1 - 0.5 / var([0, 2])
        0.5
    """
    if kind == "accuracy":
        return metrics["acc"]
    if kind == "neg_log_loss":
        return -metrics["loss"]
    mse = metrics["mse"]
    if kind == "neg_mean_squared_error":
        return -mse
    if kind == "neg_root_mean_squared_error":
        return -math.sqrt(mse) if math.isfinite(mse) else math.nan
    var = float(np.var(y_val.astype(np.float64)))  # r2 = 1 - SS_res / SS_tot = 1 - mse / var
    if var == 0.0:
        return 1.0 if mse == 0.0 else 0.0  # scikit-learn's r2 for a constant target
    return 1.0 - mse / var


def fold_metrics(row: Mapping[str, Any], part: str, fold: int, folded: bool) -> dict[str, float]:
    """A sweep row's final ``acc``/``mse`` and ``loss`` on one fold's held-out (``part`` ``"val_"``) or training
    (``""``) rows: the row's own metrics for a one-fold sweep, else the fold's entry of ``<metric>_folds``."""
    names = [m for m in ("acc", "mse", "loss") if f"{part}{m}" in row]
    return {m: float(row[f"{part}{m}_folds"][fold] if folded else row[f"{part}{m}"]) for m in names}


def threads_of(n_jobs: Any, where: str) -> int | str:
    """The sweeps' ``threads`` for scikit-learn's ``n_jobs``: ``None`` regfn's automatic choice, ``k >= 1`` that
    many, ``-1`` every core, ``-2`` all but one (joblib's convention).

    Examples:
        >>> threads_of(None, "GridSearchCV"), threads_of(2, "GridSearchCV")
        ('auto', 2)
        >>> import os
        >>> threads_of(-1, "GridSearchCV") == (os.cpu_count() or 1)
        True
    """
    if n_jobs is None:
        return "auto"
    if not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool) or n_jobs == 0:
        raise ValueError(f"{where}: n_jobs must be None or a nonzero int (-1: every core), got {n_jobs!r}")
    jobs = int(n_jobs)
    return jobs if jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + jobs)
