"""The trained models a sweep keeps: params(i) is regfn.train's, kept as keep= says, applied, saved and loaded.

The reference is :func:`regfn.train` on one configuration, built from the
public optimizer and penalty constructors. A vmapped row and a lone run
compute the same step, but a batched matmul sums in another order than a
plain one (the kernel blocks by the batched width), so they agree to float
tolerance; bit for bit, a row equals the same configuration swept alone (a
row does not depend on what shares its chunk), before and after chunking,
checkpoints, schedules and cross-validation.
"""

from __future__ import annotations

import importlib
import json

import pytest
import torch
import torch.nn as tnn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import regfn
import regfn.random as rr
from regfn.cli import main

vmap_module = importlib.import_module("regfn._sweep._vmap")
outputs_module = importlib.import_module("regfn._sweep._outputs")
plan_module = importlib.import_module("regfn._sweep._plan")

MODEL = regfn.mlp((2, 8, 4, 1), output="logits")
GRID = regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.5], seed=[0, 1, 2])  # 12 configurations


@pytest.fixture(scope="module")
def split():
    data = regfn.data.quadrants(rr.key(0), 96)
    return regfn.data.train_val_split(rr.key(1), data, 0.25)


def alone(config, data, optimizer="sgd", model=MODEL, **kw):
    """regfn.train on one configuration (the sweep's defaults: SGD's momentum 0.9, Adam's betas)."""
    penalties = [f(config[n]) for n, f in (("l1", regfn.l1), ("l2", regfn.l2)) if config.get(n)]
    if optimizer == "sgd":
        opt = regfn.optim.sgd(config.get("lr", 0.1), momentum=config.get("momentum", 0.9))
    else:
        opt = regfn.optim.adam(config["lr"])
    key = rr.key(config.get("seed", 0))
    return regfn.train(model, data, optimizer=opt, penalties=penalties, p=config.get("p", 0.0), key=key, **kw)


def assert_equal(a, b):
    assert list(a) == list(b)
    for name in a:
        assert a[name].device.type == "cpu"
        assert not a[name].requires_grad
        assert torch.equal(a[name], b[name]), name


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    assert list(a) == list(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol)


CONFIG = st.fixed_dictionaries(
    {
        "lr": st.sampled_from([0.01, 0.05, 0.1]),
        "l1": st.sampled_from([0.0, 1e-3]),
        "l2": st.sampled_from([0.0, 1e-2, 0.1]),
        "p": st.sampled_from([0.0, 0.25, 0.5]),
        "seed": st.integers(0, 2**16),
    }
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    configs=st.lists(CONFIG, min_size=1, max_size=4),
    optimizer=st.sampled_from(["sgd", "adam"]),
    batch_size=st.sampled_from([None, 16]),
    chunk_size=st.sampled_from([None, 1, 3]),
)
def test_params_equal_train_for_random_configurations(split, configs, optimizer, batch_size, chunk_size):
    train, val = split
    kw = {"epochs": 4, "batch_size": batch_size, "compile": False, "quiet": True}
    result = regfn.sweep(MODEL, train, configs, val=val, optimizer=optimizer, chunk_size=chunk_size, **kw)
    assert result.settings["keep"] == "all"
    for i, config in enumerate(configs):
        run = alone(config, train, optimizer, epochs=4, batch_size=batch_size)
        assert_close(result.params(i), run.params)
        # Bit for bit: the configuration swept alone (chunk, padding and neighbours change nothing).
        lone = regfn.sweep(MODEL, train, [config], val=val, optimizer=optimizer, **kw)
        assert_equal(result.params(i), lone.params(0))


def test_params_are_the_model_structure_on_the_cpu_and_copies(split):
    train, _ = split
    result = regfn.sweep(MODEL, train, GRID[:3], epochs=2, compile=False, quiet=True)
    params = result.params(1)
    assert {n: tuple(p.shape) for n, p in params.items()} == {
        n: tuple(p.shape) for n, p in MODEL.init(rr.key(0)).items()
    }
    params["fc1.weight"].zero_()  # a copy: the result keeps its own
    assert not torch.equal(result.params(1)["fc1.weight"], params["fc1.weight"])


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(configs=st.lists(CONFIG, min_size=3, max_size=3))
def test_compiled_params_equal_train_to_float_tolerance(split, configs):
    train, val = split
    configs = [{**c, "l1": 1e-3, "l2": 1e-2, "p": max(c["p"], 0.25)} for c in configs]  # one program for all
    compiled = regfn.sweep(MODEL, train, configs, val=val, epochs=4, compile=True, quiet=True)
    assert compiled.settings["compile"] is True
    for i, config in enumerate(configs):
        assert_close(compiled.params(i), alone(config, train, epochs=4).params, rtol=1e-4, atol=1e-5)


def test_keep_best_n_keeps_the_best_rows_and_says_how_to_keep_all(split, monkeypatch):
    train, val = split
    kw = {"val": val, "epochs": 4, "compile": False, "quiet": True, "chunk_size": 1}
    everything = regfn.sweep(MODEL, train, GRID, **kw)
    held = []
    finish = outputs_module.Results.finish

    def counting(self, *args, **kwargs):
        held.append(len(self.params))
        return finish(self, *args, **kwargs)

    monkeypatch.setattr(outputs_module.Results, "finish", counting)
    monkeypatch.setattr(plan_module, "PRUNE_BYTES", 1)  # prune however small the parameters held
    best = regfn.sweep(MODEL, train, GRID, keep=2, **kw)
    assert len(held) == len(GRID)
    assert max(held) <= 2 * 2
    ranked = [row["config"] for row in everything.best(2)]
    assert best.settings["keep"] == 2
    assert best.trained.configs() == sorted(ranked)
    for c in ranked:
        assert_equal(best.params(c), everything.params(c))
    assert_equal(best.best_params(), everything.params(ranked[0]))
    other = next(c for c in range(len(GRID)) if c not in ranked)
    with pytest.raises(ValueError, match=rf"configuration {other}'s parameters were not kept: keep=2 .*keep='all'"):
        best.params(other)
    one = regfn.sweep(MODEL, train, GRID, keep="best", **kw)
    assert one.trained.configs() == [ranked[0]]
    assert one.settings["keep"] == 1


@pytest.mark.parametrize("keep", [0, -1, "some", 2.5, True, None])
def test_a_bad_keep_is_refused_before_training(split, monkeypatch, keep):
    train, _ = split
    monkeypatch.setattr(vmap_module.VmapEngine, "advance", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=r"keep must be 'auto', 'all', 'best' or an int >= 1, got"):
        regfn.sweep(MODEL, train, GRID, epochs=2, keep=keep)


def test_keep_auto_keeps_all_that_fit_and_else_the_best(split, monkeypatch):
    train, val = split
    kw = {"val": val, "epochs": 3, "compile": False, "quiet": True}
    assert regfn.sweep(MODEL, train, GRID, **kw).settings["keep"] == "all"
    per_row = sum(p.numel() * p.element_size() for p in MODEL.init(rr.key(0)).values())
    monkeypatch.setattr(plan_module, "KEEP_BYTES", 5 * per_row)  # room for 5 rows of 12
    tight = regfn.sweep(MODEL, train, GRID, **kw)
    assert tight.settings["keep"] == 5
    assert tight.trained.configs() == sorted(row["config"] for row in tight.best(5))


def test_padding_rows_are_never_kept(split):
    train, _ = split
    result = regfn.sweep(MODEL, train, GRID[:7], epochs=2, compile=False, quiet=True, chunk_size=3)
    assert result.settings["padded"] == 9
    assert sorted(result.trained.params) == list(range(7))


def test_clear_errors(split, tmp_path):
    train, _ = split
    result = regfn.sweep(MODEL, train, GRID[:3], epochs=2, compile=False, quiet=True)
    for bad in (3, -1, 1.0, "0"):
        with pytest.raises(ValueError, match=r"i must be a configuration index in \[0, 2\]"):
            result.params(bad)
    with pytest.raises(ValueError, match="fold applies to a cross-validated sweep"):
        result.params(0, fold=0)
    result.to_json(tmp_path / "results.json")
    with pytest.raises(ValueError, match=r"holds no parameters .*SweepResult.load_params"):
        regfn.SweepResult.from_json(tmp_path / "results.json").params(0)


def test_schedules_keep_a_stopped_row_where_it_stopped(split):
    train, val = split
    kw = {"val": val, "compile": False, "quiet": True, "batch_size": 24, "chunk_size": 5}
    schedule = regfn.search.successive_halving("val_loss", min_epochs=2, eta=3)
    result = regfn.sweep(MODEL, train, GRID, epochs=18, schedule=schedule, **kw)
    stopped = {row["stopped_epoch"] for row in result.rows}
    assert len(stopped) > 1
    for i in (0, *result.survivors()):  # a stopped row (config 0 stops at the first rung here) and the survivors
        epochs = result.rows[i]["stopped_epoch"]
        assert_equal(result.params(i), regfn.sweep(MODEL, train, [GRID[i]], epochs=epochs, **kw).params(0))
    assert result.rows[0]["stopped_epoch"] < 18
    assert_close(result.params(0), alone(GRID[0], train, epochs=result.rows[0]["stopped_epoch"], batch_size=24).params)
    best = regfn.sweep(MODEL, train, GRID, epochs=18, schedule=schedule, keep=1, **kw)
    assert best.trained.configs() == [result.best(1)[0]["config"]]  # survivors first, as best() ranks
    assert result.best(1)[0]["config"] in result.survivors()
    assert_equal(best.best_params(), result.best_params())


def test_cross_validation_keeps_every_fold(split):
    data = regfn.data.quadrants(rr.key(0), 96)
    folds = regfn.data.kfold(rr.key(0), data, 3)
    kw = {"epochs": 3, "compile": False, "quiet": True}
    result = regfn.sweep(MODEL, data, GRID[:4], cv=folds, chunk_size=5, **kw)
    with pytest.raises(ValueError, match=r"fold must be in \[0, 2\]: this sweep was cross-validated"):
        result.params(1)
    for f in range(3):
        fold_train, _ = folds.split(data, f)
        lone = regfn.sweep(MODEL, fold_train, [GRID[1]], **kw)
        assert_equal(result.params(1, fold=f), lone.params(0))
        assert_close(result.params(1, fold=f), alone(GRID[1], fold_train, epochs=3).params)
    best = regfn.sweep(MODEL, data, GRID[:4], cv=folds, keep=1, chunk_size=2, **kw)
    (c,) = best.trained.configs()
    assert c == result.best(1)[0]["config"]
    assert sorted(best.trained.params) == [3 * c, 3 * c + 1, 3 * c + 2]
    assert_equal(best.best_params(fold=2), result.params(c, fold=2))


def test_resumed_sweep_keeps_the_same_params(split, tmp_path, monkeypatch):
    train, val = split
    kw = {"val": val, "epochs": 9, "compile": False, "quiet": True, "chunk_size": 5, "keep": 2}
    reference = regfn.sweep(MODEL, train, GRID, **kw)
    real, seen = vmap_module.VmapEngine.advance, []

    def crashing(self, *args, **kwargs):
        if len(seen) == 4:  # the second chunk's second stretch
            raise KeyboardInterrupt
        seen.append(1)
        return real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(vmap_module.VmapEngine, "advance", crashing)
        with pytest.raises(KeyboardInterrupt):
            regfn.sweep(MODEL, train, GRID, checkpoint=tmp_path, checkpoint_every=4, **kw)
    resumed = regfn.sweep(MODEL, train, GRID, checkpoint=tmp_path, checkpoint_every=4, **kw)
    assert resumed.trained.configs() == reference.trained.configs()
    for c in reference.trained.configs():
        assert_equal(resumed.params(c), reference.params(c))


def test_model_and_predict(split):
    train, val = split
    result = regfn.sweep(MODEL, train, GRID[:4], val=val, epochs=3, compile=False, quiet=True)
    out = result.model(2)(val.x)
    assert torch.equal(out, MODEL.apply(result.params(2), val.x, train=False))
    assert torch.equal(result.predict(val.x, 2), out)
    best = result.best(1)[0]["config"]
    assert torch.equal(result.predict(val.x), MODEL.apply(result.params(best), val.x, train=False))


def test_from_module_weights_load_back_into_the_users_module(split):
    train, val = split
    net = tnn.Sequential(tnn.Linear(2, 8), tnn.ReLU(), tnn.Linear(8, 1))
    model = regfn.from_module(net)
    configs = [{"l2": 1e-2, "seed": 0, "p": 0.0}, {"l2": 0.0, "seed": 1, "p": 0.0}]
    result = regfn.sweep(model, train, configs, val=val, epochs=4, compile=False, quiet=True)
    assert_close(result.params(1), alone(configs[1], train, model=model, epochs=4).params)
    net.load_state_dict(result.params(1))  # strict: the same names and shapes
    with torch.no_grad():
        torch.testing.assert_close(net(val.x), result.predict(val.x, 1), rtol=0, atol=0)


def test_save_and_load_round_trip_bit_for_bit(split, tmp_path):
    train, val = split
    result = regfn.sweep(MODEL, train, GRID[:5], val=val, epochs=3, compile=False, quiet=True)
    index = result.save(tmp_path / "all")
    written = json.loads(index.read_text())
    ranked = [row["config"] for row in result.best(5)]
    assert written["format"] == "regfn.params/1"
    assert written["metric"] == "val_acc"
    assert [e["config"] for e in written["entries"]] == ranked  # best first
    entry = written["entries"][0]
    assert entry["hyperparameters"] == {h: result.rows[ranked[0]][h] for h in result.hyperparameters}
    assert entry["tensors"] == list(MODEL.init(rr.key(0)))
    for c in range(5):
        assert_equal(regfn.SweepResult.load_params(tmp_path / "all", c), result.params(c))
    assert_equal(regfn.SweepResult.load_params(tmp_path / "all"), result.best_params())
    result.save(tmp_path / "two", [3, 1])
    with pytest.raises(ValueError, match=r"configuration 0 was not saved there; saved: \[1, 3\]"):
        regfn.SweepResult.load_params(tmp_path / "two", 0)
    with pytest.raises(ValueError, match=r"not a directory written by SweepResult\.save"):
        regfn.SweepResult.load_params(tmp_path / "none")


def test_save_under_cross_validation_writes_every_fold(tmp_path):
    data = regfn.data.quadrants(rr.key(0), 60)
    result = regfn.sweep(MODEL, data, GRID[:2], cv=2, epochs=2, compile=False, quiet=True)
    result.save(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == [
        f"config-{c}-fold-{f}.safetensors" for c in (0, 1) for f in (0, 1)
    ]
    assert_equal(regfn.SweepResult.load_params(tmp_path, 1, 1), result.params(1, fold=1))
    assert_equal(regfn.SweepResult.load_params(tmp_path, 1), result.params(1, fold=0))


def test_cli_writes_the_best_parameters(tmp_path, capsys):
    argv = ["sweep", "--n", "80", "--epochs", "5", "--l2", "0,1e-2", "--seeds", "2", "--no-plots", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--save-params", "2"]) == 0
    assert f"{tmp_path / 'a' / 'params'}" in capsys.readouterr().out
    result = regfn.SweepResult.from_json(tmp_path / "a" / "results.json")
    index = json.loads((tmp_path / "a" / "params" / "params.json").read_text())
    assert [e["config"] for e in index["entries"]] == [row["config"] for row in result.best(2)]
    params = regfn.SweepResult.load_params(tmp_path / "a" / "params")
    assert set(params) == set(index["entries"][0]["tensors"])
    assert main([*argv, "--out", str(tmp_path / "b"), "--save-params", "0"]) == 0
    assert not (tmp_path / "b" / "params").exists()


def test_a_model_that_reads_its_hyperparameters_predicts_with_its_rows(split):
    train, val = split
    base = regfn.mlp((2, 6, 1), output="logits")

    def apply(params, x, *, key=None, p=0.0, train=False, hp=None):
        return base.apply(params, x, key=key, p=p, train=train) + hp["shift"]

    model = regfn.Model(base.init, apply)
    configs = [{"shift": s, "seed": 0} for s in (-0.5, 0.5)]
    result = regfn.sweep(
        model, train, configs, val=val, epochs=3, hparams={"shift": (-1.0, 1.0, 0.0)}, compile=False, quiet=True
    )
    for i, config in enumerate(configs):
        expected = base.apply(result.params(i), val.x, train=False) + config["shift"]
        assert torch.equal(result.predict(val.x, i), expected)
        assert result.model(i).hp["shift"].item() == config["shift"]


def test_rows_from_a_checkpoint_written_before_parameters_were_kept_say_so(split, tmp_path, monkeypatch):
    train, _ = split
    real = outputs_module.Results.tensors

    def without_params(self, rows=None):  # what an older regfn wrote in its done files
        return {n: v for n, v in real(self, rows).items() if n != "kept_rows" and not n.startswith("params/")}

    kw = {"epochs": 2, "compile": False, "quiet": True, "chunk_size": 2}
    with monkeypatch.context() as m:
        m.setattr(outputs_module.Results, "tensors", without_params)
        regfn.sweep(MODEL, train, GRID[:4], checkpoint=tmp_path, **kw)
    resumed = regfn.sweep(MODEL, train, GRID[:4], checkpoint=tmp_path, **kw)
    with pytest.raises(ValueError, match="taken from a checkpoint written before regfn kept parameters"):
        resumed.params(0)
