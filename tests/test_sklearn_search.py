"""regfn.sklearn's searches: scikit-learn's attributes, and scores equal to regfn.sweep on the same folds."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import GridSearchCV as SkGridSearchCV
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold
from sklearn.model_selection import RandomizedSearchCV as SkRandomizedSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import regfn
from regfn.sklearn import GridSearchCV, NeuralNetClassifier, NeuralNetRegressor, RandomizedSearchCV

NET = NeuralNetClassifier(hidden_layer_sizes=(8,), lr=0.05, epochs=6, batch_size=16, compile=False)
GRID = {"l2": [0.0, 1e-2], "p": [0.0, 0.3], "seed": [0, 1]}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(100, 5, n_informative=3, random_state=0)
    return X * 5 + 3, y  # far from standardized: a pipeline's scaler matters


def as_dataset(X, y):
    return regfn.data.Dataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32))


def test_scores_equal_one_sweep_on_the_same_folds(data):
    X, y = data
    cv = StratifiedKFold(4, shuffle=True, random_state=0)  # 100 rows: four equal folds, one program
    search = GridSearchCV(NET, GRID, cv=cv, refit=False).fit(X, y)
    splits = list(cv.split(X, y))
    folds = regfn.data.Folds(
        torch.as_tensor(np.stack([t for t, _ in splits])), torch.as_tensor(np.stack([v for _, v in splits])), 100, False
    )
    configs = [clone(NET).set_params(**c).hyperparameters() for c in search.cv_results_["params"]]
    ref = regfn.sweep(
        regfn.nn.mlp((5, 8, 1), output="logits"),
        as_dataset(X, y),
        configs,
        cv=folds,
        optimizer="adam",
        epochs=6,
        batch_size=16,
        compile=False,
        quiet=True,
    )
    for f in range(4):
        assert search.cv_results_[f"split{f}_test_score"].tolist() == [row["val_acc_folds"][f] for row in ref.rows]
    assert search.cv_results_["mean_test_score"] == pytest.approx([row["val_acc"] for row in ref.rows], abs=1e-12)
    assert search.best_score_ == max(row["val_acc"] for row in ref.rows)
    assert not hasattr(search, "best_estimator_")


def test_pipeline_fits_its_scaler_per_fold_and_folds_of_two_sizes_agree_with_per_fold_sweeps(data, monkeypatch):
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("net", NET)])
    grid = {"net__l2": [0.0, 1e-2], "net__p": [0.0, 0.3]}
    cv = KFold(3)  # 34, 33, 33 held out: 66 and 67 training rows, 4 batches of 16 each: one program
    calls = []
    sweep = regfn.sweep

    def counting(model, data, configs, **kwargs):
        calls.append(kwargs["cv"].sizes)
        return sweep(model, data, configs, **kwargs)

    monkeypatch.setattr(regfn.sklearn._search, "sweep", counting)
    search = GridSearchCV(pipe, grid, cv=cv).fit(X, y)
    assert calls == [((66, 34), (67, 33), (67, 33))]
    configs = [
        clone(NET).set_params(**{k[5:]: v for k, v in c.items()}).hyperparameters()
        for c in search.cv_results_["params"]
    ]
    for f, (train, val) in enumerate(cv.split(X, y)):
        scaler = StandardScaler().fit(X[train])
        alone = regfn.sweep(
            regfn.nn.mlp((5, 8, 1), output="logits"),
            as_dataset(scaler.transform(X[train]), y[train]),
            configs,
            val=as_dataset(scaler.transform(X[val]), y[val]),
            optimizer="adam",
            epochs=6,
            batch_size=16,
            compile=False,
            quiet=True,
        )
        assert search.cv_results_[f"split{f}_test_score"].tolist() == [r["val_acc"] for r in alone.rows]
        # the plain loop: scikit-learn's own fit and score of the best candidate on this fold
        best = clone(pipe).set_params(**search.best_params_).fit(X[train], y[train])
        assert best.score(X[val], y[val]) == pytest.approx(
            search.cv_results_[f"split{f}_test_score"][search.best_index_], abs=1.5 / len(val)
        )
    assert search.best_estimator_.named_steps["net"].l2 == search.best_params_["net__l2"]
    assert search.predict(X).shape == (100,)
    assert search.score(X, y) == search.best_estimator_.score(X, y)


def test_full_batch_folds_of_two_sizes_train_in_one_sweep_per_size(data, monkeypatch):
    X, y = data
    net = clone(NET).set_params(batch_size=None)
    calls = []
    sweep = regfn.sweep

    def counting(model, data, configs, **kwargs):
        calls.append(("rows", len(data)) if "val" in kwargs else ("folds", len(kwargs["cv"])))
        return sweep(model, data, configs, **kwargs)

    monkeypatch.setattr(regfn.sklearn._search, "sweep", counting)
    cv = KFold(3)  # 66, 67, 67 training rows: full-batch steps of two sizes, two programs
    search = GridSearchCV(net, {"p": [0.0, 0.3]}, cv=cv, refit=False).fit(X, y)
    assert calls == [("rows", 66), ("folds", 2)]
    configs = [clone(net).set_params(**c).hyperparameters() for c in search.cv_results_["params"]]
    for f, (train, val) in enumerate(cv.split(X, y)):
        alone = regfn.sweep(
            regfn.nn.mlp((5, 8, 1), output="logits"), as_dataset(X[train], y[train]), configs,
            val=as_dataset(X[val], y[val]), optimizer="adam", epochs=6, batch_size=None, compile=False, quiet=True,
        )  # fmt: skip
        assert search.cv_results_[f"split{f}_test_score"].tolist() == [r["val_acc"] for r in alone.rows]


def test_cv_results_have_scikit_learns_keys_and_one_program_per_hidden_size(data, monkeypatch):
    X, y = data
    calls = []
    sweep = regfn.sklearn._search.sweep

    def counting(model, *args, **kwargs):
        calls.append(len(args[1]))
        return sweep(model, *args, **kwargs)

    monkeypatch.setattr(regfn.sklearn._search, "sweep", counting)
    grid = {"l2": [0.0, 1e-2, 1e-1], "hidden_layer_sizes": [(4,), (8, 4)]}
    search = GridSearchCV(NET, grid, cv=4).fit(X, y)
    assert calls == [3, 3]  # one sweep per hidden size, each with the three l2 values x four folds
    r = search.cv_results_
    for key in (
        "mean_fit_time",
        "std_fit_time",
        "mean_score_time",
        "std_score_time",
        "params",
        "param_l2",
        "param_hidden_layer_sizes",
        "split0_test_score",
        "split3_test_score",
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
    ):
        assert len(r[key]) == 6, key
    assert r["rank_test_score"][search.best_index_] == 1
    assert search.best_params_ == r["params"][search.best_index_]
    assert search.best_score_ == r["mean_test_score"].max()
    assert (r["mean_fit_time"] > 0).all()
    assert search.n_splits_ == 4
    assert search.classes_.tolist() == [0, 1]


def test_randomized_search_regressor_r2_matches_scikit_learn():
    X, y = make_regression(80, 4, noise=1.0, random_state=0)
    y = y / 100
    net = NeuralNetRegressor(hidden_layer_sizes=(8,), lr=0.05, epochs=8, compile=False)
    cv = KFold(4)
    search = RandomizedSearchCV(
        net, {"l2": loguniform(1e-4, 1e-1), "lr": [0.01, 0.05]}, n_iter=3, cv=cv, random_state=0
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    for f, (train, val) in enumerate(cv.split(X)):
        for i, params in enumerate(search.cv_results_["params"]):
            fitted = clone(net).set_params(**params).fit(X[train], y[train])
            assert search.cv_results_[f"split{f}_test_score"][i] == pytest.approx(
                r2_score(y[val], fitted.predict(X[val])), abs=1e-4
            )
    mse = GridSearchCV(net, {"l2": [0.0]}, cv=cv, scoring="neg_mean_squared_error", refit=False).fit(X, y)
    assert (mse.cv_results_["mean_test_score"] < 0).all()


@pytest.mark.parametrize(
    ("ours", "theirs"), [(GridSearchCV, SkGridSearchCV), (RandomizedSearchCV, SkRandomizedSearchCV)]
)
def test_constructors_take_scikit_learns_arguments_in_its_order_with_its_defaults(ours, theirs):
    mine, sk = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
    assert list(mine) == list(sk)
    for name, parameter in sk.items():
        assert mine[name].kind == parameter.kind, name
        default = parameter.default
        if isinstance(default, float) and np.isnan(default):
            assert np.isnan(mine[name].default), name
        else:
            assert mine[name].default == default, name


def sweep_reference(X, y, splits, net, configs):
    """One regfn.sweep of ``configs`` on the folds ``splits`` of ``(X, y)`` (each as long: one program)."""
    folds = regfn.data.Folds(
        torch.as_tensor(np.stack([t for t, _ in splits])), torch.as_tensor(np.stack([v for _, v in splits])),
        len(X), False,
    )  # fmt: skip
    return regfn.sweep(
        regfn.nn.mlp((5, *net.hidden_layer_sizes, 1), output="logits"), as_dataset(X, y), configs, cv=folds,
        optimizer="adam", epochs=net.epochs, batch_size=net.batch_size, compile=False, quiet=True,
    )  # fmt: skip


def test_groups_reach_a_splitter_that_needs_them(data):
    X, y = data
    groups = np.arange(100) // 10  # ten groups of ten rows: five folds of 80 and 20
    search = GridSearchCV(NET, {"l2": [0.0, 1e-2]}, cv=GroupKFold(5), refit=False).fit(X, y, groups=groups)
    splits = list(GroupKFold(5).split(X, y, groups))
    for train, val in splits:
        assert not set(groups[train]) & set(groups[val])
    configs = [clone(NET).set_params(**c).hyperparameters() for c in search.cv_results_["params"]]
    ref = sweep_reference(X, y, splits, NET, configs)
    for f in range(5):
        assert search.cv_results_[f"split{f}_test_score"].tolist() == [row["val_acc_folds"][f] for row in ref.rows]
    with pytest.raises(ValueError, match="groups"):  # scikit-learn's own message
        GridSearchCV(NET, {"l2": [0.0]}, cv=GroupKFold(5), refit=False).fit(X, y)


def test_train_scores_and_log_loss_agree_with_scikit_learns_metrics_on_each_fold(data):
    X, y = data
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    grid = {"l2": [0.0, 1e-2], "p": [0.0, 0.3]}
    search = GridSearchCV(NET, grid, cv=cv, scoring="neg_log_loss", return_train_score=True, refit=False).fit(X, y)
    r = search.cv_results_
    keys = [k for k in r if "train_score" in k]
    assert keys == [*(f"split{f}_train_score" for f in range(4)), "mean_train_score", "std_train_score"]
    splits = list(cv.split(X, y))
    configs = [clone(NET).set_params(**c).hyperparameters() for c in r["params"]]
    ref = sweep_reference(X, y, splits, NET, configs)
    for f, (train, val) in enumerate(splits):
        assert r[f"split{f}_train_score"].tolist() == [-row["loss_folds"][f] for row in ref.rows]
        for i, params in enumerate(r["params"]):
            fitted = clone(NET).set_params(**params).fit(X[train], y[train])  # regfn.train: the same run
            for rows, side in ((train, "train"), (val, "test")):
                expected = -log_loss(y[rows], fitted.predict_proba(X[rows]))
                assert r[f"split{f}_{side}_score"][i] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(r["mean_train_score"], np.mean([r[f"split{f}_train_score"] for f in range(4)], 0))
    accuracy = GridSearchCV(NET, {"l2": [0.0]}, cv=cv, return_train_score=True, refit=False).fit(X, y)
    for f, (train, _) in enumerate(splits):
        fitted = clone(NET).fit(X[train], y[train])
        assert accuracy.cv_results_[f"split{f}_train_score"][0] == pytest.approx(
            accuracy_score(y[train], fitted.predict(X[train])),
            abs=1.01 / len(train),  # a tie at the threshold at most
        )


def test_a_diverged_candidate_gets_error_score_or_raises(data):
    X, y = data
    net = clone(NET).set_params(optimizer="sgd", p=0.0)
    grid = {"lr": [0.05, 1e30]}  # the second overflows
    default = GridSearchCV(net, grid, cv=3, refit=False).fit(X, y)
    assert np.isnan(default.cv_results_["mean_test_score"][1])
    assert np.isfinite(default.cv_results_["mean_test_score"][0])
    assert default.cv_results_["rank_test_score"].tolist() == [1, 2]
    assert default.best_index_ == 0
    scored = GridSearchCV(net, grid, cv=3, refit=False, error_score=-1.0, return_train_score=True).fit(X, y)
    assert scored.cv_results_["split0_test_score"][1] == -1.0
    assert scored.cv_results_["split2_train_score"][1] == -1.0
    with pytest.raises(ValueError, match=r"candidate 1 \{'lr': 1e\+30\} diverged on fold 0"):
        GridSearchCV(net, grid, cv=3, refit=False, error_score="raise").fit(X, y)


@pytest.mark.parametrize(("n_jobs", "threads"), [(None, "auto"), (1, 1), (2, 2), (-1, os.cpu_count())])
def test_n_jobs_sets_the_sweeps_threads(data, monkeypatch, n_jobs, threads):
    X, y = data
    seen = []
    sweep = regfn.sklearn._search.sweep

    def spying(*args, **kwargs):
        seen.append(kwargs["threads"])
        return sweep(*args, **kwargs)

    monkeypatch.setattr(regfn.sklearn._search, "sweep", spying)
    GridSearchCV(NET, {"l2": [0.0]}, cv=2, n_jobs=n_jobs, refit=False).fit(X, y)
    assert seen == [threads]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scoring": "roc_auc"}, ValueError, "scoring must be one of"),
        ({"refit": "accuracy"}, ValueError, "refit must be"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be None or a nonzero int"),
        ({"n_jobs": 1.5}, ValueError, "n_jobs must be"),
        ({"error_score": "ignore"}, ValueError, "error_score must be a number"),
        ({"return_train_score": "yes"}, ValueError, "return_train_score must be True or False"),
        ({"param_grid": {"l3": [0.0]}}, ValueError, "l3"),
        ({"estimator": StandardScaler()}, TypeError, "estimator must be"),
    ],
)
def test_bad_searches_raise_before_training(data, kwargs, error, message):
    X, y = data
    args = {"estimator": NET, "param_grid": {"l2": [0.0]}, **kwargs}
    with pytest.raises(error, match=message):
        GridSearchCV(**args).fit(X, y)
