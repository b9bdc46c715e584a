"""regfn.sklearn's estimators: scikit-learn's own checks, labels, seeds, modules, and fit equal to regfn.train."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.utils.estimator_checks import parametrize_with_checks

import regfn
import regfn.random as rr
from regfn.sklearn import NeuralNetClassifier, NeuralNetRegressor

# Tiny nets and few epochs keep scikit-learn's checks (about 50 per estimator) fast on one core.
# Every check passes: no expected failures to declare.
CHECKED = [
    NeuralNetClassifier(hidden_layer_sizes=(16,), lr=0.05, epochs=30),
    NeuralNetRegressor(hidden_layer_sizes=(16,), lr=0.05, epochs=30),
]


@parametrize_with_checks(CHECKED)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(90, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=0)
    return X.astype(np.float32), y


def test_string_labels_and_probabilities(blobs):
    X, y = blobs
    names = np.array(["cat", "dog", "emu"])
    clf = NeuralNetClassifier(hidden_layer_sizes=(8,), lr=0.05, epochs=40, batch_size=32, p=0.1).fit(X, names[y])
    assert clf.classes_.tolist() == ["cat", "dog", "emu"]
    assert clf.n_features_in_ == 4
    proba = clf.predict_proba(X)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert set(clf.predict(X)) <= {"cat", "dog", "emu"}
    np.testing.assert_array_equal(clf.predict(X), names[proba.argmax(1)])


def test_refitting_with_the_same_seed_is_bit_identical_and_another_seed_differs(blobs):
    X, y = blobs
    clf = NeuralNetClassifier(hidden_layer_sizes=(8,), p=0.3, epochs=5, batch_size=16, seed=3)
    a = clf.fit(X, y).predict_proba(X)
    b = clone(clf).fit(X, y).predict_proba(X)
    c = clone(clf).set_params(seed=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), a)


def test_fit_is_regfn_train_with_the_seed_key():
    X, y = make_classification(64, 3, n_informative=2, n_redundant=0, random_state=1)
    clf = NeuralNetClassifier(
        hidden_layer_sizes=(6,),
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        l1=1e-3,
        l2=1e-2,
        p=0.2,
        epochs=7,
        batch_size=16,
        seed=5,
    ).fit(X, y)
    model = regfn.nn.mlp((3, 6, 1), output="logits")
    data = regfn.data.Dataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32))
    run = regfn.train(
        model,
        data,
        optimizer=regfn.optim.sgd(0.1, momentum=0.9),
        key=rr.key(5),
        loss="bce_logits",
        penalties=[regfn.l1(1e-3), regfn.l2(1e-2)],
        p=0.2,
        epochs=7,
        batch_size=16,
    )
    for name, value in run.params.items():
        torch.testing.assert_close(clf.params_[name], value, rtol=0, atol=0)
    logits = model.apply(run.params, data.x)[:, 0]
    np.testing.assert_array_equal(clf.predict(X), (logits > 0).long().numpy())


def test_modules_classes_instances_and_models_train_the_same_network():
    X, y = make_regression(48, 3, noise=0.1, random_state=2)
    y = y / 100

    class Net(torch.nn.Sequential):
        def __init__(self, width=5):
            super().__init__(
                torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(width, 1)
            )

    kw = {"lr": 0.01, "p": 0.1, "epochs": 4, "batch_size": 16, "seed": 2}
    from_class = NeuralNetRegressor(Net, module_kwargs={"width": 5}, **kw).fit(X, y)
    from_instance = NeuralNetRegressor(Net(5), **kw).fit(X, y)
    from_model = NeuralNetRegressor(regfn.from_module(Net(5)), **kw).fit(X, y)
    np.testing.assert_array_equal(from_class.predict(X), from_instance.predict(X))
    np.testing.assert_array_equal(from_class.predict(X), from_model.predict(X))
    assert from_class.predict(X).shape == (48,)
    two = NeuralNetRegressor(hidden_layer_sizes=(4,), epochs=3).fit(X, np.stack([y, -y], 1))
    assert two.predict(X).shape == (48, 2)


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"optimizer": "lbfgs"}, ValueError, "optimizer must be one of"),
        ({"optimizer": "adam", "momentum": 0.9}, ValueError, "takes .* not momentum"),
        ({"l2": -1.0}, ValueError, "l2 must be"),
        ({"p": 1.5}, ValueError, "p must be"),
        ({"epochs": 0}, ValueError, "epochs must be an int >= 1"),
        ({"hidden_layer_sizes": (0,)}, ValueError, "hidden_layer_sizes must be positive ints"),
        ({"module": "resnet"}, TypeError, "module must be None"),
    ],
)
def test_bad_parameters_raise_in_fit(blobs, params, error, message):
    X, y = blobs
    clf = NeuralNetClassifier(**params)  # __init__ only stores
    with pytest.raises(error, match=message):
        clf.fit(X, y)


def test_one_class_is_refused(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="at least 2 classes"):
        NeuralNetClassifier().fit(X, np.zeros(len(X)))
