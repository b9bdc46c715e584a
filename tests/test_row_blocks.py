"""Evaluations in blocks of rows on a CPU: the same metrics, chunks and single runs still equal, batch statistics kept whole."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import regfn
import regfn.random as rr
from regfn._row_blocks import MIN_BLOCK_ROWS, block_rows, outputs, rows_independent, saved_bytes_per_row
from regfn._train import evaluate
from regfn._trained import TrainedModel

blocks_module = importlib.import_module("regfn._row_blocks")


class SmallCNN(nn.Module):
    """Conv-ReLU-Dropout-MaxPool-Linear on 1 x 8 x 8 images, 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.drop, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Dropout(0.3), nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.max_pool2d(self.drop(torch.relu(self.conv(x))), 2).flatten(1))


class BatchStatsCNN(SmallCNN):
    """The same with batch normalisation from batch statistics: a row's output depends on the other rows."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(4, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.max_pool2d(self.drop(torch.relu(self.norm(self.conv(x)))), 2).flatten(1))


def images(n: int, seed: int = 0) -> regfn.data.Dataset:
    g = torch.Generator().manual_seed(seed)
    return regfn.data.Dataset(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few rows: a byte budget of 4 rows of SmallCNN's footprint, and no floor."""
    model = regfn.from_module(SmallCNN())
    per_row = saved_bytes_per_row(model, model.init(rr.key(0)), torch.zeros(2, 1, 8, 8))
    monkeypatch.setattr(blocks_module, "EVAL_BYTES", 4 * per_row)
    monkeypatch.setattr(blocks_module, "MIN_BLOCK_ROWS", 1)
    return 4


def test_a_cnn_on_many_rows_is_evaluated_in_blocks_a_small_mlp_whole():
    cnn = regfn.from_module(SmallCNN())
    rows = block_rows(cnn, cnn.init(rr.key(0)), torch.zeros(20_000, 1, 8, 8))
    assert rows is not None
    assert MIN_BLOCK_ROWS <= rows < 20_000
    mlp = regfn.mlp((8, 6, 1), output="logits")
    assert block_rows(mlp, mlp.init(rr.key(0)), torch.zeros(614, 8)) > 614  # the tutorial's: one block
    assert block_rows(cnn, cnn.init(rr.key(0)), torch.zeros(8, 1, 8, 8)) == rows  # not a function of the length


def test_a_model_with_batch_statistics_is_never_cut(small_blocks):
    model = regfn.from_module(BatchStatsCNN())
    params, x = model.init(rr.key(0)), images(40).x
    assert not rows_independent(model, params, x)
    assert block_rows(model, params, x) is None
    plain = regfn.from_module(SmallCNN())
    assert rows_independent(plain, plain.init(rr.key(0)), x)
    assert block_rows(plain, plain.init(rr.key(0)), x) == small_blocks


def test_rows_independent_refuses_what_it_cannot_check():
    mlp = regfn.mlp((3, 4, 1))
    params = mlp.init(rr.key(0))
    assert not rows_independent(mlp, params, torch.randn(3, 3))  # fewer than four rows
    assert not rows_independent(mlp, params, torch.randn(8, 5))  # the model fails on them
    total = regfn.nn.Model(init=mlp.init, apply=lambda p, x, **kw: mlp.apply(p, x, **kw).sum())  # one number
    assert not rows_independent(total, params, torch.randn(8, 3))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), rows=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_outputs_in_blocks_are_the_whole_outputs(n, rows, seed):
    model = regfn.from_module(SmallCNN())
    params, x = model.init(rr.key(seed)), images(n, seed).x
    whole = model.apply(params, x)
    blocked = outputs(model, params, x, None, rows)
    assert blocked.shape == whole.shape
    torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-6)


def test_evaluate_in_blocks_gives_the_whole_evaluation():
    model = regfn.from_module(SmallCNN())
    params, data = model.init(rr.key(1)), images(50)
    loss = regfn.losses.get_loss("cross_entropy")
    whole = evaluate(model, loss, [], params, data.x, data.y)
    blocked = evaluate(model, loss, [], params, data.x, data.y, rows_per_block=7)
    assert whole.keys() == blocked.keys()
    for name, value in whole.items():
        torch.testing.assert_close(blocked[name], value, rtol=1e-6, atol=1e-7)


CONFIGS = regfn.grid(lr=[1e-2], l2=[0.0, 1e-3], p=[0.0, 0.4], seed=[0])
RUN = {"loss": "cross_entropy", "optimizer": "adam", "epochs": 2, "batch_size": 16, "compile": False, "quiet": True}


def test_a_sweep_in_blocks_gives_the_whole_sweeps_rows_chunked_or_not(small_blocks, monkeypatch):
    model, train, val = regfn.from_module(SmallCNN()), images(48, 1), images(20, 2)
    blocked = regfn.sweep(model, train, CONFIGS, val=val, **RUN)
    chunked = regfn.sweep(model, train, CONFIGS, val=val, chunk_size=1, **RUN)
    sequential = regfn.sweep(model, train, CONFIGS, val=val, engine="sequential", **RUN)
    monkeypatch.setattr(blocks_module, "EVAL_BYTES", 2**40)  # every row in one block again
    whole = regfn.sweep(model, train, CONFIGS, val=val, **RUN)
    for b, c, w in zip(blocked.rows, chunked.rows, whole.rows, strict=True):
        assert b == c  # chunks change no result, in blocks too
        for name in ("loss", "acc", "val_loss", "val_acc"):
            assert b[name] == pytest.approx(w[name], rel=1e-5, abs=1e-6)
    for b, s in zip(blocked.rows, sequential.rows, strict=True):
        assert b["val_loss"] == pytest.approx(s["val_loss"], rel=1e-5, abs=1e-6)


def test_a_sweep_in_blocks_equals_single_runs(small_blocks):
    model, train, val = regfn.from_module(SmallCNN()), images(48, 1), images(20, 2)
    result = regfn.sweep(model, train, CONFIGS, val=val, **RUN)
    for row, cfg in zip(result.rows, CONFIGS, strict=True):
        single = regfn.train(
            model, train, optimizer=regfn.optim.adam(cfg["lr"]), loss="cross_entropy", p=cfg["p"],
            penalties=[regfn.l2(cfg["l2"])] if cfg["l2"] else [], key=rr.key(cfg["seed"]), val=val, epochs=2,
            batch_size=16,
        )  # fmt: skip
        assert row["loss"] == pytest.approx(single.metrics["loss"], rel=1e-5, abs=1e-6)
        assert row["val_loss"] == pytest.approx(single.val_metrics["loss"], rel=1e-5, abs=1e-6)


def test_a_batch_statistics_sweep_is_evaluated_whole(small_blocks, monkeypatch):
    model, train, val = regfn.from_module(BatchStatsCNN()), images(48, 1), images(20, 2)
    cut = regfn.sweep(model, train, CONFIGS, val=val, **RUN)
    monkeypatch.setattr(blocks_module, "EVAL_BYTES", 2**40)
    whole = regfn.sweep(model, train, CONFIGS, val=val, **RUN)
    assert cut.rows == whole.rows  # the same program: no blocks for it either way


@pytest.mark.parametrize("net", [SmallCNN, BatchStatsCNN])
def test_a_trained_model_predicts_in_blocks_what_it_predicts_whole(small_blocks, net):
    model = regfn.from_module(net())
    params, x = model.init(rr.key(3)), images(30).x
    got = TrainedModel(model, params, {})(x)
    torch.testing.assert_close(got, model.apply(params, x), rtol=1e-5, atol=1e-6)


@settings(max_examples=6, deadline=None)
@given(chunk=st.integers(1, 4), block=st.integers(1, 30))
def test_rows_in_blocks_do_not_depend_on_the_chunk_size(chunk, block):
    """Any chunk size with any evaluation block (the blocks are the same for every chunk): the same bits."""
    model, train, val = regfn.from_module(SmallCNN()), images(48, 1), images(20, 2)
    per_row = saved_bytes_per_row(model, model.init(rr.key(0)), train.x)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blocks_module, "EVAL_BYTES", block * per_row)
        patch.setattr(blocks_module, "MIN_BLOCK_ROWS", 1)
        assert block_rows(model, model.init(rr.key(0)), train.x) == block
        whole = regfn.sweep(model, train, CONFIGS, val=val, chunk_size=None, log_every=1, **RUN)
        chunked = regfn.sweep(model, train, CONFIGS, val=val, chunk_size=chunk, log_every=1, **RUN)
    assert chunked.rows == whole.rows
    assert all(torch.equal(chunked.curves[name], whole.curves[name]) for name in whole.curves)


def test_equal_first_rows_do_not_hide_batch_statistics():
    """A batch-statistics model on data whose first rows are equal: the probe's rows are spread over the data."""
    model = regfn.from_module(BatchStatsCNN())
    x = images(40).x
    x[:10] = x[0]  # ten equal rows first: normalised over any of them alone, they agree
    assert not rows_independent(model, model.init(rr.key(0)), x)
