"""Cross-validation folds of different sizes (``Folds.from_splits``, a scikit-learn splitter) trained as one program.

A row of a fold of any size equals a sweep of that fold alone, bit for bit (its own mini-batch
order, masks and rows), whatever the engine, the chunks, a crash and resume; folds that cannot
share a program are refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import Crash, crash_after
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import regfn
import regfn.random as rr
from regfn._sweep import _cv
from regfn._sweep._fold_sizes import orders_by_size, size_groups
from regfn._sweep._program import order as program_order
from regfn.data import Folds

MODEL = regfn.mlp((2, 6, 1), output="logits")
CONFIGS = regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.4], seed=[0, 1], lr=[0.05])
KW = {"optimizer": "adam", "epochs": 4, "batch_size": 16, "compile": False, "quiet": True}


@pytest.fixture(scope="module")
def data():
    return regfn.data.quadrants(rr.key(3), 103)  # 4 contiguous folds: 26, 26, 26, 25 held out


def splits_of(n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's KFold(k) without shuffling: the first n % k folds hold one row more."""
    sizes = [n // k + (i < n % k) for i in range(k)]
    ends = np.cumsum(sizes)
    rows = np.arange(n)
    return [(np.setdiff1d(rows, rows[e - s : e]), rows[e - s : e]) for s, e in zip(sizes, ends, strict=True)]


def per_fold(data, splits, configs, **kw):
    """One sweep per fold, on that fold's rows alone (the reference)."""
    return [
        regfn.sweep(MODEL, data[torch.as_tensor(t)], configs, val=data[torch.as_tensor(v)], **kw) for t, v in splits
    ]


# ----------------------------------------------------------------- Folds.from_splits


def test_from_splits_records_sizes_and_reads_each_folds_own_rows():
    folds = Folds.from_splits([([3, 0, 1], [2]), ([2, 3], [0, 1])], 4)
    assert folds.ragged
    assert folds.sizes == ((3, 1), (2, 2))
    assert folds.train.tolist() == [[0, 1, 3], [2, 3, 2]]  # padded with the fold's own first row
    assert folds.train_of(1).tolist() == [2, 3]
    assert folds.val_of(0).tolist() == [2]
    assert [folds.train_size(i) for i in range(2)] == [3, 2]
    even = Folds.from_splits([(np.array([1, 2]), np.array([0])), (torch.tensor([0, 2]), [1])], 3)
    assert even.sizes is None
    assert not even.ragged
    assert even.train.tolist() == [[1, 2], [0, 2]]
    data = regfn.data.quadrants(rr.key(0), 4)
    train, val = folds.split(data, 1)
    assert torch.equal(train.x, data.x[2:])
    assert torch.equal(val.x, data.x[:2])
    assert folds.to("cpu").sizes == folds.sizes


@pytest.mark.parametrize(
    ("splits", "n", "error", "message"),
    [
        ([([0, 1], [2])], 3, ValueError, "at least 2 folds"),
        ([([0, 1], []), ([2], [0])], 3, ValueError, "fold 0's validation rows must hold at least one row"),
        ([([0, 3], [1]), ([1], [0])], 3, ValueError, r"fold 0's training rows must be in \[0, n=3\), got 0 .. 3"),
        ([([0, -1], [1]), ([1], [0])], 3, ValueError, r"must be in \[0, n=3\)"),
        ([([0, 0], [1]), ([1], [0])], 3, ValueError, "fold 0's training rows must not repeat a row"),
        ([([0.0, 1.0], [2]), ([1], [0])], 3, TypeError, "must be integer row indices"),
        ([([0], [1]), ([1], [0])], 0, ValueError, "n must be"),
        ([([0], [1]), ([1], [0])], "3", TypeError, "n must be"),
    ],
)
def test_from_splits_refuses_bad_splits(splits, n, error, message):
    with pytest.raises(error, match=message):
        Folds.from_splits(splits, n)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 9),
    batches=st.integers(1, 4),
    extra=st.lists(st.integers(0, 8), min_size=2, max_size=7),
    epoch=st.integers(0, 1000),
)
def test_each_rows_order_is_drawn_for_its_own_size(batch, batches, extra, epoch):
    """orders_by_size equals each row's order drawn alone, for its own number of rows, whatever the mix of sizes."""
    sizes = [batch * batches + e % batch for e in extra]  # any sizes with the same number of batches
    skeys = torch.stack([rr.split(rr.key(100 + r))[1] for r in range(len(sizes))])
    order = torch.func.vmap(program_order, in_dims=(0, None, None, None))
    epoch_t = torch.tensor(epoch)
    groups = size_groups(sizes, torch.device("cpu"))
    got = orders_by_size(order, {"skey": skeys}, epoch_t, max(sizes), batch, groups)
    assert got.shape == (len(sizes), batches, batch)
    for r, n in enumerate(sizes):
        assert torch.equal(got[r], program_order({"skey": skeys[r]}, epoch_t, n, batch))
        assert int(got[r].max()) < n


def test_kfold_every_row_folds_sweep_as_one_program(data):
    folds = regfn.data.kfold(rr.key(0), data, 4, every_row=True)  # 103 rows: 26, 26, 26, 25 held out
    assert [folds.val_size(f) for f in range(4)] == [26, 26, 26, 25]
    result = regfn.sweep(MODEL, data, CONFIGS[:2], cv=folds, **KW)
    train, val = folds.split(data, 3)
    alone = regfn.sweep(MODEL, train, CONFIGS[:2], val=val, **KW)
    assert [row["val_loss_folds"][3] for row in result.rows] == [row["val_loss"] for row in alone.rows]
    with pytest.raises(TypeError, match="every_row must be a bool"):
        regfn.data.kfold(rr.key(0), data, 4, every_row=1)


# ----------------------------------------------------------------- one program, rows equal per-fold sweeps


@pytest.mark.parametrize("engine", ["vmap", "sequential"])
def test_every_row_equals_its_fold_swept_alone(data, engine):
    splits = splits_of(len(data), 4)
    folds = Folds.from_splits(splits, len(data))
    assert folds.sizes == ((77, 26), (77, 26), (77, 26), (78, 25))
    result = regfn.sweep(MODEL, data, CONFIGS, cv=folds, engine=engine, **KW)
    alone = per_fold(data, splits, CONFIGS, engine=engine, **KW)
    for c, row in enumerate(result.rows):
        for f, ref in enumerate(alone):
            assert row["val_loss_folds"][f] == ref.rows[c]["val_loss"]  # bit for bit
            assert row["val_acc_folds"][f] == ref.rows[c]["val_acc"]
        assert row["loss"] == pytest.approx(np.mean([ref.rows[c]["loss"] for ref in alone]), rel=1e-12)
        assert row["acc"] == pytest.approx(np.mean([ref.rows[c]["acc"] for ref in alone]), rel=1e-12)
    curve = torch.stack([ref.curves["val_loss"].double() for ref in alone]).mean(0)
    assert torch.allclose(result.curves["val_loss"].double(), curve, rtol=1e-12)


def test_the_plain_loop_agrees_on_a_short_fold(data):
    """The fold of 78 training rows draws its own order: regfn.train on that fold alone gives the same numbers."""
    splits = splits_of(len(data), 4)
    result = regfn.sweep(MODEL, data, CONFIGS[:2], cv=Folds.from_splits(splits, len(data)), **KW)
    train, val = (data[torch.as_tensor(r)] for r in splits[3])
    for row, cfg in zip(result.rows, CONFIGS[:2], strict=True):
        alone = regfn.train(
            MODEL, train, optimizer=regfn.optim.adam(cfg["lr"]), penalties=[regfn.l2(cfg["l2"])] if cfg["l2"] else [],
            p=cfg["p"], key=rr.key(cfg["seed"]), val=val, epochs=4, batch_size=16,
        )  # fmt: skip
        assert row["val_loss_folds"][3] == pytest.approx(alone.val_metrics["loss"], rel=1e-5, abs=1e-6)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(1, 10), k=st.integers(2, 5))
@example(chunk=1, k=2)  # a chunk of one fold size: its orders once drew for the padded width, not the fold's size
def test_rows_do_not_depend_on_chunks(data, chunk, k):
    folds = Folds.from_splits(splits_of(len(data), k), len(data))
    whole = regfn.sweep(MODEL, data, CONFIGS, cv=folds, chunk_size=None, **{**KW, "epochs": 2})
    chunked = regfn.sweep(MODEL, data, CONFIGS, cv=folds, chunk_size=chunk, **{**KW, "epochs": 2})
    assert chunked.rows == whole.rows
    for name, curve in whole.curves.items():
        assert torch.equal(chunked.curves[name], curve)


def test_compiled_agrees_with_eager(data):
    folds = Folds.from_splits(splits_of(len(data), 4), len(data))
    eager = regfn.sweep(MODEL, data, CONFIGS[:2], cv=folds, **{**KW, "epochs": 2})
    compiled = regfn.sweep(MODEL, data, CONFIGS[:2], cv=folds, **{**KW, "epochs": 2, "compile": True})
    assert compiled.settings["compile"]
    for a, b in zip(eager.rows, compiled.rows, strict=True):
        assert a["val_loss_folds"] == pytest.approx(b["val_loss_folds"], rel=1e-5)


def test_a_crash_and_resume_is_bit_identical_and_other_folds_are_refused(data, tmp_path, monkeypatch):
    folds = Folds.from_splits(splits_of(len(data), 4), len(data))
    kw = {**KW, "epochs": 6, "chunk_size": 5, "log_every": 2}
    reference = regfn.sweep(MODEL, data, CONFIGS, cv=folds, **kw)
    with crash_after(monkeypatch, 4), pytest.raises(Crash):  # in the second chunk's second stretch
        regfn.sweep(MODEL, data, CONFIGS, cv=folds, checkpoint=tmp_path, checkpoint_every=2, **kw)
    resumed = regfn.sweep(MODEL, data, CONFIGS, cv=folds, checkpoint=tmp_path, checkpoint_every=2, **kw)
    assert resumed.rows == reference.rows
    for name, curve in reference.curves.items():
        assert torch.equal(resumed.curves[name], curve)
    other = Folds.from_splits(splits_of(len(data), 4)[::-1], len(data))
    with pytest.raises(ValueError, match="cross-validation folds differ"):
        regfn.sweep(MODEL, data, CONFIGS, cv=other, checkpoint=tmp_path, checkpoint_every=2, **kw)


def test_verify_reruns_uneven_folds_that_train_on_part_of_the_rest(data, tmp_path):
    """The folds of a scikit-learn search (each fold's rows its own block): provenance keeps the training rows."""
    splits = [(np.arange(0, 40), np.arange(40, 52)), (np.arange(52, 93), np.arange(93, 103))]
    folds = Folds.from_splits(splits, len(data))
    result = regfn.sweep(MODEL, data, CONFIGS[:2], cv=folds, **KW)
    record = result.provenance["arguments"]["cv"]
    assert record["train"][1] == list(range(52, 93))
    assert record["val"][0] == list(range(40, 52))
    assert _cv.folds_from_record(record).train_of(0).tolist() == list(range(40))
    path = tmp_path / "results.json"
    result.to_json(path)
    report = regfn.verify(path, MODEL, data)
    assert report.identical, str(report)
    with pytest.raises(ValueError, match="do not match their recorded sha256"):
        _cv.folds_from_record({**record, "train": [list(range(41)), record["train"][1]]})


def test_folds_that_cover_the_rest_record_only_the_held_out_rows(data):
    folds = Folds.from_splits(splits_of(len(data), 4), len(data))
    record = _cv.record(folds)
    assert "train" not in record
    assert [len(v) for v in record["val"]] == [26, 26, 26, 25]
    back = _cv.folds_from_record(record)
    assert back.sizes == folds.sizes
    assert torch.equal(back.train, folds.train)
    even = regfn.data.kfold(rr.key(0), data, 4)
    assert _cv.fingerprint(_cv.folds_from_record(_cv.record(even))) == _cv.fingerprint(even)


@pytest.mark.parametrize(
    ("batch_size", "message"),
    [
        (None, r"cv folds of different training sizes \(77, 78 rows\) need mini-batches"),
        (26, "cv folds of 77, 78 training rows make 2, 3 mini-batches of batch_size=26 an epoch"),
    ],
)
def test_folds_that_cannot_share_a_program_are_refused(data, batch_size, message):
    folds = Folds.from_splits(splits_of(len(data), 4), len(data))
    with pytest.raises(ValueError, match=message):
        regfn.sweep(MODEL, data, CONFIGS, cv=folds, **{**KW, "batch_size": batch_size})


# ----------------------------------------------------------------- a scikit-learn splitter as cv


def test_a_scikit_learn_splitter_is_its_folds(data, tmp_path):
    model_selection = pytest.importorskip("sklearn.model_selection")
    splitter = model_selection.StratifiedKFold(4, shuffle=True, random_state=0)
    result = regfn.sweep(MODEL, data, CONFIGS[:3], cv=splitter, **KW)
    splits = splitter.split(data.x.numpy(), data.y.reshape(-1).numpy())
    folds = Folds.from_splits(splits, len(data), stratified=True)
    same = regfn.sweep(MODEL, data, CONFIGS[:3], cv=folds, **KW)
    assert result.rows == same.rows
    record = result.provenance["arguments"]["cv"]
    assert record["stratified"]
    assert record["sha256"] == _cv.fingerprint(folds)
    path = tmp_path / "results.json"
    result.to_json(path)
    assert regfn.verify(path, MODEL, data).identical


@pytest.mark.parametrize(
    ("splitter", "message"),
    [
        ("GroupKFold", r"GroupKFold.split\(X, y\) failed \(.*groups.*\); for a splitter that needs more"),
        ("StratifiedKFold", r"StratifiedKFold.split\(X, y\) failed \(.*continuous"),
    ],
)
def test_a_splitter_that_cannot_split_the_data_is_named(splitter, message):
    model_selection = pytest.importorskip("sklearn.model_selection")
    data = regfn.data.Dataset(torch.randn(30, 2), torch.randn(30))
    with pytest.raises(ValueError, match=message):
        regfn.sweep(MODEL, data, CONFIGS[:2], cv=getattr(model_selection, splitter)(3), loss="mse", **KW)


# ----------------------------------------------------------------- CUDA (run on the lent GPU machine)

from conftest import CUDA  # noqa: E402


@CUDA
@pytest.mark.cuda
def test_cuda_graphs_train_uneven_folds_as_the_cpu_does(data):
    """Each row's order drawn per size inside the captured CUDA graph; the same rows as eager CPU (masks are)."""
    folds = Folds.from_splits(splits_of(len(data), 4), len(data))
    kw = {**KW, "epochs": 6, "log_every": 3}
    gpu = regfn.sweep(MODEL, data, CONFIGS, cv=folds, device="cuda", **{**kw, "compile": True})
    again = regfn.sweep(MODEL, data, CONFIGS, cv=folds, device="cuda", **{**kw, "compile": True})
    cpu = regfn.sweep(MODEL, data, CONFIGS, cv=folds, **kw)
    assert gpu.rows == again.rows
    for g, c in zip(gpu.rows, cpu.rows, strict=True):
        assert g["val_loss_folds"] == pytest.approx(c["val_loss_folds"], rel=1e-4)
