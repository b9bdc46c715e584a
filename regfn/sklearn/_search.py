"""scikit-learn's hyperparameter searches, trained as regfn sweeps: :class:`GridSearchCV`, :class:`RandomizedSearchCV`.

A search splits each candidate's parameters in two: those a sweep varies per
configuration (:data:`~regfn.sklearn._estimators.SWEEPABLE`: ``lr``, ``l1``,
``l2``, ``p``, ``seed``, ...) and the rest (hidden sizes, epochs, a
preprocessing step's parameters, ...). Candidates that agree on the rest
train together: the folds' rows are stacked into one
:class:`~regfn.data.Dataset` (each fold's rows transformed by the
pipeline's earlier steps, fitted on that fold's training rows) and one
:func:`regfn.sweep` trains every candidate on every fold through
:class:`~regfn.data.Folds` pointing into it (folds of different sizes
included, e.g. 569 rows in 5 folds: with mini-batches, when every fold
makes as many batches an epoch; full batch, one sweep per training size). The held-out scores come from the sweep's own per-fold
metrics, so they equal a :func:`regfn.sweep` on the same folds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.metrics import get_scorer
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils.validation import check_array, check_is_fitted

from .._sweep import sweep
from ..data import Dataset, Folds
from ._estimators import SWEEPABLE, NeuralNetClassifier, NeuralNetwork

__all__ = ["GridSearchCV", "RandomizedSearchCV"]

# scoring name -> (sweep metric, how a fold's score follows from it); None is the estimator's own score
_CLASSIFIER_SCORES = {None: "accuracy", "accuracy": "accuracy"}
_REGRESSOR_SCORES = {
    None: "r2",
    "r2": "r2",
    "neg_mean_squared_error": "neg_mean_squared_error",
    "neg_root_mean_squared_error": "neg_root_mean_squared_error",
}


def _program_key(batch_size: int | None, n_train: int) -> tuple[int | None, int]:
    """Folds with the same key train in one sweep: mini-batches of one size, as many an epoch (folds of
    different sizes draw their own orders); full batch, the same number of training rows."""
    return (None, n_train) if batch_size is None else (batch_size, n_train // batch_size)


def _net_of(estimator: Any) -> tuple[NeuralNetwork, str, Pipeline | None]:
    """The regfn estimator, its parameter prefix (``"net__"`` in a pipeline) and the steps before it."""
    if isinstance(estimator, NeuralNetwork):
        return estimator, "", None
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[-1][1], NeuralNetwork):
        name, net = estimator.steps[-1]
        before = Pipeline(estimator.steps[:-1]) if len(estimator.steps) > 1 else None
        return net, f"{name}__", before
    raise TypeError(
        "regfn.sklearn search: estimator must be a NeuralNetClassifier, a NeuralNetRegressor or a Pipeline "
        f"ending in one, got {type(estimator).__name__}"
    )


def _fold_score(kind: str, metrics: Mapping[str, float], y_val: np.ndarray) -> float:
    if kind == "accuracy":
        return metrics["acc"]
    mse = metrics["mse"]
    if kind == "neg_mean_squared_error":
        return -mse
    if kind == "neg_root_mean_squared_error":
        return -math.sqrt(mse) if math.isfinite(mse) else math.nan
    var = float(np.var(y_val.astype(np.float64)))  # r2 = 1 - SS_res / SS_tot = 1 - mse / var
    if var == 0.0:
        return 1.0 if mse == 0.0 else 0.0  # scikit-learn's r2 for a constant target
    return 1.0 - mse / var


class _Search(MetaEstimatorMixin, BaseEstimator):
    """What both searches share: the sweeps, ``cv_results_``, the refit and the delegating methods."""

    def __init__(
        self, estimator: Any, *, scoring: str | None = None, refit: Any = True, cv: Any = None, verbose: int = 0
    ) -> None:
        self.estimator = estimator
        self.scoring = scoring
        self.refit = refit
        self.cv = cv
        self.verbose = verbose

    def _candidates(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _score_kind(self, net: NeuralNetwork) -> str:
        table = _CLASSIFIER_SCORES if isinstance(net, NeuralNetClassifier) else _REGRESSOR_SCORES
        if not (self.scoring is None or isinstance(self.scoring, str)) or self.scoring not in table:
            raise ValueError(
                f"{type(self).__name__}: scoring must be one of {[s for s in table if s]} or None for a "
                f"{type(net).__name__} (scores a sweep reports), got {self.scoring!r}"
            )
        return table[self.scoring]

    def fit(self, X: Any, y: Any) -> _Search:
        """Score every candidate on every fold (one sweep per group of candidates, see the module docstring), then refit the best."""
        net, prefix, _ = _net_of(self.estimator)
        kind = self._score_kind(net)
        if not (isinstance(self.refit, bool) or callable(self.refit)):
            raise ValueError(f"{type(self).__name__}: refit must be True, False or a callable, got {self.refit!r}")
        candidates = self._candidates()
        if not candidates:
            raise ValueError(f"{type(self).__name__}: no candidates to search")
        X, y = indexable(X, y)
        y_arr = np.asarray(y)
        if kind == "r2" and y_arr.ndim == 2 and y_arr.shape[1] > 1:
            raise ValueError(
                f"{type(self).__name__}: scoring r2 on several targets needs each target's error, which a sweep "
                "does not report; pass scoring='neg_mean_squared_error'"
            )
        splits = list(check_cv(self.cv, y, classifier=is_classifier(self.estimator)).split(X, y))
        groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
        for i, candidate in enumerate(candidates):
            clone(self.estimator).set_params(**candidate)  # unknown names raise here, before any training
            swept = {k: v for k, v in candidate.items() if k.startswith(prefix) and k[len(prefix) :] in SWEEPABLE}
            other = {k: v for k, v in candidate.items() if k not in swept}
            groups.setdefault(repr(sorted(other.items())), (other, []))[1].append(i)
        scores = np.full((len(candidates), len(splits)), np.nan)
        times = np.zeros((len(candidates), len(splits)))
        for other, members in groups.values():
            self._run_group(
                X, y_arr, splits, [candidates[i] for i in members], other, kind, prefix, members, scores, times
            )
        self.cv_results_ = self._results(candidates, scores, times)
        self.n_splits_ = len(splits)
        self.multimetric_ = False
        self.best_index_ = int(
            self.refit(self.cv_results_) if callable(self.refit) else np.argmin(self.cv_results_["rank_test_score"])
        )
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(self.cv_results_["mean_test_score"][self.best_index_])
        if self.refit is not False:
            start = time.perf_counter()
            self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(X, y)
            self.refit_time_ = time.perf_counter() - start
        return self

    def _run_group(
        self,
        X: Any,
        y: np.ndarray,
        splits: Sequence[tuple[np.ndarray, np.ndarray]],
        candidates: Sequence[dict[str, Any]],
        other: dict[str, Any],
        kind: str,
        prefix: str,
        members: Sequence[int],
        scores: np.ndarray,
        times: np.ndarray,
    ) -> None:
        """Train one group's candidates on every fold (one sweep where the folds allow it); fill ``scores`` and ``times``."""
        est = clone(self.estimator).set_params(**other)
        net, _, before = _net_of(est)
        if isinstance(net, NeuralNetClassifier):
            net.set_classes(y)
        else:
            net.set_outputs(y)
        targets = net.encode(y)
        configs = []
        for candidate in candidates:
            swept = {k[len(prefix) :]: v for k, v in candidate.items() if k not in other}
            configs.append(clone(net).set_params(**swept).hyperparameters())
        programs: dict[tuple[int | None, int], list[int]] = {}
        for j, (train, _) in enumerate(splits):
            programs.setdefault(_program_key(net.training_settings(len(train))["batch_size"], len(train)), []).append(j)
        for fold_ids in programs.values():
            start = time.perf_counter()
            data, folds = self._stacked(X, y, targets, splits, fold_ids, net, before)
            settings = net.training_settings(min(len(splits[j][0]) for j in fold_ids))
            model = net.build_model(data.x.shape[1], net._n_outputs())
            common: dict[str, Any] = {
                "loss": settings["loss"],
                "optimizer": settings["optimizer"],
                "epochs": settings["epochs"],
                "log_every": settings["epochs"],  # the scores are the final metrics: no curve to sample on the way
                "batch_size": settings["batch_size"],
                "compile": net.compile,
                "quiet": not self.verbose,
            }
            if len(fold_ids) == 1:
                train_rows, val_rows = folds.train_of(0), folds.val_of(0)
                result = sweep(model, data[train_rows], configs, val=data[val_rows], **common)
            else:
                result = sweep(model, data, configs, cv=folds, **common)
            if result is None:  # pragma: no cover - only other ranks under torch.distributed
                raise RuntimeError("regfn.sklearn: the sweep returned no result on this rank")
            elapsed = time.perf_counter() - start
            for c, row in zip(members, result.rows, strict=True):
                for f, j in enumerate(fold_ids):
                    metrics = {
                        m: row[f"val_{m}"] if len(fold_ids) == 1 else row[f"val_{m}_folds"][f]
                        for m in ("acc", "mse")
                        if f"val_{m}" in row
                    }
                    scores[c, j] = _fold_score(kind, metrics, y[splits[j][1]])
                    times[c, j] = elapsed / (len(members) * len(fold_ids))

    @staticmethod
    def _stacked(
        X: Any,
        y: np.ndarray,
        targets: torch.Tensor,
        splits: Sequence[tuple[np.ndarray, np.ndarray]],
        fold_ids: Sequence[int],
        net: NeuralNetwork,
        before: Pipeline | None,
    ) -> tuple[Dataset, Folds]:
        """Each fold's training then held-out rows, one after another (transformed per fold), and folds into them."""
        xs, ys, train_idx, val_idx = [], [], [], []
        offset = 0
        for j in fold_ids:
            train, val = splits[j]
            x_train, x_val = _safe_indexing(X, train), _safe_indexing(X, val)
            if before is not None:
                fitted = clone(before).fit(x_train, y[train])
                x_train, x_val = fitted.transform(x_train), fitted.transform(x_val)
            for part in (x_train, x_val):
                xs.append(net.as_tensor(check_array(part, dtype=np.float32)))
            ys += [targets[train], targets[val]]
            train_idx.append(torch.arange(offset, offset + len(train)))
            val_idx.append(torch.arange(offset + len(train), offset + len(train) + len(val)))
            offset += len(train) + len(val)
        task = None if targets.dtype == torch.int64 else net._task
        data = Dataset(torch.cat(xs), torch.cat(ys).to(xs[0].device), task=task)
        if len(fold_ids) == 1:  # one fold: its rows, as one-fold Folds (from_splits takes two or more)
            return data, Folds(train_idx[0][None], val_idx[0][None], offset, False)
        return data, Folds.from_splits(zip(train_idx, val_idx, strict=True), offset)

    def _results(self, candidates: list[dict[str, Any]], scores: np.ndarray, times: np.ndarray) -> dict[str, Any]:
        """``cv_results_`` in scikit-learn's layout."""
        results: dict[str, Any] = {
            "mean_fit_time": times.mean(1),
            "std_fit_time": times.std(1),
            "mean_score_time": np.zeros(len(candidates)),  # the sweep scores as it trains
            "std_score_time": np.zeros(len(candidates)),
        }
        for name in sorted({k for c in candidates for k in c}):
            column = np.ma.MaskedArray(np.empty(len(candidates), dtype=object), mask=True)
            for i, c in enumerate(candidates):
                if name in c:
                    column[i] = c[name]
            results[f"param_{name}"] = column
        results["params"] = candidates
        for j in range(scores.shape[1]):
            results[f"split{j}_test_score"] = scores[:, j]
        means = scores.mean(1)
        results["mean_test_score"] = means
        results["std_test_score"] = scores.std(1)
        if np.isnan(means).all():
            ranks = np.ones(len(means), dtype=np.int32)
        else:
            filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)  # a failed candidate ranks last
            ranks = (np.searchsorted(np.sort(-filled), -filled, side="left") + 1).astype(
                np.int32
            )  # ties share the best
        results["rank_test_score"] = ranks
        return results

    # ------------------------------------------------------------ the refitted best estimator

    def predict(self, X: Any) -> np.ndarray:
        """``best_estimator_.predict``."""
        check_is_fitted(self, "best_estimator_")
        return np.asarray(self.best_estimator_.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """``best_estimator_.predict_proba``."""
        check_is_fitted(self, "best_estimator_")
        return np.asarray(self.best_estimator_.predict_proba(X))

    def score(self, X: Any, y: Any) -> float:
        """The search's scoring of ``best_estimator_`` on ``(X, y)``."""
        check_is_fitted(self, "best_estimator_")
        if self.scoring is None:
            return float(self.best_estimator_.score(X, y))
        return float(get_scorer(self.scoring)(self.best_estimator_, X, y))

    @property
    def classes_(self) -> np.ndarray:
        """``best_estimator_.classes_``."""
        check_is_fitted(self, "best_estimator_")
        return np.asarray(self.best_estimator_.classes_)

    @property
    def n_features_in_(self) -> int:
        """``best_estimator_.n_features_in_``."""
        check_is_fitted(self, "best_estimator_")
        return int(self.best_estimator_.n_features_in_)


class GridSearchCV(_Search):
    """scikit-learn's ``GridSearchCV`` for regfn estimators: every grid point x fold in one vmapped sweep.

    Args:
        estimator: a :class:`~regfn.sklearn.NeuralNetClassifier`, a
            :class:`~regfn.sklearn.NeuralNetRegressor` or a ``Pipeline``
            ending in one (parameters then named ``<step>__<name>``; the
            earlier steps are fitted on each fold's training rows).
        param_grid: a dict of value lists, or a list of such dicts.
        scoring: ``None`` (the estimator's ``score``: accuracy or R²),
            ``"accuracy"``; for a regressor also ``"r2"``,
            ``"neg_mean_squared_error"``, ``"neg_root_mean_squared_error"``.
        refit: refit the best candidate on all the data (``True``), not
            (``False``), or a callable ``cv_results_ -> best_index_``.
        cv: ``None`` (5 folds), an int, or a scikit-learn splitter
            (stratified for a classifier, as scikit-learn's).
        verbose: show the sweeps' progress and warnings.

    Attributes ``cv_results_``, ``best_index_``, ``best_params_``,
    ``best_score_``, ``best_estimator_``, ``refit_time_`` and ``n_splits_``
    mean what they mean in scikit-learn; ``mean_fit_time`` shares each
    sweep's time out evenly among its candidates and folds, and
    ``mean_score_time`` is 0 (the sweep scores as it trains).

    Examples:
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.pipeline import make_pipeline
        >>> from sklearn.preprocessing import StandardScaler
        >>> from regfn.sklearn import NeuralNetClassifier
        >>> X, y = make_classification(120, 6, random_state=0)
        >>> pipe = make_pipeline(StandardScaler(), NeuralNetClassifier(hidden_layer_sizes=(8,), epochs=20, lr=0.05))
        >>> search = GridSearchCV(pipe, {"neuralnetclassifier__l2": [0.0, 1e-2], "neuralnetclassifier__p": [0.0, 0.2]}, cv=3)
        >>> search = search.fit(X, y)
        >>> sorted(search.best_params_), search.cv_results_["split2_test_score"].shape
        (['neuralnetclassifier__l2', 'neuralnetclassifier__p'], (4,))
    """

    def __init__(
        self,
        estimator: Any,
        param_grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]],
        *,
        scoring: str | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(estimator, scoring=scoring, refit=refit, cv=cv, verbose=verbose)
        self.param_grid = param_grid

    def _candidates(self) -> list[dict[str, Any]]:
        return list(ParameterGrid(self.param_grid))


class RandomizedSearchCV(_Search):
    """scikit-learn's ``RandomizedSearchCV`` for regfn estimators: ``n_iter`` sampled settings x folds, swept at once.

    Args:
        estimator: as :class:`GridSearchCV`.
        scoring: as :class:`GridSearchCV`.
        refit: as :class:`GridSearchCV`.
        cv: as :class:`GridSearchCV`.
        verbose: as :class:`GridSearchCV`.
        param_distributions: a dict of lists or ``scipy.stats`` distributions
            (anything with ``rvs``), or a list of such dicts.
        n_iter: the number of settings sampled.
        random_state: the sampler's seed (scikit-learn's ``ParameterSampler``).

    Examples:
        >>> from scipy.stats import loguniform
        >>> from sklearn.datasets import make_regression
        >>> from regfn.sklearn import NeuralNetRegressor
        >>> X, y = make_regression(90, 4, noise=0.5, random_state=0)
        >>> search = RandomizedSearchCV(NeuralNetRegressor(epochs=10), {"l2": loguniform(1e-4, 1e-1)}, n_iter=4,
        ...                             cv=3, random_state=0, refit=False).fit(X, y / 100)
        >>> len(search.cv_results_["params"]), int(search.cv_results_["rank_test_score"].min())
        (4, 1)
    """

    def __init__(
        self,
        estimator: Any,
        param_distributions: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        n_iter: int = 10,
        scoring: str | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
        random_state: Any = None,
    ) -> None:
        super().__init__(estimator, scoring=scoring, refit=refit, cv=cv, verbose=verbose)
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state

    def _candidates(self) -> list[dict[str, Any]]:
        return list(ParameterSampler(self.param_distributions, self.n_iter, random_state=self.random_state))
