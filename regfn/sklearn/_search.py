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
import numbers
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
from ._scoring import CLASSIFIER_SCORES, REGRESSOR_SCORES, fold_metrics, fold_score, threads_of

__all__ = ["GridSearchCV", "RandomizedSearchCV"]


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


class _Search(MetaEstimatorMixin, BaseEstimator):
    """What both searches share: the sweeps, ``cv_results_``, the refit and the delegating methods."""

    def __init__(
        self,
        estimator: Any,
        *,
        scoring: str | None = None,
        n_jobs: int | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
        pre_dispatch: Any = "2*n_jobs",
        error_score: Any = np.nan,
        return_train_score: bool = False,
    ) -> None:
        self.estimator = estimator
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.refit = refit
        self.cv = cv
        self.verbose = verbose
        self.pre_dispatch = pre_dispatch
        self.error_score = error_score
        self.return_train_score = return_train_score

    def _candidates(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _score_kind(self, net: NeuralNetwork) -> str:
        table = CLASSIFIER_SCORES if isinstance(net, NeuralNetClassifier) else REGRESSOR_SCORES
        if not (self.scoring is None or isinstance(self.scoring, str)) or self.scoring not in table:
            raise ValueError(
                f"{type(self).__name__}: scoring must be one of {[s for s in table if s]} or None for a "
                f"{type(net).__name__} (scores a sweep reports), got {self.scoring!r}"
            )
        return table[self.scoring]

    def _check_options(self) -> None:
        """``refit``, ``error_score``, ``return_train_score`` and ``n_jobs``, before any training."""
        where = type(self).__name__
        if not (isinstance(self.refit, bool) or callable(self.refit)):
            raise ValueError(f"{where}: refit must be True, False or a callable, got {self.refit!r}")
        score = self.error_score
        if not (score == "raise" or (isinstance(score, numbers.Real) and not isinstance(score, bool))):
            raise ValueError(f"{where}: error_score must be a number (np.nan by default) or 'raise', got {score!r}")
        if not isinstance(self.return_train_score, bool):
            raise ValueError(f"{where}: return_train_score must be True or False, got {self.return_train_score!r}")
        threads_of(self.n_jobs, where)

    def fit(self, X: Any, y: Any, groups: Any = None) -> _Search:
        """Score every candidate on every fold (one sweep per group of candidates, see the module docstring), then
        refit the best. ``groups``: the rows' group labels, for a splitter that needs them (``GroupKFold``, ...)."""
        net, prefix, _ = _net_of(self.estimator)
        kind = self._score_kind(net)
        self._check_options()
        candidates = self._candidates()
        if not candidates:
            raise ValueError(f"{type(self).__name__}: no candidates to search")
        X, y, groups = indexable(X, y, groups)
        y_arr = np.asarray(y)
        if kind == "r2" and y_arr.ndim == 2 and y_arr.shape[1] > 1:
            raise ValueError(
                f"{type(self).__name__}: scoring r2 on several targets needs each target's error, which a sweep "
                "does not report; pass scoring='neg_mean_squared_error'"
            )
        splits = list(check_cv(self.cv, y, classifier=is_classifier(self.estimator)).split(X, y, groups))
        by_rest: dict[str, tuple[dict[str, Any], list[int]]] = {}  # candidates by what a sweep cannot vary
        for i, candidate in enumerate(candidates):
            clone(self.estimator).set_params(**candidate)  # unknown names raise here, before any training
            swept = {k: v for k, v in candidate.items() if k.startswith(prefix) and k[len(prefix) :] in SWEEPABLE}
            other = {k: v for k, v in candidate.items() if k not in swept}
            by_rest.setdefault(repr(sorted(other.items())), (other, []))[1].append(i)
        scores = np.full((2, len(candidates), len(splits)), np.nan)  # held-out and training scores
        times = np.zeros((len(candidates), len(splits)))
        for other, members in by_rest.values():
            self._run_group(
                X, y_arr, splits, [candidates[i] for i in members], other, kind, prefix, members, scores, times
            )
        self._failed(scores, candidates)
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
                "threads": threads_of(self.n_jobs, type(self).__name__),
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
                    sides = [fold_metrics(row, part, f, len(fold_ids) > 1) for part in ("val_", "")]
                    diverged = not all(math.isfinite(m["loss"]) for m in sides)  # its accuracy would mean nothing
                    for side, metrics in enumerate(sides):  # held-out rows, then training rows
                        score = fold_score(kind, metrics, y[splits[j][1 - side]])
                        scores[side, c, j] = math.nan if diverged else score
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

    def _failed(self, scores: np.ndarray, candidates: list[dict[str, Any]]) -> None:
        """Scores that are not finite (the candidate diverged on that fold) become ``error_score``, or raise."""
        bad = ~np.isfinite(scores)
        if not bad.any():
            return
        if self.error_score == "raise":
            _, c, j = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(
                f"{type(self).__name__}: candidate {c} {candidates[c]} diverged on fold {j} (its loss is not finite); "
                "lower its learning rate, or set error_score to a number to score it so"
            )
        scores[bad] = self.error_score

    def _results(self, candidates: list[dict[str, Any]], scores: np.ndarray, times: np.ndarray) -> dict[str, Any]:
        """``cv_results_`` in scikit-learn's layout (``scores``: held-out then training scores)."""
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
        test, train = scores
        for j in range(test.shape[1]):
            results[f"split{j}_test_score"] = test[:, j]
        means = test.mean(1)
        results["mean_test_score"] = means
        results["std_test_score"] = test.std(1)
        if np.isnan(means).all():
            ranks = np.ones(len(means), dtype=np.int32)
        else:
            filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)  # a failed candidate ranks last
            ranks = (np.searchsorted(np.sort(-filled), -filled, side="left") + 1).astype(
                np.int32
            )  # ties share the best
        results["rank_test_score"] = ranks
        if self.return_train_score:
            for j in range(train.shape[1]):
                results[f"split{j}_train_score"] = train[:, j]
            results["mean_train_score"] = train.mean(1)
            results["std_train_score"] = train.std(1)
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
            ``"accuracy"``; for a classifier also ``"neg_log_loss"`` (the
            sweep's held-out data loss, which is the log loss); for a
            regressor also ``"r2"``, ``"neg_mean_squared_error"``,
            ``"neg_root_mean_squared_error"``.
        n_jobs: the sweeps' CPU threads (``regfn.sweep``'s ``threads``):
            ``None`` regfn's choice (one), ``k`` that many, ``-1`` every
            core, ``-2`` all but one. The candidates run as one vmapped
            program, not as parallel jobs.
        refit: refit the best candidate on all the data (``True``), not
            (``False``), or a callable ``cv_results_ -> best_index_``.
        cv: ``None`` (5 folds), an int, or a scikit-learn splitter
            (stratified for a classifier, as scikit-learn's); a splitter
            that needs groups gets them from ``fit(X, y, groups=...)``.
        verbose: show the sweeps' progress and warnings.
        pre_dispatch: accepted for scikit-learn's signature; no jobs are
            dispatched, so it changes nothing.
        error_score: the score of a candidate on a fold where it diverged
            (its final loss there is not finite; its accuracy then means
            nothing, so it is not used): a number (``np.nan`` by default: it
            then ranks last) or ``"raise"`` (a ``ValueError`` naming the
            candidate and fold).
        return_train_score: also score each fold's training rows
            (``split{k}_train_score``, ``mean_train_score``,
            ``std_train_score``), from the metrics each sweep measures
            there at the end: no extra training or pass over the data.

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
        n_jobs: int | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
        pre_dispatch: Any = "2*n_jobs",
        error_score: Any = np.nan,
        return_train_score: bool = False,
    ) -> None:
        super().__init__(estimator, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv, verbose=verbose,
                         pre_dispatch=pre_dispatch, error_score=error_score, return_train_score=return_train_score)  # fmt: skip
        self.param_grid = param_grid

    def _candidates(self) -> list[dict[str, Any]]:
        return list(ParameterGrid(self.param_grid))


class RandomizedSearchCV(_Search):
    """scikit-learn's ``RandomizedSearchCV`` for regfn estimators: ``n_iter`` sampled settings x folds, swept at once.

    Args:
        estimator: as :class:`GridSearchCV`.
        scoring: as :class:`GridSearchCV`.
        n_jobs: as :class:`GridSearchCV`.
        refit: as :class:`GridSearchCV`.
        cv: as :class:`GridSearchCV`.
        verbose: as :class:`GridSearchCV`.
        pre_dispatch: as :class:`GridSearchCV`.
        error_score: as :class:`GridSearchCV`.
        return_train_score: as :class:`GridSearchCV`.
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
        n_jobs: int | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
        pre_dispatch: Any = "2*n_jobs",
        random_state: Any = None,
        error_score: Any = np.nan,
        return_train_score: bool = False,
    ) -> None:
        super().__init__(estimator, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv, verbose=verbose,
                         pre_dispatch=pre_dispatch, error_score=error_score, return_train_score=return_train_score)  # fmt: skip
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state

    def _candidates(self) -> list[dict[str, Any]]:
        return list(ParameterSampler(self.param_distributions, self.n_iter, random_state=self.random_state))
