"""The sequential engine: one configuration after another, the vmap engine's rows to float tolerance.

Its rows do not depend on the chunk they train in (bit for bit), its masks
are the single runs' masks, and everything the loop offers (folds,
schedules, checkpoints) runs with it.
"""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch
from conftest import Crash, crash_after
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checkpoint import CONFIGS as MLP_CONFIGS  # the MLP sweep of the checkpoint tests: 12 configurations
from test_checkpoint import MODEL as MLP
from test_sweep_general import CONFIGS, MODEL, RUN, digits  # noqa: F401 (a fixture)

import regfn
import regfn.random as rr
from regfn.optim import adam

sequential_module = importlib.import_module("regfn._sweep._sequential")


def mlp_run(val, **kw):
    base = {"val": val, "epochs": 7, "log_every": 2, "compile": False, "threads": 1, "quiet": True}
    return {**base, **kw}


def assert_close(a: regfn.SweepResult, b: regfn.SweepResult, tol: float = 2e-5) -> None:
    """Rows and curves equal to float tolerance (a vmapped matmul sums in another order)."""
    assert len(a.rows) == len(b.rows)
    for x, y in zip(a.rows, b.rows, strict=True):
        assert set(x) == set(y)
        for name, value in x.items():
            if isinstance(value, float) or (isinstance(value, list) and value and isinstance(value[0], float)):
                assert value == pytest.approx(y[name], rel=tol, abs=tol), name
            else:
                assert value == y[name], name
    for name in a.curves:
        torch.testing.assert_close(a.curves[name], b.curves[name], rtol=tol, atol=tol, equal_nan=True)


def assert_same(a: regfn.SweepResult, b: regfn.SweepResult) -> None:
    assert json.dumps(a.rows) == json.dumps(b.rows)
    for name in a.curves:
        assert torch.equal(a.curves[name], b.curves[name]), name


@pytest.mark.parametrize("batch_size", [None, 32])
def test_cnn_rows_equal_the_vmap_engine(digits, batch_size):  # noqa: F811
    train, val = digits
    vmapped = regfn.sweep(MODEL, train, CONFIGS, val=val, batch_size=batch_size, log_every=1, **RUN)
    sequential = regfn.sweep(
        MODEL, train, CONFIGS, val=val, batch_size=batch_size, log_every=1, engine="sequential", **RUN
    )
    assert sequential.engine == "sequential"
    assert sequential.settings["engine"] == "sequential"
    assert_close(sequential, vmapped)


@pytest.mark.parametrize(
    ("optimizer", "batch_size", "key_impl"),
    [("sgd", None, "threefry2x32"), ("adam", 16, "threefry2x32"), ("rmsprop", 16, "philox4x32")],
)
def test_mlp_rows_equal_the_vmap_engine(split, optimizer, batch_size, key_impl):
    train, val = split
    kw = mlp_run(val, optimizer=optimizer, batch_size=batch_size, key_impl=key_impl)
    assert_close(
        regfn.sweep(MLP, train, MLP_CONFIGS, engine="sequential", **kw), regfn.sweep(MLP, train, MLP_CONFIGS, **kw)
    )


def test_masks_are_the_single_runs_bit_for_bit(digits):  # noqa: F811
    """With a zero learning rate the objective is the masked forward pass alone: equal bit for bit."""
    train, _ = digits
    cfgs = [{"lr": 0.0, "p": p, "seed": s} for p, s in ((0.5, 0), (0.3, 1))]
    result = regfn.sweep(MODEL, train, cfgs, log_every=1, engine="sequential", **RUN)
    for i, cfg in enumerate(cfgs):
        single = regfn.train(MODEL, train, optimizer=adam(0.0), loss="cross_entropy", p=cfg["p"],
                             key=rr.key(cfg["seed"]), epochs=3, log_every=1)  # fmt: skip
        assert [h["loss"] for h in single.history] == result.curves["loss"][i].tolist()


def test_eager_rows_are_regfn_train_bit_for_bit(split, monkeypatch):
    """Eager, a row's steps are an eager regfn.train's: gradients by plain autograd (bce_logits included), the same
    keys, orders and evaluation, so the same numbers bit for bit; torch.func is never called."""
    from regfn._hparams import optimizer_defaults

    train, val = split
    cfgs = MLP_CONFIGS[:4]
    monkeypatch.setattr("regfn._train.grad_and_value", None)  # an eager one-configuration step must not need it
    result = regfn.sweep(MLP, train, cfgs, engine="sequential", batch_size=16, optimizer="adam", **mlp_run(val))
    for row, cfg in zip(result.rows, cfgs, strict=True):
        hp = {**optimizer_defaults("adam"), **cfg}
        single = regfn.train(
            MLP, train, optimizer=adam(hp["lr"]), penalties=[regfn.l2(hp["l2"])] if hp["l2"] else [], p=hp["p"],
            key=rr.key(hp["seed"]), val=val, epochs=7, batch_size=16,
        )  # fmt: skip
        assert row["loss"] == single.metrics["loss"]
        assert row["val_loss"] == single.val_metrics["loss"]
        assert row["val_acc"] == single.val_metrics["acc"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunk=st.integers(1, 12),
    subset=st.lists(st.integers(0, 11), min_size=1, max_size=5, unique=True),
    batch_size=st.sampled_from([None, 16]),
)
def test_a_row_is_the_same_in_any_chunk_and_alone(split, chunk, subset, batch_size):
    """Chunking, repeats and the other configurations never change a row's bits."""
    train, val = split
    kw = mlp_run(val, batch_size=batch_size, engine="sequential", optimizer="adam")
    whole = regfn.sweep(MLP, train, MLP_CONFIGS, chunk_size=None, **kw)
    chunked = regfn.sweep(MLP, train, MLP_CONFIGS, chunk_size=chunk, **kw)
    assert_same(chunked, whole)
    alone = regfn.sweep(MLP, train, [MLP_CONFIGS[i] for i in subset], chunk_size=chunk, **kw)
    for j, i in enumerate(subset):
        assert json.dumps(alone.rows[j]) == json.dumps(whole.rows[i])
        assert torch.equal(alone.curves["loss"][j], whole.curves["loss"][i])


def test_cross_validation_equals_the_vmap_engine(split):
    train, _ = split
    kw = mlp_run(None, cv=3, batch_size=8, optimizer="adam")
    assert_close(
        regfn.sweep(MLP, train, MLP_CONFIGS[:5], engine="sequential", **kw),
        regfn.sweep(MLP, train, MLP_CONFIGS[:5], **kw),
    )


@pytest.mark.parametrize("kind", ["halving", "pbt"])
def test_schedules_run_and_match_the_vmap_engine(split, kind):
    train, val = split
    configs = regfn.grid(lr=[0.01, 0.1, 0.3], p=[0.0, 0.5], seed=[0, 1, 2])
    if kind == "halving":
        schedule = regfn.search.successive_halving(min_epochs=2, eta=3, metric="val_loss")
    else:
        schedule = regfn.search.pbt(3, key=rr.key(5), names=["lr"])
    kw = mlp_run(val, epochs=9, log_every=1, schedule=schedule)
    vmapped = regfn.sweep(MLP, train, configs, **kw)
    sequential = regfn.sweep(MLP, train, configs, engine="sequential", **kw)
    for part in ("brackets",) if kind == "halving" else ("sources", "hp"):
        assert sequential.schedule[part] == vmapped.schedule[part], part
    assert_close(sequential, vmapped, tol=1e-4)


def test_a_resumed_sweep_is_bit_identical(split, tmp_path, monkeypatch):
    train, val = split
    kw = mlp_run(val, epochs=11, batch_size=16, chunk_size=5, engine="sequential")
    reference = regfn.sweep(MLP, train, MLP_CONFIGS, **kw)
    with crash_after(monkeypatch, 4, sequential_module.SequentialEngine), pytest.raises(Crash):
        regfn.sweep(MLP, train, MLP_CONFIGS, checkpoint=tmp_path, checkpoint_every=3, **kw)
    resumed = regfn.sweep(MLP, train, MLP_CONFIGS, checkpoint=tmp_path, checkpoint_every=3, **kw)
    assert_same(resumed, reference)
    for row, params in reference.trained.params.items():
        assert all(torch.equal(p, resumed.trained.params[row][n]) for n, p in params.items())


def test_the_kept_parameters_are_the_rows(split):
    """result.params(i) is what the row was evaluated with: its predictions give its accuracy."""
    train, val = split
    result = regfn.sweep(MLP, train, MLP_CONFIGS[:4], engine="sequential", **mlp_run(val, batch_size=16))
    for i, row in enumerate(result.rows):
        predicted = (result.predict(val.x, i) > 0).to(val.y.dtype)
        assert float((predicted == val.y).float().mean()) == pytest.approx(row["val_acc"], abs=1e-6)


def test_a_diverged_row_leaves_its_neighbours_alone(split):
    train, val = split
    good = [{"lr": 0.05, "seed": 0}, {"lr": 0.05, "seed": 1}]
    kw = mlp_run(val, engine="sequential")
    with pytest.warns(UserWarning, match="1 of 3 configurations diverged"):
        mixed = regfn.sweep(
            MLP, train, [good[0], {"lr": 1.0, "l2": 1e20, "seed": 2}, good[1]], **{**kw, "quiet": False}
        )
    tame = regfn.sweep(MLP, train, [good[0], {"lr": 0.01, "seed": 2}, good[1]], **kw)
    assert mixed.diverged == [1]
    assert json.dumps(mixed.rows[0]) == json.dumps(tame.rows[0])
    assert json.dumps(mixed.rows[2]) == json.dumps(tame.rows[2])


@pytest.mark.slow
def test_compiled_equals_eager_to_float_tolerance(split):
    train, val = split
    kw = mlp_run(val, batch_size=16, engine="sequential", optimizer="adam")
    eager = regfn.sweep(MLP, train, MLP_CONFIGS[:3], **kw)
    compiled = regfn.sweep(MLP, train, MLP_CONFIGS[:3], **{**kw, "compile": True})
    assert compiled.settings["compile"] is True
    assert_close(compiled, eager, tol=1e-4)


def test_the_command_runs_the_sequential_engine(capsys, tmp_path):
    from regfn.cli import main

    argv = ["sweep", "--n", "64", "--epochs", "3", "--seeds", "2", "--p", "0,0.5", "--no-plots", "--out"]
    assert main([*argv, str(tmp_path / "seq"), "--engine", "sequential"]) == 0
    assert "ran: sequential engine" in capsys.readouterr().out
    assert main([*argv, str(tmp_path / "vmap"), "--engine", "vmap"]) == 0
    assert "ran: vmap engine" in capsys.readouterr().out
    seq = json.loads((tmp_path / "seq" / "results.json").read_text())
    vmapped = json.loads((tmp_path / "vmap" / "results.json").read_text())
    assert seq["settings"]["engine"] == "sequential"
    for a, b in zip(seq["rows"], vmapped["rows"], strict=True):
        assert a["val_acc"] == pytest.approx(b["val_acc"], abs=1e-6)


class Gated(torch.nn.Module):
    """A model with data-dependent Python control flow: vmap cannot batch it, the sequential engine runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(2, 8)
        self.out = torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.hidden(x))
        if h.mean().item() > 10.0:  # a Python branch on a value
            h = h / 10.0
        return self.out(h).squeeze(-1)


def test_a_model_vmap_cannot_batch_runs_sequentially(split):
    train, val = split
    model = regfn.from_module(Gated())
    configs = regfn.grid(l2=[0.0, 1e-2], seed=[0, 1])
    kw = mlp_run(val, epochs=3, loss="bce_logits")
    with pytest.raises(RuntimeError, match=r"item|vmap|data-dependent"):
        regfn.sweep(model, train, configs, **kw)
    result = regfn.sweep(model, train, configs, engine="sequential", **kw)
    assert len(result.rows) == 4
    assert all(math.isfinite(row["val_loss"]) for row in result.rows)
    alone = regfn.sweep(model, train, configs[2:3], engine="sequential", **kw)
    assert json.dumps(alone.rows[0]) == json.dumps(result.rows[2])
