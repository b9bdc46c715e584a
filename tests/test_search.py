"""regfn.search: spaces, keyed random and Sobol sampling, the Optuna adapter (issue #16)."""

from __future__ import annotations

import math
import sys

import pytest
import torch

import regfn
import regfn.random as rr
from regfn._hparams import HPARAMS
from regfn.search import choice, loguniform, randint, sample, uniform

SPACE = {
    "lr": loguniform(1e-4, 1e-1),
    "l2": loguniform(1e-6, 1e-2),
    "p": uniform(0.0, 0.5),
    "momentum": choice([0.0, 0.9]),
    "seed": randint(0, 1000),
}


def tiny():
    data = regfn.data.quadrants(rr.key(0), 64)
    return regfn.data.train_val_split(rr.key(1), data, 0.25)


MODEL = regfn.mlp((2, 4, 1), output="logits")
SWEEP = {"epochs": 3, "compile": False, "quiet": True}


# ----------------------------------------------------------------- spaces


def test_spaces_map_unit_numbers():
    u = [0.0, 0.25, 0.5, 0.75, 1 - 2**-53]
    assert uniform(-1.0, 1.0).from_unit(u) == [-1.0, -0.5, 0.0, 0.5, 1.0 - 2**-52]
    assert uniform(0.1, 0.3).from_unit([1 - 2**-53]) == [math.nextafter(0.3, 0.0)]  # rounding never reaches hi
    assert randint(0, 4).from_unit(u) == [0, 1, 2, 3, 3]
    assert choice(["a", "b"]).from_unit(u) == ["a", "a", "b", "b", "b"]
    logs = [math.log10(v) for v in loguniform(1e-4, 1.0).from_unit(u)]
    assert logs == pytest.approx([-4.0, -3.0, -2.0, -1.0, 0.0])
    assert loguniform(1e-4, 1.0).from_unit(u)[0] == 1e-4  # the low end exactly
    assert all(v < 1.0 for v in loguniform(1e-4, 1.0).from_unit(u))  # the high end excluded
    # Tensors and lists give the same values.
    t = torch.tensor(u, dtype=torch.float64)
    assert uniform(0.0, 3.0).from_unit(t) == uniform(0.0, 3.0).from_unit(u)
    # Exact in integers, even where floats are not.
    assert randint(-(2**63), 2**63).from_unit([0.0]) == [-(2**63)]
    assert randint(0, 2**62 + 1).from_unit([0.5]) == [2**61]


def test_spaces_are_frozen_values():
    assert uniform(0, 1) == uniform(0.0, 1.0)
    assert repr(uniform(0, 1)) == "uniform(0.0, 1.0)"
    assert repr(randint(0, 3)) == "randint(0, 3)"
    assert repr(choice((0.0, 0.5))) == "choice([0.0, 0.5])"
    assert isinstance(uniform(0, 1).lo, float)
    with pytest.raises(AttributeError):
        uniform(0, 1).lo = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: uniform(1.0, 1.0), ValueError, r"regfn.search.uniform: lo must be < hi, got lo=1.0, hi=1.0"),
        (lambda: uniform(2.0, 1.0), ValueError, r"lo must be < hi"),
        (lambda: uniform(0.0, math.inf), ValueError, r"regfn.search.uniform: hi must be finite"),
        (lambda: uniform(0.0, "1"), TypeError, r"hi must be a number, got str"),
        (lambda: loguniform(0.0, 1.0), ValueError, r"regfn.search.loguniform: lo must be > 0, got 0.0"),
        (lambda: loguniform(-1.0, 1.0), ValueError, r"lo must be > 0"),
        (lambda: loguniform(1e-2, 1e-3), ValueError, r"lo must be < hi"),
        (lambda: randint(0, 0), ValueError, r"regfn.search.randint: lo must be < hi \(hi is exclusive\)"),
        (lambda: randint(0.0, 3), TypeError, r"regfn.search.randint: lo must be an int, got float"),
        (lambda: choice([]), ValueError, r"regfn.search.choice: values must not be empty"),
        (lambda: choice({0.0, 0.5}), TypeError, r"values must be a list or tuple"),
        (lambda: choice("ab"), TypeError, r"values must be a list or tuple"),
        (lambda: choice([0.1, 0.1]), ValueError, r"values must differ, got 0.1 twice"),
        (lambda: uniform(0, 1).from_unit([1.0]), ValueError, r"unit numbers must lie in \[0, 1\), got 1.0"),
    ],
)
def test_bad_spaces(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ----------------------------------------------------------------- sampling


@pytest.mark.parametrize("method", ["random", "sobol"])
def test_same_key_same_sample_different_keys_differ(key, method):
    a = sample(key, 16, method=method, **SPACE)
    b = sample(key.clone(), 16, method=method, **SPACE)
    assert a == b
    assert [list(row) for row in a] == [[n for n in HPARAMS if n in SPACE]] * 16  # registry order
    c = sample(rr.fold_in(key, 1), 16, method=method, **SPACE)
    assert [row["lr"] for row in a] != [row["lr"] for row in c]
    # The order of the keywords does not matter (columns follow the names, sorted).
    assert sample(key, 16, method=method, **dict(reversed(SPACE.items()))) == a


def test_random_and_sobol_differ(key):
    assert sample(key, 8, **SPACE) != sample(key, 8, method="sobol", **SPACE)


def test_random_points_are_the_keys_uniforms(key):
    rows = sample(key, 32, **SPACE)
    names = sorted(SPACE)
    u = rr.uniform(key, (32, len(names)), dtype=torch.float64)
    for j, name in enumerate(names):
        assert [row[name] for row in rows] == SPACE[name].from_unit(u[:, j])


def test_sobol_points_match_the_scrambled_engine(key):
    rows = sample(key, 32, method="sobol", **SPACE)
    names = sorted(SPACE)
    seed = int(rr.bits(key, ()))  # the documented rule
    assert regfn.search.sobol_seed(key) == seed
    u = torch.quasirandom.SobolEngine(len(names), scramble=True, seed=seed).draw(32, dtype=torch.float64)
    for j, name in enumerate(names):
        assert [row[name] for row in rows] == SPACE[name].from_unit(u[:, j])
    # A Sobol sequence of 32 points puts exactly one point in each 1/32 of every axis.
    p = sorted(row["p"] for row in rows)
    assert [math.floor(v / 0.5 * 32) for v in p] == list(range(32))


def test_values_lie_in_their_spaces_and_the_registry_ranges(key):
    space = {
        "lr": loguniform(1e-5, 10.0),
        "beta1": uniform(0.5, 1.0),  # the registry's beta1 excludes 1; the space does too
        "p": uniform(0.0, 1.0),
        "l1": choice([0, 1e-3]),  # ints for a float name become floats
        "eps": loguniform(1e-10, 1e-6),
        "seed": randint(-(2**63), 2**63),
    }
    for method in ("random", "sobol"):
        rows = sample(key, 256, method=method, **space)
        for row in rows:
            for name, value in row.items():
                assert HPARAMS[name].contains(value), (name, value)
                assert HPARAMS[name].check(value, "test") == value
            assert 1e-5 <= row["lr"] < 10.0
            assert 0.5 <= row["beta1"] < 1.0
            assert 0.0 <= row["p"] < 1.0
            assert row["l1"] in (0.0, 1e-3)
            assert type(row["l1"]) is float
            assert type(row["seed"]) is int
            assert type(row["lr"]) is float


def test_loguniform_is_uniform_in_log_space():
    n, lo, hi = 8192, 1e-6, 1e-1
    logs = torch.tensor([math.log(row["l2"]) for row in sample(rr.key(3), n, l2=loguniform(lo, hi))])
    a, b = math.log(lo), math.log(hi)
    width = b - a
    # Uniform on [a, b): mean (a + b) / 2, variance width**2 / 12; each decade a fifth of the points.
    assert abs(logs.mean().item() - (a + b) / 2) < 5 * width / math.sqrt(12 * n)
    assert logs.var().item() == pytest.approx(width**2 / 12, rel=0.05)
    decades = torch.histc(logs / math.log(10), bins=5, min=-6, max=-1) / n
    assert torch.allclose(decades, torch.full((5,), 0.2), atol=0.03)


def test_randint_and_choice_cover_their_values(key):
    rows = sample(key, 400, seed=randint(-2, 3), p=choice([0.0, 0.1, 0.2, 0.3]))
    assert {row["seed"] for row in rows} == {-2, -1, 0, 1, 2}
    assert {row["p"] for row in rows} == {0.0, 0.1, 0.2, 0.3}
    assert all(type(row["seed"]) is int for row in rows)
    rows = sample(key, 8, method="sobol", seed=choice([3, 5, 7, 11]))
    assert {row["seed"] for row in rows} == {3, 5, 7, 11}
    assert all(type(row["seed"]) is int for row in rows)


def test_constants_take_no_column(key):
    with_constant = sample(key, 8, lr=loguniform(1e-3, 1e-1), seed=0, l2=1e-3)
    assert [row["lr"] for row in with_constant] == [row["lr"] for row in sample(key, 8, lr=loguniform(1e-3, 1e-1))]
    assert all(row["seed"] == 0 and row["l2"] == 1e-3 for row in with_constant)
    assert sample(key, 3, method="sobol", p=0.5) == [{"p": 0.5}] * 3


def test_sampling_leaves_torch_global_rng_alone(key):
    state = torch.random.get_rng_state().clone()
    sample(key, 16, **SPACE)
    sample(key, 16, method="sobol", **SPACE)
    assert torch.equal(state, torch.random.get_rng_state())


def test_the_sample_goes_into_a_sweep():
    train, val = tiny()
    configs = sample(rr.key(5), 6, method="sobol", l2=loguniform(1e-5, 1e-1), p=uniform(0, 0.5), seed=randint(0, 9))
    result = regfn.sweep(MODEL, train, configs, val=val, **SWEEP)
    assert len(result) == 6
    for config, row in zip(configs, result.rows, strict=True):
        assert {name: row[name] for name in config} == config
        assert not row["diverged"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lrate": uniform(0, 1)}, ValueError, r"unknown hyperparameter\(s\) \['lrate'\]; the sweepable names are \["),
        ({"p": uniform(0, 2)}, ValueError, r"regfn.search.sample: p must be in \[0, 1\], got uniform\(0.0, 2.0\)"),
        ({"beta1": uniform(0.5, 1.5)}, ValueError, r"beta1 must be in \[0, 1\)"),
        ({"lr": uniform(-1, 1)}, ValueError, r"lr must be >= 0"),
        ({"p": choice([0.0, 1.5])}, ValueError, r"p must be in \[0, 1\], got 1.5"),
        ({"p": 1.5}, ValueError, r"p must be in \[0, 1\], got 1.5"),
        ({"seed": uniform(0, 10)}, TypeError, r"seed takes ints: give randint\(lo, hi\) or a choice of ints"),
        ({"seed": loguniform(1, 10)}, TypeError, r"seed takes ints"),
        ({"seed": choice([0, 0.5])}, TypeError, r"seed takes ints"),
        ({"seed": randint(0, 2**64)}, ValueError, r"seed must be in"),
        ({"p": [0.0, 0.5]}, TypeError, r"p got a list; to sample from these values, give regfn.search.choice"),
        ({}, ValueError, r"give at least one hyperparameter"),
    ],
)
def test_bad_space_for_sample(kwargs, error, message):
    with pytest.raises(error, match=message):
        sample(rr.key(0), 4, **kwargs)


def test_bad_arguments_for_sample():
    with pytest.raises(ValueError, match=r"regfn.search.sample: n must be an int >= 1, got 0"):
        sample(rr.key(0), 0, p=uniform(0, 1))
    with pytest.raises(TypeError, match=r"regfn.search.sample: n must be an int, got float"):
        sample(rr.key(0), 2.0, p=uniform(0, 1))
    with pytest.raises(ValueError, match=r"method must be one of \['random', 'sobol'\], got 'grid'"):
        sample(rr.key(0), 4, method="grid", p=uniform(0, 1))
    with pytest.raises(TypeError, match=r"regfn.search.sample: expected a key"):
        sample(0, 4, p=uniform(0, 1))
    with pytest.raises(ValueError, match=r"regfn.search.sample: expected a single key of shape \(2,\)"):
        sample(rr.split(rr.key(0), 2), 4, p=uniform(0, 1))


def test_import_regfn_does_not_import_optuna():
    import subprocess

    code = "import sys, regfn, regfn.search; assert 'optuna' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


# ----------------------------------------------------------------- the Optuna adapter


def make_study(optuna, direction="maximize", pruner=None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=pruner if pruner is not None else optuna.pruners.NopPruner(),
    )


def test_optuna_sweep_runs_batches_and_tells_the_metric():
    optuna = pytest.importorskip("optuna")
    train, val = tiny()
    study = make_study(optuna)
    space = {"lr": loguniform(1e-2, 1.0), "p": uniform(0.0, 0.5), "momentum": choice([0.0, 0.9]), "seed": 0}
    results = regfn.search.optuna_sweep(study, 8, batch=4, model=MODEL, data=train, val=val, space=space, **SWEEP)
    assert [len(r) for r in results] == [4, 4]
    trials = study.trials
    assert len(trials) == 8
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    rows = [row for r in results for row in r.rows]
    for trial, row in zip(trials, rows, strict=True):
        assert trial.value == row["val_acc"]
        assert trial.params == {name: row[name] for name in ("lr", "p", "momentum")}
        assert 1e-2 <= trial.params["lr"] < 1.0
        assert 0.0 <= trial.params["p"] < 0.5
        assert row["seed"] == 0
    # The same seed, the same study.
    again = make_study(optuna)
    regfn.search.optuna_sweep(again, 8, batch=4, model=MODEL, data=train, val=val, space=space, **SWEEP)
    assert [t.params for t in again.trials] == [t.params for t in trials]


def test_optuna_sweep_tells_the_cross_validated_mean():
    optuna = pytest.importorskip("optuna")
    train, _ = tiny()
    study = make_study(optuna)
    space = {"lr": loguniform(1e-2, 1.0), "seed": 0}
    results = regfn.search.optuna_sweep(study, 4, batch=4, model=MODEL, data=train, space=space, cv=3, **SWEEP)
    rows = results[0].rows
    assert results[0].settings["folds"] == 3
    for trial, row in zip(study.trials, rows, strict=True):
        assert len(row["val_acc_folds"]) == 3
        assert trial.value == row["val_acc"]  # the mean over the folds


def test_optuna_sweep_reports_intermediate_values_for_the_pruner():
    optuna = pytest.importorskip("optuna")
    train, val = tiny()
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = make_study(optuna, direction="minimize", pruner=pruner)
    space = {"lr": loguniform(1e-3, 1.0), "seed": randint(0, 4)}
    results = regfn.search.optuna_sweep(
        study, 7, batch=4, model=MODEL, data=train, val=val, space=space, metric="val_loss", report_every=1, **SWEEP
    )
    assert [len(r) for r in results] == [4, 3]
    rows = [(r, i) for r in results for i in range(len(r))]
    states = set()
    for trial, (result, i) in zip(study.trials, rows, strict=True):
        assert trial.intermediate_values, "no intermediate values were reported"
        curve = result.curves["val_loss"][i].tolist()
        steps = sorted(trial.intermediate_values)
        assert steps == result.curve_epochs[: len(steps)]
        assert result.curve_epochs == [1, 2, 3]
        assert [trial.intermediate_values[s] for s in steps] == curve[: len(steps)]
        states.add(trial.state)
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert steps == [1, 2, 3]
            assert trial.value == result.rows[i]["val_loss"]
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    # Trials are told one by one, so the pruner compares each with the trials told before it.
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert optuna.trial.TrialState.PRUNED in states


def test_optuna_sweep_tells_diverged_trials_as_failed():
    optuna = pytest.importorskip("optuna")
    train, val = tiny()
    study = make_study(optuna, direction="minimize")
    results = regfn.search.optuna_sweep(
        study,
        6,
        batch=6,
        model=MODEL,
        data=train,
        val=val,
        space={"lr": choice([1e30, 0.1])},
        metric="val_mse",
        loss="mse",
        **SWEEP,
    )
    (result,) = results
    fail, complete = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE
    for trial, row in zip(study.trials, result.rows, strict=True):
        assert trial.state == (fail if row["diverged"] else complete)
        assert row["diverged"] == (trial.params["lr"] == 1e30)


def test_optuna_sweep_bad_input():
    optuna = pytest.importorskip("optuna")
    train, val = tiny()
    kw = {"model": MODEL, "data": train, "space": {"lr": loguniform(1e-3, 1.0)}, **SWEEP}
    optuna_sweep = regfn.search.optuna_sweep
    with pytest.raises(ValueError, match=r"the study's direction is minimize, but val_acc is better higher"):
        optuna_sweep(make_study(optuna, "minimize"), 2, batch=2, val=val, **kw)
    with pytest.raises(ValueError, match=r"metric='val_acc' needs validation data: pass val="):
        optuna_sweep(make_study(optuna), 2, batch=2, **kw)
    with pytest.raises(ValueError, match=r"regfn.search.optuna_sweep: batch must be an int >= 1, got 0"):
        optuna_sweep(make_study(optuna), 2, batch=0, val=val, **kw)
    with pytest.raises(ValueError, match=r"n_trials must be an int >= 1"):
        optuna_sweep(make_study(optuna), 0, batch=2, val=val, **kw)
    with pytest.raises(ValueError, match=r"regfn.search.optuna_sweep: p must be in \[0, 1\]"):
        optuna_sweep(make_study(optuna), 2, batch=2, val=val, **{**kw, "space": {"p": uniform(0, 2)}})
    with pytest.raises(TypeError, match=r"pass report_every, not log_every"):
        optuna_sweep(make_study(optuna), 2, batch=2, val=val, log_every=1, **kw)
    two = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(ValueError, match=r"the study must have one objective, got 2"):
        optuna_sweep(two, 2, batch=2, val=val, **kw)
    # Errors found by the sweep itself fail the batch's trials, then propagate.
    study = make_study(optuna, "minimize")
    with pytest.raises(ValueError, match=r"metric must be one of the sweep's columns \['loss', .*got 'val_lossy'"):
        optuna_sweep(study, 2, batch=2, val=val, metric="val_lossy", **kw)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    study = make_study(optuna)
    with pytest.raises(ValueError, match=r"optimizer must be one of"):
        optuna_sweep(study, 3, batch=2, val=val, optimizer="lbfgs", **kw)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2


def test_optuna_sweep_without_optuna_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    train, _ = tiny()
    with pytest.raises(ImportError, match=r'pip install "regfn\[optuna\]"'):
        regfn.search.optuna_sweep(object(), 2, batch=2, model=MODEL, data=train, space={"lr": uniform(0, 1)})
