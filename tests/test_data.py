"""Tests for regfn.data: CSV loading, synthetic data, standardization, splits, batches."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import sys

import pytest
import torch
from torch.func import vmap

import regfn.data as data_module
import regfn.random as rr
from regfn.data import (
    Dataset,
    FeatureStats,
    batches,
    load_csv,
    quadrants,
    sparse_regression,
    standardize,
    synthetic_diabetes,
    train_val_split,
)


def write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


DATA_MODULES = [
    "regfn.data",
    "regfn.data._dataset",
    "regfn.data._csv",
    "regfn.data._synthetic",
    "regfn.data._split",
    "regfn.data._digits",
]


# ----------------------------------------------------------------- Dataset


def test_dataset_basics():
    d = Dataset(torch.arange(6.0).reshape(3, 2), torch.tensor([0.0, 1.0, 1.0]))
    assert len(d) == 3
    assert d.n_features == 2
    assert d.y.shape == (3, 1)
    assert d.feature_names == ("x0", "x1")
    assert d.target_name == "y"
    assert d.task == "binary"
    assert Dataset(torch.zeros(2, 1), torch.tensor([0.5, 2.0])).task == "regression"
    assert Dataset(torch.zeros(2, 1), torch.tensor([0.0, 1.0]), task="regression").task == "regression"
    sub = d[torch.tensor([2, 0])]
    assert sub.x.tolist() == [[4.0, 5.0], [0.0, 1.0]]
    assert sub.y[:, 0].tolist() == [1.0, 0.0]
    assert sub.feature_names == d.feature_names
    assert sub.task == "binary"
    assert len(d[1:]) == 2
    assert len(d[[0]]) == 1
    assert len(d[torch.tensor([True, False, True])]) == 2
    with pytest.raises(TypeError, match="not an int"):
        d[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.x = torch.zeros(1, 1)
    r = repr(d)
    assert "n=3" in r
    assert "d=2" in r
    assert "binary" in r


def test_dataset_to():
    d = quadrants(rr.key(0), 10)
    d64 = d.to(dtype=torch.float64)
    assert d64.x.dtype == torch.float64
    assert d64.y.dtype == torch.float64
    assert d64.feature_names == d.feature_names
    assert d64.task == d.task
    assert torch.equal(d64.x.float(), d.x)
    assert d.to("cpu").x.device.type == "cpu"
    assert d.x.dtype == torch.float32  # the original is unchanged
    with pytest.raises(TypeError, match="floating"):
        d.to(dtype=torch.int64)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"x": torch.zeros(3), "y": torch.zeros(3)}, ValueError, r"x must have shape \(n, d\)"),
        ({"x": torch.zeros(3, 2), "y": torch.zeros(4)}, ValueError, r"y must have shape \(3, 1\)"),
        ({"x": torch.zeros(3, 2), "y": torch.zeros(3, 2, 1)}, ValueError, r"y must have shape"),
        ({"x": torch.zeros(3, 2, dtype=torch.int64), "y": torch.zeros(3)}, TypeError, "floating"),
        ({"x": torch.zeros(3, 2), "y": torch.zeros(3), "feature_names": ("a",)}, ValueError, "feature_names"),
        ({"x": torch.zeros(3, 2), "y": torch.zeros(3), "task": "multiclass"}, ValueError, "task"),
    ],
)
def test_dataset_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Dataset(**kwargs)


def test_dataset_images_and_class_labels():
    x = rr.normal(rr.key(0), (6, 1, 8, 8))
    d = Dataset(x, torch.tensor([0, 2, 1, 2, 0, 1], dtype=torch.int32))
    assert d.task == "multiclass"
    assert d.y.dtype == torch.int64  # other integer dtypes become int64
    assert d.y.shape == (6,)
    assert d.class_names == ("0", "1", "2")
    assert d.n_classes == 3
    assert d.feature_shape == (1, 8, 8)
    assert d.n_features == 64
    assert d.feature_names == ()  # no default names beyond tables
    sub = d[torch.tensor([1, 3])]
    assert sub.x.shape == (2, 1, 8, 8)
    assert torch.equal(sub.x, x[[1, 3]])
    assert sub.y.tolist() == [2, 2]
    assert sub.class_names == d.class_names  # a subset keeps every class
    assert sub.n_classes == 3
    assert d[torch.tensor([True, False] * 3)].y.tolist() == [0, 1, 0]
    assert len(d[2:]) == 4
    d64 = d.to(dtype=torch.float64)
    assert d64.x.dtype == torch.float64
    assert d64.y.dtype == torch.int64  # labels are never cast
    assert d64.to("cpu").class_names == d.class_names
    r = repr(d)
    assert "feature_shape=(1, 8, 8)" in r
    assert "n_classes=3" in r
    named = Dataset(torch.zeros(2, 1, 2), torch.tensor([0, 1]), feature_names=("a", "b"))
    assert named.feature_names == ("a", "b")
    with pytest.raises(IndexError, match="1-D index"):
        d[torch.tensor([[0, 1]])]


def test_dataset_task_inference():
    x = torch.zeros(4, 2)
    assert Dataset(x, torch.tensor([0, 1, 1, 0])).task == "multiclass"  # integer 0/1 labels: two classes
    assert Dataset(x, torch.tensor([0.0, 1.0, 1.0, 0.0])).task == "binary"
    assert Dataset(x, torch.tensor([0.0, 1.0, 1.0, 0.0])).n_classes == 2
    assert Dataset(x, torch.tensor([0.0, 2.0, 1.0, 0.0])).task == "regression"
    assert Dataset(x, torch.tensor([0.0, 2.0, 1.0, 0.0])).n_classes is None
    two = Dataset(x, torch.tensor([[0.0, 1.0]] * 4))  # 0/1 values in two columns: multi-output regression
    assert two.task == "regression"
    assert two.y.shape == (4, 2)
    assert Dataset(x, torch.rand(4, 3, generator=torch.Generator().manual_seed(0)), task="regression").y.shape == (4, 3)
    assert Dataset(x, torch.tensor([0.0, 1.0, 1.0, 0.0]), class_names=("no", "yes")).class_names == ("no", "yes")
    assert Dataset(x, torch.tensor([0, 1, 0, 4]), class_names=tuple("abcde")).n_classes == 5
    empty = Dataset(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))
    assert (empty.task, empty.n_classes, empty.class_names) == ("multiclass", 0, ())
    assert Dataset(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64), class_names=("a", "b")).n_classes == 2


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"y": torch.zeros(4), "task": "multiclass"}, ValueError, r"task='multiclass' needs integer class labels"),
        ({"y": torch.zeros(4, 2), "task": "binary"}, ValueError, r"task='binary' needs one floating column"),
        ({"y": torch.zeros(4, dtype=torch.int64), "task": "binary"}, ValueError, r"binary.*use y\.float\(\)"),
        (
            {"y": torch.zeros(4, dtype=torch.int64), "task": "regression"},
            ValueError,
            r"task='regression' needs floating",
        ),
        ({"y": torch.zeros(4, dtype=torch.bool)}, TypeError, r"integer tensor \(class labels\), got torch\.bool"),
        ({"y": torch.zeros(4, dtype=torch.complex64)}, TypeError, "floating tensor"),
        ({"y": torch.zeros(4, 1, dtype=torch.int64)}, ValueError, r"must have shape \(4,\).*use y\[:, 0\]"),
        ({"y": torch.zeros(3, dtype=torch.int64)}, ValueError, r"must have shape \(4,\)"),
        ({"y": torch.tensor([0, 1, -1, 2])}, ValueError, r"class labels must be >= 0, got -1"),
        (
            {"y": torch.tensor([0, 1, 2, 1]), "class_names": ("a", "b")},
            ValueError,
            r"class labels must be in \[0, 2\) \(one per class name\), got 2",
        ),
        ({"y": torch.tensor([0, -3, 1, 1]), "class_names": ("a", "b")}, ValueError, r"in \[0, 2\).*got -3"),
        ({"y": torch.tensor([0, 1, 2**40, 1])}, ValueError, r"class labels must be below \d+ when class_names"),
        ({"y": torch.tensor([0, 1, 0, 1]), "class_names": ("a", "a")}, ValueError, "distinct"),
        ({"y": torch.tensor([0, 1, 0, 1]), "class_names": (0, 1)}, TypeError, "class_names must be a tuple of str"),
        ({"y": torch.tensor([0, 1, 0, 1]), "class_names": "ab"}, TypeError, "class_names must be a tuple of str"),
        ({"y": torch.zeros(4), "class_names": ("a", "b", "c")}, ValueError, r"2 names \(for 0 and 1\)"),
        ({"y": torch.full((4,), 3.0), "class_names": ("a",)}, ValueError, "empty for task='regression'"),
    ],
)
def test_dataset_target_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match) as e:
        Dataset(torch.zeros(4, 2), **kwargs)
    assert str(e.value).startswith("regfn.data.Dataset: ")


def test_dataset_shape_errors():
    with pytest.raises(ValueError, match=r"use x\[:, None\] for one feature\), got \(3,\)"):
        Dataset(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"feature_names must be 64 strings"):
        Dataset(torch.zeros(2, 1, 8, 8), torch.zeros(2), feature_names=("a", "b"))
    with pytest.raises(ValueError, match=r"y must have shape \(2, 1\), \(2, m\) or \(2,\)"):
        Dataset(torch.zeros(2, 1, 8, 8), torch.zeros(2, 0))


# ----------------------------------------------------------------- load_csv


def test_load_diabetes(diabetes_csv):
    d = load_csv(diabetes_csv)
    assert len(d) == 768
    assert d.x.shape == (768, 8)
    assert d.y.shape == (768, 1)
    assert d.target_name == "Outcome"
    assert d.task == "binary"
    assert d.feature_names[:2] == ("Pregnancies", "Glucose")
    assert d.feature_names[-1] == "Age"
    assert d.x.dtype == torch.float32
    assert load_csv(diabetes_csv, target="Outcome").x.shape == (768, 8)
    z = load_csv(diabetes_csv, target="Age", dtype=torch.float64)
    assert z.task == "regression"
    assert z.target_name == "Age"
    assert "Outcome" in z.feature_names
    assert z.x.dtype == torch.float64


def test_load_small(tmp_path):
    p = write(tmp_path, "a,b,label\n1,2.5,0\n-3,4e1,1\n\n5, 6 ,1\n")
    d = load_csv(p)
    assert d.x.tolist() == [[1.0, 2.5], [-3.0, 40.0], [5.0, 6.0]]
    assert d.y[:, 0].tolist() == [0.0, 1.0, 1.0]
    assert d.feature_names == ("a", "b")
    assert d.target_name == "label"
    assert d.task == "binary"
    assert load_csv(str(p)).x.shape == (3, 2)  # str paths too
    # target by index or name, not last
    d0 = load_csv(p, target=0)
    assert d0.target_name == "a"
    assert d0.feature_names == ("b", "label")
    assert d0.task == "regression"
    assert d0.y[:, 0].tolist() == [1.0, -3.0, 5.0]
    assert load_csv(p, target="b").target_name == "b"
    assert load_csv(p, target=-2).target_name == "b"
    assert load_csv(p, task="regression").task == "regression"


def test_load_no_header(tmp_path):
    p = write(tmp_path, "1,2,0\n3,4,1\n")
    d = load_csv(p)  # inferred: the first row is numeric
    assert len(d) == 2
    assert d.feature_names == ("col0", "col1")
    assert d.target_name == "col2"
    d = load_csv(p, header=False, target="col0")
    assert d.target_name == "col0"
    assert d.task == "regression"
    # header=True takes a numeric first row as names
    p = write(tmp_path, "1,2,0\n3,4,1\n5,6,0\n")
    d = load_csv(p, header=True)
    assert len(d) == 2
    assert d.feature_names == ("1", "2")
    assert d.target_name == "0"


def test_load_bom_and_delimiter(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufeffa;b;y\n1;2;0.5\n3;4;1.5\n".encode("utf-8"))
    d = load_csv(p, delimiter=";")
    assert d.feature_names == ("a", "b")
    assert d.task == "regression"


def one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    p = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError) as e:
        load_csv(p)
    assert "nope.csv" in one_line(e)
    assert "no such file" in one_line(e)
    with pytest.raises(ValueError, match="is a directory"):
        load_csv(tmp_path)


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("", {}, ["file is empty"]),
        ("\n  \n", {}, ["file is empty"]),
        ("a,b,y\n", {}, ["at least 2 data rows, found 0"]),
        ("a,b,y\n1,2,1\n", {}, ["at least 2 data rows, found 1"]),
        ("y\n1\n0\n", {}, ["needs at least 2", "column"]),
        ("a,b,y\n1,2,1\n3,4\n", {}, ["row 3 has 2 columns, expected 3"]),
        ("a,b,y\n1,2,1\n3,4,5,6\n", {}, ["row 3 has 4 columns, expected 3"]),
        ("a,Glucose,y\n1,2,1\n3,abc,0\n", {}, ["row 3, column 'Glucose': 'abc' is not a number"]),
        ("a,b,y\n1,2,1\n3,,0\n", {}, ["row 3, column 'b'", "empty cell"]),
        ("a,b,y\n1,nan,1\n3,4,0\n", {}, ["row 2, column 'b'", "'nan'", "NaN"]),
        ("a,b,y\n1,2,1\n3,4,NaN\n", {}, ["row 3, column 'y'", "NaN"]),
        ("a,b,y\n1,inf,1\n3,4,0\n", {}, ["row 2, column 'b'", "not a finite number"]),
        ("a,b,y\n1,1_000,1\n3,4,0\n", {}, ["row 2, column 'b'", "not a number"]),
        ("1,2,1\n3,x,0\n", {"header": False}, ["row 2, column 'col1'", "'x' is not a number"]),
        ("a,b,y\n1,2,1\n3,4,0\n", {"target": "Outcome"}, ["target column 'Outcome' not found", "'a', 'b', 'y'"]),
        ("a,b,y\n1,2,1\n3,4,0\n", {"target": 3}, ["target column index 3 does not exist", "3 columns"]),
        ("a,b,y\n1,2,1\n3,4,0\n", {"target": -4}, ["target column index -4 does not exist"]),
        ("a,y,y\n1,2,1\n3,4,0\n", {"target": "y"}, ["ambiguous"]),
        ("a,b,Outcome\n1,2,1\n3,4,2\n", {"task": "binary"}, ["row 3, column 'Outcome'", "label 2 is not 0 or 1"]),
        ("a,b,y\n1,2,0.5\n3,4,0\n", {"task": "binary"}, ["row 2, column 'y'", "label 0.5 is not 0 or 1"]),
        ('a,b,y\n1,"2,1\n', {}, ["malformed CSV"]),
    ],
)
def test_load_errors(tmp_path, text, kwargs, expected):
    p = write(tmp_path, text, name="bad.csv")
    with pytest.raises(ValueError) as e:
        load_csv(p, **kwargs)
    msg = one_line(e)
    assert msg.startswith(str(p) + ": ")
    for part in expected:
        assert part in msg, msg


def test_load_not_utf8(tmp_path):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"a,b,y\n1,2,\xff\xfe\n")
    with pytest.raises(ValueError) as e:
        load_csv(p)
    assert "not a UTF-8 text file" in one_line(e)


def test_load_argument_errors(tmp_path):
    p = write(tmp_path, "a,y\n1,0\n2,1\n")
    with pytest.raises(ValueError, match="task must be 'binary', 'multiclass' or 'regression', got 'classification'"):
        load_csv(p, task="classification")
    with pytest.raises(ValueError, match="header must be"):
        load_csv(p, header="yes")
    with pytest.raises(TypeError, match="dtype"):
        load_csv(p, dtype=torch.int32)
    with pytest.raises(TypeError, match="target"):
        load_csv(p, target=1.0)
    with pytest.raises(ValueError, match="delimiter"):
        load_csv(p, delimiter=",,")


def test_load_overflow_float16(tmp_path):
    p = write(tmp_path, "a,y\n1e6,0\n2,1\n")
    with pytest.raises(ValueError, match="overflow"):
        load_csv(p, dtype=torch.float16)


def test_load_text_labels_are_classes(tmp_path):
    p = write(tmp_path, "a,b,species\n1,2,cat\n3,4,dog\n5,6, ant \n7,8,cat\n")
    d = load_csv(p)
    assert d.task == "multiclass"
    assert d.class_names == ("ant", "cat", "dog")  # sorted, spaces stripped
    assert d.y.dtype == torch.int64
    assert d.y.tolist() == [1, 2, 0, 1]
    assert d.n_classes == 3
    assert d.x.dtype == torch.float32
    assert d.x.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]
    assert d.feature_names == ("a", "b")
    assert d.target_name == "species"
    assert load_csv(p, task="multiclass").class_names == d.class_names
    assert load_csv(p, dtype=torch.float64).y.dtype == torch.int64
    # labels that are numbers sort numerically, before the text labels, which sort alphabetically
    mixed = load_csv(write(tmp_path, "a,y\n1,10\n2,b\n3,9\n4,a\n5,9.0\n6,2.5\n"))
    assert mixed.class_names == ("2.5", "9", "10", "a", "b")
    assert mixed.y.tolist() == [2, 4, 1, 3, 1, 0]
    # two text classes: multiclass unless task="binary", which maps them to 0/1 in sorted order
    p2 = write(tmp_path, "a,y\n1,yes\n2,no\n3,yes\n")
    assert load_csv(p2).task == "multiclass"
    assert load_csv(p2).class_names == ("no", "yes")
    b = load_csv(p2, task="binary")
    assert b.task == "binary"
    assert b.class_names == ("no", "yes")
    assert b.y.dtype == torch.float32
    assert b.y[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_load_numeric_multiclass(tmp_path):
    p = write(tmp_path, "a,rating\n1,3\n2,1\n3,2\n4,3\n5,1\n")
    assert load_csv(p).task == "regression"  # integers with more than two values: regression, as before
    d = load_csv(p, task="multiclass")
    assert d.task == "multiclass"
    assert d.class_names == ("1", "2", "3")
    assert d.y.tolist() == [2, 0, 1, 2, 0]
    digits_like = load_csv(write(tmp_path, "a,y\n1,10\n2,9\n3,0\n4,1\n"), task="multiclass")
    assert digits_like.class_names == ("0", "1", "9", "10")
    assert digits_like.y.tolist() == [3, 2, 0, 1]
    assert load_csv(write(tmp_path, "a,y\n1,0\n2,1\n3,1\n"), task="multiclass").class_names == ("0", "1")
    assert load_csv(write(tmp_path, "a,y\n1,0\n2,1\n3,1\n")).task == "binary"  # 0/1: binary, as before


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        (
            "a,y\n1,2\n3,cat\n",
            {"task": "regression"},
            ["row 3, column 'y': 'cat' is not a number", "task='regression'"],
        ),
        ("a,y\n1,a\n3,b\n4,c\n", {"task": "binary"}, ["column 'y' has 3 classes ('a', 'b', 'c')", "task='binary'"]),
        ("a,y\n1,a\n3,\n", {}, ["row 3, column 'y'", "empty cell"]),
        ("a,y\n1,a\n3,inf\n", {}, ["row 3, column 'y'", "not a finite number"]),
        ("a,y\n1,a\nx,b\n", {}, ["row 3, column 'a': 'x' is not a number"]),
    ],
)
def test_load_label_errors(tmp_path, text, kwargs, expected):
    p = write(tmp_path, text, name="bad.csv")
    with pytest.raises(ValueError) as e:
        load_csv(p, **kwargs)
    msg = one_line(e)
    assert msg.startswith(str(p) + ": ")
    for part in expected:
        assert part in msg, msg


def test_load_csv_does_not_know_the_tutorial_path():
    for name in DATA_MODULES:
        source = inspect.getsource(importlib.import_module(name))
        assert "diabetes.csv" not in source
        assert "shared" not in source


# ----------------------------------------------------------------- quadrants


def test_quadrants(key):
    d = quadrants(key, 200)
    assert d.x.shape == (200, 2)
    assert d.y.shape == (200, 1)
    assert d.task == "binary"
    same = (d.x[:, 0] > 0) == (d.x[:, 1] > 0)
    assert torch.equal(d.y[:, 0] == 1, same)
    assert torch.equal(d.x, rr.normal(key, (200, 2)))
    again = quadrants(key, 200)
    assert torch.equal(again.x, d.x)
    assert torch.equal(again.y, d.y)
    other = quadrants(rr.fold_in(key, 1), 200)
    assert not torch.equal(other.x, d.x)
    assert 0.3 < d.y.mean().item() < 0.7  # about half the points are in quadrants I and III


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_quadrants_dtype(dtype):
    d = quadrants(rr.key(3), 50, dtype=dtype)
    assert d.x.dtype == dtype
    assert d.y.dtype == dtype
    assert torch.equal(d.y[:, 0] == 1, (d.x[:, 0] > 0) == (d.x[:, 1] > 0))


def test_quadrants_errors():
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        quadrants(rr.key(0), 0)
    with pytest.raises(TypeError, match="n must be an int"):
        quadrants(rr.key(0), 2.0)
    with pytest.raises(TypeError, match="dtype"):
        quadrants(rr.key(0), 5, dtype=torch.int32)


# ----------------------------------------------------------------- sparse_regression


def test_sparse_regression(key):
    d, w = sparse_regression(key, 500, 10, n_informative=3, noise=0.1)
    assert d.x.shape == (500, 10)
    assert d.y.shape == (500, 1)
    assert w.shape == (10,)
    assert d.task == "regression"
    support = w != 0
    assert int(support.sum()) == 3
    assert bool((w[support].abs() >= 1).all() and (w[support].abs() <= 3).all())
    resid = d.y[:, 0] - d.x @ w
    assert abs(resid.std().item() - 0.1) < 0.02
    assert abs(resid.mean().item()) < 0.03
    # least squares recovers w, zeros included
    w_hat = torch.linalg.lstsq(d.x.double(), d.y.double()).solution[:, 0]
    assert torch.allclose(w_hat.float(), w, atol=0.05)
    d2, w2 = sparse_regression(key, 500, 10, n_informative=3, noise=0.1)
    assert torch.equal(d2.x, d.x)
    assert torch.equal(d2.y, d.y)
    assert torch.equal(w2, w)


def test_sparse_regression_support_varies_with_key():
    supports = {tuple((sparse_regression(rr.key(s), 20, 10)[1] != 0).tolist()) for s in range(8)}
    assert len(supports) > 1
    signs = torch.cat([sparse_regression(rr.key(s), 20, 10)[1] for s in range(8)])
    assert (signs > 0).any()
    assert (signs < 0).any()


def test_sparse_regression_edges():
    d, w = sparse_regression(rr.key(0), 30, 4, n_informative=0, noise=0.0)
    assert torch.equal(w, torch.zeros(4))
    assert torch.equal(d.y, torch.zeros(30, 1))
    d, w = sparse_regression(rr.key(0), 30, 4, n_informative=4, noise=0.0, dtype=torch.float64)
    assert bool((w != 0).all())
    assert d.x.dtype == torch.float64
    assert torch.allclose(d.y[:, 0], d.x @ w)
    with pytest.raises(ValueError, match="n_informative must be <= d=4"):
        sparse_regression(rr.key(0), 30, 4, n_informative=5)
    with pytest.raises(ValueError, match="noise"):
        sparse_regression(rr.key(0), 30, 4, noise=-1.0)
    with pytest.raises(ValueError, match="d must be an int >= 1"):
        sparse_regression(rr.key(0), 30, 0)


# ----------------------------------------------------------------- standardize


def test_standardize(key):
    a, b = rr.split(key)
    raw_train = Dataset(
        rr.normal(a, (300, 3)) * torch.tensor([2.0, 10.0, 0.5]) + torch.tensor([1.0, -5.0, 3.0]), torch.zeros(300)
    )
    raw_val = Dataset(rr.normal(b, (40, 3)) * 7 + 2, torch.zeros(40))
    train, val, stats = standardize(raw_train, raw_val)
    assert isinstance(stats, FeatureStats)
    assert torch.allclose(train.x.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(train.x.std(0, correction=0), torch.ones(3), atol=1e-5)
    mean, std = raw_train.x.double().mean(0), raw_train.x.double().std(0, correction=0)
    assert torch.allclose(stats.mean.double(), mean, atol=1e-5)
    assert torch.allclose(stats.std.double(), std, atol=1e-5)
    # the validation split uses the TRAIN statistics, not its own
    assert torch.allclose(val.x, ((raw_val.x.double() - mean) / std).float(), atol=1e-5)
    assert not torch.allclose(val.x.mean(0), torch.zeros(3), atol=0.1)
    assert torch.equal(val.y, raw_val.y)
    assert val.feature_names == raw_val.feature_names
    assert torch.allclose(stats.apply(raw_val).x, val.x, atol=1e-5)


def test_standardize_constant_column_and_single():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    (train, stats) = standardize(Dataset(x, torch.zeros(2)))
    assert stats.std.tolist() == [1.0, 1.0]
    assert train.x.tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    assert torch.isfinite(train.x).all()
    with pytest.raises(ValueError, match="empty"):
        standardize(Dataset(torch.zeros(0, 2), torch.zeros(0), task="regression"))


def test_standardize_images(key):
    a, b = rr.split(key)
    scale = rr.uniform(rr.key(5), (1, 8, 8), minval=0.5, maxval=4.0)
    raw_train = Dataset(rr.normal(a, (60, 1, 8, 8)) * scale + 3.0, torch.arange(60) % 10)
    raw_val = Dataset(rr.normal(b, (20, 1, 8, 8)), torch.arange(20) % 10)
    train, val, stats = standardize(raw_train, raw_val)
    assert stats.mean.shape == stats.std.shape == (1, 8, 8)  # one mean and std per pixel
    assert train.x.shape == (60, 1, 8, 8)
    assert torch.equal(train.y, raw_train.y)
    assert torch.allclose(train.x.mean(0), torch.zeros(1, 8, 8), atol=1e-5)
    assert torch.allclose(train.x.std(0, correction=0), torch.ones(1, 8, 8), atol=1e-5)
    # the same numbers as standardizing the flattened table
    flat_train, flat_val, flat_stats = standardize(
        Dataset(raw_train.x.flatten(1), raw_train.y), Dataset(raw_val.x.flatten(1), raw_val.y)
    )
    assert torch.equal(train.x.flatten(1), flat_train.x)
    assert torch.equal(val.x.flatten(1), flat_val.x)
    assert torch.equal(stats.mean.flatten(), flat_stats.mean)
    assert torch.equal(stats.std.flatten(), flat_stats.std)
    assert torch.allclose(stats.apply(raw_val).x, val.x, atol=1e-5)  # float32 statistics: rounding differs
    with pytest.raises(ValueError, match=r"examples of shape \(64,\), the statistics have shape \(1, 8, 8\)"):
        stats.apply(Dataset(raw_val.x.flatten(1), raw_val.y))
    with pytest.raises(ValueError, match="data has 3 features, the statistics have 64"):
        flat_stats.apply(Dataset(torch.zeros(2, 3), torch.zeros(2)))


def test_load_diabetes_values(real_diabetes_csv):
    d = load_csv(real_diabetes_csv)
    assert d.x[0].tolist() == pytest.approx([6, 148, 72, 35, 0, 33.6, 0.627, 50])
    assert d.y[:2, 0].tolist() == [1.0, 0.0]
    assert int(d.y.sum()) == 268


def test_diabetes_standin_csv_is_synthetic_diabetes(tmp_path):
    from conftest import PIMA_HEADER, write_diabetes_standin

    path = write_diabetes_standin(tmp_path / "diabetes.csv")
    assert path.read_text().splitlines()[0] == PIMA_HEADER
    d = load_csv(path)
    expected = data_module.synthetic_diabetes(rr.key(0))
    assert d.feature_names == expected.feature_names
    assert torch.equal(d.x, expected.x)  # 9 significant digits round-trip float32 exactly
    assert torch.equal(d.y, expected.y.reshape(-1, 1))
    assert 0.25 < float(d.y.mean()) < 0.5


def test_missing_csv_says_the_path_does_not_exist(tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "data.csv"
    with pytest.raises(FileNotFoundError) as err:
        load_csv(missing)
    message = str(err.value)
    assert message == f"{missing}: no such file (the path does not exist)"
    assert "Kaggle" not in message
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_csv("diabetes.csv")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"diabetes.csv: no such file (the path does not exist; looked in {tmp_path}); ")
    for text in ("Pima Indians Diabetes", "768 rows", "Outcome", "Kaggle", "UCI", "synthetic_diabetes"):
        assert text in message, text


def test_standardize_diabetes(diabetes_csv):
    d = load_csv(diabetes_csv)
    train, val = train_val_split(rr.key(0), d, 0.2)
    train_z, val_z, _ = standardize(train, val)
    assert torch.allclose(train_z.x.mean(0), torch.zeros(8), atol=1e-4)
    assert torch.allclose(train_z.x.std(0, correction=0), torch.ones(8), atol=1e-4)
    assert len(val_z) == len(val)


# ----------------------------------------------------------------- train_val_split


def test_train_val_split(key):
    d = Dataset(torch.arange(100.0).reshape(100, 1), torch.arange(100.0))
    train, val = train_val_split(key, d, 0.2)
    assert len(train) == 80
    assert len(val) == 20
    tr, va = set(train.x[:, 0].tolist()), set(val.x[:, 0].tolist())
    assert not tr & va
    assert tr | va == set(range(100))
    assert torch.equal(train.x[:, 0], train.y[:, 0])
    assert torch.equal(val.x[:, 0], val.y[:, 0])
    assert bool((train.x[1:, 0] > train.x[:-1, 0]).all())  # original order kept
    train2, val2 = train_val_split(key, d, 0.2)
    assert torch.equal(train2.x, train.x)
    assert torch.equal(val2.x, val.x)
    _, val3 = train_val_split(rr.fold_in(key, 7), d, 0.2)
    assert not torch.equal(val3.x, val.x)
    assert set(val.x[:, 0].long().tolist()) == set(rr.permutation(key, 100)[:20].tolist())


@pytest.mark.parametrize(
    ("n", "frac", "n_val"), [(10, 0.25, 3), (10, 0.24, 2), (768, 0.2, 154), (7, 0.5, 4), (5, 0.0, 0)]
)
def test_train_val_split_sizes(n, frac, n_val):
    train, val = train_val_split(rr.key(0), quadrants(rr.key(1), n), frac)
    assert len(val) == n_val
    assert len(train) == n - n_val
    assert val.x.shape == (n_val, 2)
    assert val.task == "binary"


def test_train_val_split_errors():
    d = quadrants(rr.key(0), 3)
    for bad in (1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
            train_val_split(rr.key(0), d, bad)
    with pytest.raises(ValueError, match="leaves no training rows"):
        train_val_split(rr.key(0), d, 0.9)
    reg, _ = sparse_regression(rr.key(0), 10, 3)
    with pytest.raises(ValueError, match="stratify"):
        train_val_split(rr.key(0), reg, 0.2, stratify=True)
    with pytest.raises(TypeError, match=r"regfn\.data\.train_val_split: expected a key"):
        train_val_split(0, d, 0.2)
    # regfn.random's key check: a key of the wrong shape is a ValueError
    with pytest.raises(ValueError, match=r"regfn\.data\.train_val_split: expected a single key of shape \(2,\)"):
        train_val_split(torch.zeros(3, dtype=torch.int64), d, 0.2)
    with pytest.raises(ValueError, match=r"regfn\.data\.synthetic_diabetes: .*torch\.func\.vmap"):
        data_module.synthetic_diabetes(rr.split(rr.key(0)))


def test_train_val_split_stratified(key):
    y = torch.cat([torch.ones(30), torch.zeros(70)])
    d = Dataset(torch.arange(100.0).reshape(100, 1), y)
    train, val = train_val_split(key, d, 0.2, stratify=True)
    assert len(val) == 20
    assert val.y.sum().item() == 6
    assert train.y.sum().item() == 24
    assert not set(train.x[:, 0].tolist()) & set(val.x[:, 0].tolist())


def class_data(counts, n_feat=1):
    """Examples numbered 0..n-1 in x[:, 0], with the given number of examples per class (interleaved)."""
    labels = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    labels = labels[rr.permutation(rr.key(99), len(labels))]  # classes interleaved, not in blocks
    n = len(labels)
    return Dataset(torch.arange(float(n)).reshape(n, 1).repeat(1, n_feat), labels)


@pytest.mark.parametrize("frac", [0.1, 0.25, 0.3, 0.5])
def test_stratified_split_multiclass(key, frac):
    counts = [50, 31, 17, 9, 4, 1]
    d = class_data(counts)
    train, val = train_val_split(key, d, frac)  # multiclass: stratified by default
    n = len(d)
    assert len(val) == math.floor(frac * n + 0.5)  # as many as the unstratified split
    assert len(train) + len(val) == n
    per_class = torch.bincount(val.y, minlength=len(counts)).tolist()
    for c, count in enumerate(counts):  # within one example of the exact share
        assert math.floor(frac * count) <= per_class[c] <= math.ceil(frac * count), (c, per_class)
    assert torch.bincount(train.y, minlength=len(counts)).tolist() == [
        a - b for a, b in zip(counts, per_class, strict=True)
    ]
    tr, va = set(train.x[:, 0].tolist()), set(val.x[:, 0].tolist())
    assert not tr & va
    assert tr | va == set(range(n))
    assert torch.equal(d.y[train.x[:, 0].long()], train.y)  # each example keeps its label
    assert bool((train.x[1:, 0] > train.x[:-1, 0]).all())  # original order kept
    assert bool((val.x[1:, 0] > val.x[:-1, 0]).all())
    assert train.class_names == val.class_names == d.class_names
    again_train, again_val = train_val_split(key, d, frac, stratify=True)
    assert torch.equal(again_val.x, val.x)
    assert torch.equal(again_train.x, train.x)
    _, other = train_val_split(rr.fold_in(key, 1), d, frac)
    assert not torch.equal(other.x, val.x)


def test_stratified_split_is_a_shuffle_within_each_class():
    d = class_data([40, 40])
    first = d.x[d.y == 0, 0][:10]  # the first 10 examples of class 0 in row order
    vals = [train_val_split(rr.key(s), d, 0.25)[1] for s in range(8)]
    chosen = [set(v.x[v.y == 0, 0].tolist()) for v in vals]
    assert len({frozenset(c) for c in chosen}) == 8  # different keys choose different examples
    assert any(c != set(first.tolist()) for c in chosen)


def test_stratified_total_is_the_unstratified_total():
    d = class_data([5] * 10)  # 0.5 example per class: rounding each class would give 10
    _, val = train_val_split(rr.key(0), d, 0.1)
    assert len(val) == 5
    assert sorted(torch.bincount(val.y, minlength=10).tolist()) == [0] * 5 + [1] * 5


def test_split_defaults_by_task(key):
    binary = quadrants(rr.key(3), 101)
    for a, b in zip(train_val_split(key, binary, 0.3), train_val_split(key, binary, 0.3, stratify=True), strict=True):
        assert torch.equal(a.x, b.x)
    multi = class_data([20, 13, 7])
    for a, b in zip(train_val_split(key, multi, 0.3), train_val_split(key, multi, 0.3, stratify=True), strict=True):
        assert torch.equal(a.x, b.x)
    reg, _ = sparse_regression(rr.key(3), 50, 4)
    for a, b in zip(train_val_split(key, reg, 0.3), train_val_split(key, reg, 0.3, stratify=False), strict=True):
        assert torch.equal(a.x, b.x)
    # the unstratified split: the permutation's first round(frac * n) rows, whatever the task
    for data in (binary, multi, reg):
        _, val = train_val_split(key, data, 0.3, stratify=False)
        in_val = torch.zeros(len(data), dtype=torch.bool)
        in_val[rr.permutation(key, len(data))[: round(0.3 * len(data))]] = True
        assert torch.equal(val.x, data.x[in_val])


def test_stratified_binary_keeps_the_balance(key):
    d = synthetic_diabetes(rr.key(0))
    _, val = train_val_split(key, d, 0.2)
    positives = int(d.y.sum())
    assert len(val) == 154
    assert abs(int(val.y.sum()) - 0.2 * positives) <= 1


def test_split_stratify_errors():
    d = class_data([5, 5])
    with pytest.raises(TypeError, match=r"stratify must be a bool or None, got str 'yes'"):
        train_val_split(rr.key(0), d, 0.2, stratify="yes")
    odd = Dataset(torch.zeros(4, 1), torch.tensor([0.0, 1.0, 0.5, 1.0]), task="binary")  # labels unchecked
    with pytest.raises(ValueError, match=r"needs 0/1 labels, got 0.5 \(or pass stratify=False\)"):
        train_val_split(rr.key(0), odd, 0.5)
    assert len(train_val_split(rr.key(0), odd, 0.5, stratify=False)[1]) == 2
    train, val = train_val_split(rr.key(0), d, 0.0)
    assert (len(train), len(val)) == (10, 0)
    empty = Dataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64))
    assert [len(s) for s in train_val_split(rr.key(0), empty, 0.5)] == [0, 0]


# ----------------------------------------------------------------- batches


def test_batches(key):
    idx = batches(key, 103, 10)
    assert idx.shape == (10, 10)
    assert idx.dtype == torch.int64
    flat = idx.flatten().tolist()
    assert len(set(flat)) == 100
    assert all(0 <= i < 103 for i in flat)
    assert torch.equal(idx.flatten(), rr.permutation(key, 103)[:100])
    assert torch.equal(batches(key, 103, 10), idx)
    assert not torch.equal(batches(rr.fold_in(key, 1), 103, 10), idx)
    assert batches(key, 5, 5).shape == (1, 5)
    assert batches(key, 5, 1).shape == (5, 1)
    assert sorted(batches(key, 5, 1).flatten().tolist()) == list(range(5))


def test_batches_vmap_equals_loop():
    keys = rr.split(rr.key(0), 6)
    out = vmap(lambda k: batches(k, 50, 8))(keys)
    assert out.shape == (6, 6, 8)
    loop = torch.stack([batches(k, 50, 8) for k in keys])
    assert torch.equal(out, loop)
    assert len({tuple(o.flatten().tolist()) for o in out}) == 6  # a different shuffle per key


def test_batches_index_a_dataset():
    d = quadrants(rr.key(0), 40)
    idx = batches(rr.key(1), len(d), 16)
    xb, yb = d.x[idx], d.y[idx]
    assert xb.shape == (2, 16, 2)
    assert yb.shape == (2, 16, 1)
    assert torch.equal(xb[1, 3], d.x[idx[1, 3]])


@pytest.mark.parametrize("bs", [0, -1, 11])
def test_batches_errors(bs):
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, n=10\]"):
        batches(rr.key(0), 10, bs)


def test_batches_type_errors():
    with pytest.raises(TypeError, match="batch_size"):
        batches(rr.key(0), 10, 2.0)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        batches(rr.key(0), 0, 1)


def test_no_global_rng_use():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    quadrants(rr.key(0), 20)
    sparse_regression(rr.key(0), 20, 5)
    train_val_split(rr.key(0), quadrants(rr.key(0), 20), 0.2)
    batches(rr.key(0), 20, 4)
    assert torch.equal(torch.get_rng_state(), before)


def test_all_names_exported():
    assert set(data_module.__all__) == {
        "Dataset",
        "FeatureStats",
        "Folds",
        "batches",
        "digits",
        "kfold",
        "load_csv",
        "quadrants",
        "sparse_regression",
        "standardize",
        "synthetic_diabetes",
        "train_val_split",
    }
    assert all(getattr(data_module, name).__doc__ for name in data_module.__all__)


def test_synthetic_diabetes_has_the_tables_shape_and_is_keyed():
    a = data_module.synthetic_diabetes(rr.key(0))
    b = data_module.synthetic_diabetes(rr.key(0))
    c = data_module.synthetic_diabetes(rr.key(1), 100)
    assert a.x.shape == (768, 8)
    assert a.y.shape == (768, 1)
    assert a.target_name == "Outcome"
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.y, b.y)
    assert c.x.shape == (100, 8)
    assert 0.2 < float(a.y.mean()) < 0.5  # roughly the table's 35% positives
    assert float(a.x[:, 1].mean()) == pytest.approx(121, rel=0.1)  # Glucose on its scale


# ----------------------------------------------------------------- digits


def test_digits():
    pytest.importorskip("sklearn")
    d = data_module.digits()
    assert d.x.shape == (1797, 1, 8, 8)
    assert d.x.dtype == torch.float32
    assert d.y.shape == (1797,)
    assert d.y.dtype == torch.int64
    assert d.task == "multiclass"
    assert d.n_classes == 10
    assert d.class_names == tuple(str(c) for c in range(10))
    assert d.target_name == "digit"
    assert d.feature_names == ()
    assert int(d.y.min()) == 0
    assert int(d.y.max()) == 9
    counts = torch.bincount(d.y).tolist()
    assert all(170 <= c <= 190 for c in counts), counts  # about 180 per class
    assert sum(counts) == 1797
    assert float(d.x.min()) == 0.0
    assert float(d.x.max()) == 1.0
    assert torch.equal(d.x * 16, (d.x * 16).round())  # gray levels 0..16, divided by 16
    flat = data_module.digits(flat=True)
    assert flat.x.shape == (1797, 64)
    assert torch.equal(flat.x, d.x.reshape(1797, 64))
    assert torch.equal(flat.y, d.y)
    assert flat.feature_names[:3] == ("pixel_0_0", "pixel_0_1", "pixel_0_2")
    assert flat.feature_names[8] == "pixel_1_0"
    assert flat.feature_names[-1] == "pixel_7_7"
    d64 = data_module.digits(dtype=torch.float64)
    assert d64.x.dtype == torch.float64
    assert torch.equal(d64.x.float(), d.x)
    train, val = train_val_split(rr.key(0), d, 0.2)  # stratified: about 36 of each digit
    assert len(val) == 359
    assert all(abs(c - 0.2 * n) <= 1 for c, n in zip(torch.bincount(val.y).tolist(), counts, strict=True))
    assert standardize(train, val)[-1].mean.shape == (1, 8, 8)


def test_digits_errors():
    pytest.importorskip("sklearn")
    with pytest.raises(TypeError, match="flat must be a bool"):
        data_module.digits(flat=1)
    with pytest.raises(TypeError, match="dtype"):
        data_module.digits(dtype=torch.int64)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"regfn\.data\.digits needs scikit-learn: pip install 'regfn\[datasets\]'"):
        data_module.digits()
