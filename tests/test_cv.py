"""Cross-validation: keyed stratified folds, and ``regfn.sweep(..., cv=k)`` equal to one sweep per fold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import regfn
import regfn.random as rr
from regfn._hparams import optimizer_defaults
from regfn.data import Dataset, kfold
from regfn.optim import sgd

MODEL = regfn.mlp((2, 6, 1), output="logits")
# SGD's sweep defaults (lr 0.1, momentum 0.9): with them a chunk of one row, before chunks got a
# padding row, drew its objective curve apart in the last bit (test_cv_rows_do_not_depend_on_chunking).
CONFIGS = [
    {"l2": 0.0, "p": 0.0, "seed": 0},
    {"l2": 1e-2, "p": 0.5, "seed": 1},
    {"l1": 1e-3, "p": 0.3, "seed": 2},
]


@pytest.fixture(scope="module")
def data():
    return regfn.data.quadrants(rr.key(0), 97)  # 97 rows: 5 folds of 19, 2 rows left over


def labelled(labels: list[int], n_classes: int) -> Dataset:
    y = torch.tensor(labels, dtype=torch.int64)
    return Dataset(torch.zeros(len(labels), 1), y, class_names=tuple(str(c) for c in range(n_classes)))


# ----------------------------------------------------------------- the folds


FOLD_CASES = {
    "counts": st.lists(st.integers(0, 40), min_size=1, max_size=5).filter(lambda c: sum(c) >= 2),
    "k_share": st.floats(0, 1),
    "seed": st.integers(0, 2**31 - 1),
    "stratify": st.booleans(),
}
"""Class counts, a share of the possible fold counts, a key and whether to stratify."""


def fold_case(counts: list[int], k_share: float) -> tuple[list[int], int, int, Dataset]:
    """A case of :data:`FOLD_CASES` as its labels, its number of rows, its fold count and its data."""
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    n = len(labels)
    return labels, n, 2 + int(k_share * (n - 2)), labelled(labels, len(counts))


@settings(max_examples=60, deadline=None)
@given(**FOLD_CASES)
def test_folds_partition_and_stratify(counts, k_share, seed, stratify):
    labels, n, k, data = fold_case(counts, k_share)
    folds = kfold(rr.key(seed), data, k, stratify=stratify)
    assert folds.train.shape == (k, n - n // k)
    assert folds.val.shape == (k, n // k)
    held = folds.val.flatten().tolist()
    assert len(set(held)) == k * (n // k)  # disjoint held-out rows
    for i in range(k):
        train, val = set(folds.train[i].tolist()), set(folds.val[i].tolist())
        assert train.isdisjoint(val)
        assert train | val == set(range(n))
        assert folds.train[i].tolist() == sorted(train)
        assert folds.val[i].tolist() == sorted(val)
    if stratify:
        y = torch.tensor(labels)
        per_fold = torch.stack([torch.bincount(y[v], minlength=len(counts)) for v in folds.val])
        assert int((per_fold.max(0).values - per_fold.min(0).values).max()) <= 1  # within one row per class
    again = kfold(rr.key(seed), data, k, stratify=stratify)
    assert torch.equal(again.train, folds.train)
    assert torch.equal(again.val, folds.val)


@settings(max_examples=40, deadline=None)
@given(**FOLD_CASES)
def test_kfold_every_row_validates_each_row_once(counts, k_share, seed, stratify):
    labels, n, k, data = fold_case(counts, k_share)
    every = kfold(rr.key(seed), data, k, stratify=stratify, every_row=True)
    held = torch.cat([every.val_of(f) for f in range(k)])
    assert sorted(held.tolist()) == list(range(n))  # every row held out once
    assert [every.val_size(f) for f in range(k)] == [n // k + (f < n % k) for f in range(k)]
    for f in range(k):
        assert sorted(every.train_of(f).tolist() + every.val_of(f).tolist()) == list(range(n))
    if stratify:
        y = torch.tensor(labels)
        for c, count in enumerate(counts):
            per_fold = [int((y[every.val_of(f)] == c).sum()) for f in range(k)]
            assert max(per_fold) - min(per_fold) <= 1
            assert sum(per_fold) == count
    plain = kfold(rr.key(seed), data, k, stratify=stratify)
    if n % k == 0:
        assert every.sizes is None
        assert torch.equal(every.val, plain.val)
    else:  # the first k * (n // k) rows of the order are dealt as before
        for f in range(k):
            assert set(plain.val_of(f).tolist()) <= set(every.val_of(f).tolist())


def test_folds_follow_the_documented_deal():
    data = regfn.data.quadrants(rr.key(3), 23)
    folds = kfold(rr.key(5), data, 4, stratify=False)
    order = rr.permutation(rr.key(5), 23)
    for i in range(4):  # the j-th row of the keyed order goes to fold j % 4; the last 23 % 4 = 3 never held out
        assert folds.val[i].tolist() == sorted(order[i:20:4].tolist())
    assert set(order[20:].tolist()).isdisjoint(folds.val.flatten().tolist())
    other = kfold(rr.key(6), data, 4, stratify=False)
    assert not torch.equal(other.val, folds.val)


def test_stratified_is_the_classification_default_and_regression_is_not():
    binary = regfn.data.quadrants(rr.key(0), 60)
    assert kfold(rr.key(0), binary, 3).stratified
    reg = regfn.data.sparse_regression(rr.key(0), 60, 4)[0]
    assert not kfold(rr.key(0), reg, 3).stratified
    with pytest.raises(ValueError, match="stratify=True needs a classification task"):
        kfold(rr.key(0), reg, 3, stratify=True)


@pytest.mark.parametrize(
    ("k", "error", "message"),
    [
        (1, ValueError, r"k must be an int in \[2, 10\], got 1"),
        (11, ValueError, r"k must be an int in \[2, 10\], got 11"),
        (2.0, TypeError, "k must be an int"),
        (True, TypeError, "k must be an int"),
    ],
)
def test_bad_fold_counts(k, error, message):
    with pytest.raises(error, match=message):
        kfold(rr.key(0), regfn.data.quadrants(rr.key(0), 10), k)


def test_fold_split_gives_datasets_and_checks_the_data(data):
    folds = kfold(rr.key(0), data, 5)
    train, val = folds.split(data, 2)
    assert torch.equal(train.x, data.x[folds.train[2]])
    assert torch.equal(val.y, data.y[folds.val[2]])
    with pytest.raises(ValueError, match="the folds index 97 rows, but the data has 96"):
        folds.split(data[:96], 0)
    with pytest.raises(ValueError, match=r"i must be an int in \[0, 4\]"):
        folds.split(data, 5)


# ----------------------------------------------------------------- the sweep


def single_run(row, train, val, **kw):
    hp = {**optimizer_defaults("sgd"), **row}
    penalties = [f(hp[name]) for name, f in (("l1", regfn.l1), ("l2", regfn.l2)) if hp[name]]
    opt = sgd(hp["lr"], momentum=hp["momentum"])
    return regfn.train(
        MODEL, train, optimizer=opt, penalties=penalties, p=hp["p"], key=rr.key(hp["seed"]), val=val, **kw
    )


@pytest.mark.parametrize("batch_size", [None, 16])
def test_every_fold_row_equals_its_single_run(data, batch_size):
    folds = kfold(rr.key(0), data, 5)
    result = regfn.sweep(MODEL, data, CONFIGS, cv=5, epochs=6, batch_size=batch_size, compile=False, quiet=True)
    assert result.settings["folds"] == 5
    assert result.settings["padded"] == 15
    for row, cfg in zip(result.rows, CONFIGS, strict=True):
        accs, losses = [], []
        for f in range(5):
            train, val = folds.split(data, f)
            alone = regfn.sweep(
                MODEL, train, [cfg], val=val, epochs=6, batch_size=batch_size, compile=False, quiet=True
            )
            assert row["val_loss_folds"][f] == alone.rows[0]["val_loss"]  # bit for bit: same masks, same rows
            assert row["val_acc_folds"][f] == alone.rows[0]["val_acc"]
            assert row["loss_folds"][f] == alone.rows[0]["loss"]  # training metrics: on the fold's training rows
            assert row["acc_folds"][f] == alone.rows[0]["acc"]
            looped = single_run(cfg, train, val, epochs=6, batch_size=batch_size)  # the plain loop
            assert row["val_loss_folds"][f] == pytest.approx(looped.val_metrics["loss"], rel=1e-5, abs=1e-6)
            accs.append(row["val_acc_folds"][f])
            losses.append(alone.rows[0]["loss"])
        assert row["val_acc"] == pytest.approx(float(np.mean(accs)), abs=1e-12)
        assert row["val_acc_std"] == pytest.approx(float(np.std(accs)), abs=1e-12)  # numpy's ddof=0
        assert row["loss"] == pytest.approx(float(np.mean(losses)), rel=1e-6)
        assert "val_penalty_std" not in row
        assert "acc_std" not in row
        assert "val_penalty" in row
        assert "val_penalty_folds" not in row
        assert "penalty_folds" not in row


def test_multiclass_cv_on_images():
    key_x, _key_y = rr.split(rr.key(4))
    y = torch.arange(60) % 3
    x = rr.normal(key_x, (60, 1, 4, 4)) + y.float()[:, None, None, None]
    data = Dataset(x, y, class_names=("a", "b", "c"))
    model = regfn.from_module(regfn.nn.small_cnn(1, 3, image_size=4))
    configs = [{"p1": 0.0, "p2": 0.0, "seed": 0, "lr": 0.05}, {"p1": 0.3, "p2": 0.5, "seed": 1, "lr": 0.05}]
    result = regfn.sweep(model, data, configs, cv=3, loss="cross_entropy", epochs=3, compile=False, quiet=True)
    folds = kfold(rr.key(0), data, 3)
    for f in range(3):
        assert sorted(torch.bincount(y[folds.val[f]], minlength=3).tolist()) == [6, 7, 7]  # 20 of 60, by class
        train, val = folds.split(data, f)
        alone = regfn.sweep(model, train, configs, val=val, loss="cross_entropy", epochs=3, compile=False, quiet=True)
        for row, one in zip(result.rows, alone.rows, strict=True):
            assert row["val_acc_folds"][f] == one["val_acc"]
            assert row["val_loss_folds"][f] == pytest.approx(one["val_loss"], rel=1e-6)
    assert result.curves["val_acc"].shape == (2, 3)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(1, 9), k=st.integers(2, 4))
@example(chunk=1, k=4)  # a chunk of one row: before chunks got a padding row, its loss curve differed
def test_cv_rows_do_not_depend_on_chunking(data, chunk, k):
    whole = regfn.sweep(MODEL, data, CONFIGS, cv=k, epochs=3, chunk_size=None, compile=False, quiet=True)
    chunked = regfn.sweep(MODEL, data, CONFIGS, cv=k, epochs=3, chunk_size=chunk, compile=False, quiet=True)
    assert chunked.rows == whole.rows
    for name, curve in whole.curves.items():
        assert torch.equal(chunked.curves[name], curve)


def test_curves_are_means_over_folds_and_divergence_is_any_fold(data):
    cfgs = [{"p": 0.0, "seed": 0, "lr": 0.1}, {"p": 0.0, "seed": 0, "lr": 1e30}]
    result = regfn.sweep(MODEL, data, cfgs, cv=3, epochs=4, compile=False, quiet=True)
    assert result.diverged == [1]
    assert not result.rows[0]["diverged"]
    folds = kfold(rr.key(0), data, 3)
    per_fold = []
    for f in range(3):
        train, val = folds.split(data, f)
        per_fold.append(regfn.sweep(MODEL, train, cfgs[:1], val=val, epochs=4, compile=False, quiet=True))
    expected = torch.stack([r.curves["val_loss"][0].double() for r in per_fold]).mean(0)
    assert torch.allclose(result.curves["val_loss"][0].double(), expected, rtol=1e-6)


def test_compiled_cv_agrees_with_eager(data):
    eager = regfn.sweep(MODEL, data, CONFIGS, cv=3, epochs=3, batch_size=20, compile=False, quiet=True)
    compiled = regfn.sweep(MODEL, data, CONFIGS, cv=3, epochs=3, batch_size=20, compile=True, quiet=True)
    assert compiled.settings["compile"]
    for a, b in zip(eager.rows, compiled.rows, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
        assert a["val_acc_folds"] == pytest.approx(b["val_acc_folds"], abs=1e-6)


def test_verify_reruns_a_cross_validated_sweep(data, tmp_path):
    folds = kfold(rr.key(9), data, 4)
    result = regfn.sweep(MODEL, data, CONFIGS, cv=folds, epochs=3, compile=False, quiet=True)
    path = tmp_path / "results.json"
    result.to_json(path)
    assert json.loads(path.read_text())["provenance"]["arguments"]["cv"]["k"] == 4
    report = regfn.verify(path, MODEL, data)
    assert report.identical, str(report)


def test_a_resume_with_other_folds_is_refused(data, tmp_path):
    regfn.sweep(MODEL, data, CONFIGS, cv=3, epochs=2, compile=False, quiet=True, checkpoint=tmp_path)
    again = regfn.sweep(MODEL, data, CONFIGS, cv=3, epochs=2, compile=False, quiet=True, checkpoint=tmp_path)
    assert again is not None
    assert again.settings["folds"] == 3
    with pytest.raises(ValueError, match="cross-validation folds differ"):
        regfn.sweep(
            MODEL, data, CONFIGS, cv=kfold(rr.key(1), data, 3), epochs=2, compile=False, quiet=True, checkpoint=tmp_path
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"cv": 1}, ValueError, r"cv must be an int in \[2, len\(data\)=97\]"),
        ({"cv": 98}, ValueError, r"cv must be an int in \[2, len\(data\)=97\]"),
        ({"cv": "5"}, TypeError, "cv must be None, an int"),
        ({"cv": 3, "val": "VAL"}, ValueError, "either val= or cv=, not both"),
        ({"cv": "OTHER"}, ValueError, "the folds index 50 rows, but the data has 97"),
        ({"cv": 3, "engine": "triton"}, ValueError, "cross-validation"),
        ({"cv": 3, "batch_size": 90}, ValueError, r"batch_size must be an int in \[1, 65\]"),
        ({"cv": 3, "hparams": {"fold": (0, 1)}}, ValueError, "'fold' is reserved"),
    ],
)
def test_bad_cv_input(data, kwargs, error, message):
    kwargs = dict(kwargs)
    if kwargs.get("val") == "VAL":
        kwargs["val"] = data
    if kwargs.get("cv") == "OTHER":
        kwargs["cv"] = kfold(rr.key(0), regfn.data.quadrants(rr.key(1), 50), 3)
    with pytest.raises(error, match=message):
        regfn.sweep(MODEL, data, CONFIGS, epochs=2, compile=False, quiet=True, **kwargs)


# ----------------------------------------------------------------- schedules over folds


GRID = regfn.grid(l2=[0.0, 1e-2, 1e-1], p=[0.0, 0.5], seed=[0, 1], lr=[0.3])


def test_halving_ranks_configurations_by_their_mean_over_folds(data):
    plain = regfn.sweep(MODEL, data, GRID, cv=3, epochs=9, log_every=1, compile=False, quiet=True)
    schedule = regfn.search.successive_halving("val_loss", min_epochs=1, eta=3)
    halved = regfn.sweep(MODEL, data, GRID, cv=3, epochs=9, log_every=1, compile=False, quiet=True, schedule=schedule)
    rungs = halved.schedule["brackets"][0]["rungs"]
    assert [r["epoch"] for r in rungs] == [1, 3]
    assert [len(r["kept"]) for r in rungs] == [4, 2]  # configurations, not rows: 12 -> 4 -> 2
    for rung in rungs:  # the ranked values are the plain sweep's fold means at the rung's epoch
        means = [float(plain.curves["val_loss"][c, rung["epoch"] - 1]) for c in rung["live"]]
        assert rung["values"] == pytest.approx(means, rel=1e-6)
        ranked = sorted(rung["live"], key=lambda c: (plain.curves["val_loss"][c, rung["epoch"] - 1].item(), c))
        assert rung["kept"] == sorted(ranked[: len(rung["kept"])])
    survivors = rungs[-1]["kept"]
    for i, row in enumerate(halved.rows):
        if i in survivors:  # a survivor's folds trained exactly as in the plain cross-validated sweep
            assert row["stopped_epoch"] == 9
            assert row["val_loss_folds"] == pytest.approx(plain.rows[i]["val_loss_folds"], rel=1e-6)
        else:
            assert row["stopped_epoch"] in (1, 3)
            at = row["stopped_epoch"] - 1
            assert row["val_loss"] == pytest.approx(float(plain.curves["val_loss"][i, at]), rel=1e-6)
    assert len(halved) == len(GRID)


def test_pbt_over_folds_copies_each_fold_from_the_same_fold(data):
    # no dropout, full batch, factor 1: a copied configuration then trains exactly as its source, fold by
    # fold, so its mean-over-folds curve follows the source's until the next exploit (a copy from another
    # fold would train on other rows and part ways at once)
    configs = regfn.grid(l2=[0.0, 1e-3, 1e-2, 3e-2], seed=[0, 1], lr=[0.3])
    schedule = regfn.search.pbt(interval=3, quantile=0.25, perturb=(1.0, 1.0), key=rr.key(5))
    run = {"cv": 3, "epochs": 9, "log_every": 1, "compile": False, "quiet": True}
    res = regfn.sweep(MODEL, data, configs, schedule=schedule, **run)
    copies = 0
    for epoch, srcs in zip((3, 6), res.schedule["sources"], strict=True):
        for dst, src in enumerate(srcs):
            if dst != src:
                copies += 1
                torch.testing.assert_close(
                    res.curves["val_loss"][dst, epoch : epoch + 3], res.curves["val_loss"][src, epoch : epoch + 3]
                )
    assert copies == 4  # 2 of 8 configurations (each 3 rows) at each exploit
    again = regfn.sweep(MODEL, data, configs, schedule=schedule, **run)
    assert again.rows == res.rows
    assert again.schedule == res.schedule


def test_a_loss_reads_its_row_fold_as_hp(data):
    base = regfn.losses.get_loss("bce_logits")

    def shifted(output, target, hp):  # a constant per fold: the gradient is unchanged, the objective moves
        return base.fn(output, target) + hp["fold"].to(output.dtype)

    loss = regfn.losses.Loss(shifted, base.threshold, task="binary")
    run = {"cv": 3, "epochs": 2, "compile": False, "quiet": True}
    plain = regfn.sweep(MODEL, data, CONFIGS, **run)
    moved = regfn.sweep(MODEL, data, CONFIGS, loss=loss, **run)
    # the training objective's curve is the mean over folds 0, 1, 2 of the shifted loss: one more
    torch.testing.assert_close(moved.curves["loss"], plain.curves["loss"] + 1, rtol=0, atol=1e-5)
