"""regfn.sklearn's searches: scikit-learn's attributes, and scores equal to regfn.sweep on the same folds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, StratifiedKFold
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
    ("kwargs", "error", "message"),
    [
        ({"scoring": "roc_auc"}, ValueError, "scoring must be one of"),
        ({"refit": "accuracy"}, ValueError, "refit must be"),
        ({"param_grid": {"l3": [0.0]}}, ValueError, "l3"),
        ({"estimator": StandardScaler()}, TypeError, "estimator must be"),
    ],
)
def test_bad_searches_raise_before_training(data, kwargs, error, message):
    X, y = data
    args = {"estimator": NET, "param_grid": {"l2": [0.0]}, **kwargs}
    with pytest.raises(error, match=message):
        GridSearchCV(**args).fit(X, y)
