"""The hyperparameter registry: every reader accepts and rejects exactly the same values, name by name."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import regfn
import regfn.random as rr
from regfn._hparams import HPARAMS, OPTIMIZER_ARGS, PENALTY_NAMES, bounds, optimizer_defaults
from regfn._sweep._configs import normalize
from regfn._sweep._program import PENALTIES, build_optimizer, live_optimizer_args
from regfn.cli import build_parser, parse_values

NUMERIC = [name for name, p in HPARAMS.items() if not p.integer]


def _optimizer_for(name: str) -> str:
    """An optimizer that takes ``name`` (sgd for names that are not optimizer arguments)."""
    return next((o for o, args in OPTIMIZER_ARGS.items() if name in args), "sgd")


def _edges(name: str) -> list[float]:
    """Values at and around the ends of the range, and a few ordinary ones."""
    p = HPARAMS[name]
    values = [0.0, 0.5, 1.0, 2.0, -1.0, 1e-12, -1e-12, 1e6]
    for end in (p.low, p.high):
        if end is not None and math.isfinite(end):
            values += [end, math.nextafter(end, -math.inf), math.nextafter(end, math.inf)]
    return values


def _error(fn, *args) -> str | None:
    """The message of the ValueError ``fn(*args)`` raises, or None when it accepts."""
    try:
        fn(*args)
    except ValueError as err:
        return str(err)
    return None


def _sweep_accepts(name: str, value: float) -> bool:
    message = _error(normalize, [{name: value}], _optimizer_for(name))
    assert message is None or f"config 0: {name} must be" in message
    return message is None


def _cli_accepts(name: str, value: float) -> bool:
    message = _error(parse_values, repr(value), name)
    assert message is None or f"--{name.replace('_', '-')}: " in message
    assert message is None or HPARAMS[name].describe() in message
    return message is None


def _factory_accepts(name: str, value: float) -> bool:
    values = {"lr": 0.1, name: value} if name != "lr" else {"lr": value}
    message = _error(build_optimizer, _optimizer_for(name), values)
    assert message is None or ("betas" if name in ("beta1", "beta2") else name) in message
    return message is None


@pytest.mark.parametrize("name", NUMERIC)
def test_sweep_cli_and_factories_agree_at_the_edges(name):
    p = HPARAMS[name]
    for value in _edges(name):
        expected = p.contains(value)
        assert _sweep_accepts(name, value) == expected, (name, value)
        assert _cli_accepts(name, value) == expected, (name, value)
        if p.target == "optimizer":
            assert _factory_accepts(name, value) == expected, (name, value)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NUMERIC), value=st.floats(-3.0, 3.0, allow_nan=False) | st.floats(allow_nan=False))
def test_sweep_cli_and_factories_agree_anywhere(name, value):
    expected = HPARAMS[name].contains(value)
    assert _sweep_accepts(name, value) == expected
    if math.isfinite(value):  # the command line refuses infinities as numbers before any range
        assert _cli_accepts(name, value) == expected
    if HPARAMS[name].target == "optimizer":
        assert _factory_accepts(name, value) == expected


def test_seed_is_an_integer_everywhere():
    assert normalize([{"seed": 3.0}], "sgd")[0][0]["seed"] == 3
    for bad, error in ((1.5, TypeError), (True, TypeError), (2**63, ValueError), (-(2**63) - 1, ValueError)):
        with pytest.raises(error, match="config 0: seed must be an int"):
            normalize([{"seed": bad}], "sgd")
    assert normalize([{"seed": -(2**63)}], "sgd")[0][0]["seed"] == -(2**63)


def test_every_reader_knows_every_name():
    assert set(regfn.optim.optimizers()) == set(OPTIMIZER_ARGS)
    assert set(PENALTIES) == set(PENALTY_NAMES)
    triton = importlib.import_module("regfn._sweep._triton")
    assert set(triton.HP_COLUMNS) <= set(HPARAMS)
    plot = importlib.import_module("regfn.plot")
    assert all(plot.LABELS[name] == HPARAMS[name].label for name in HPARAMS)
    assert set(plot.ORDER) == set(HPARAMS) - {"seed"}
    for command in ("sweep", "train"):
        args = build_parser().parse_args([command])
        assert {n for n in HPARAMS if n != "seed"} <= set(vars(args)), command
    for optimizer, names in OPTIMIZER_ARGS.items():
        assert all(HPARAMS[n].target == "optimizer" for n in names), optimizer


def test_registry_defaults_are_the_factories_defaults_but_where_a_sweep_says():
    # The documented differences (regfn.optim's descriptions, sweep_defaults): SGD starts at lr 0.1 with
    # momentum 0.9, Adam and AdamW at lr 0.01, and a sweep's weight decay defaults to 0 for AdamW too.
    departs = {("sgd", "lr"): 0.1, ("sgd", "momentum"): 0.9, ("adam", "lr"): 0.01, ("adamw", "lr"): 0.01}
    departs[("adamw", "weight_decay")] = 0.0
    for optimizer, names in OPTIMIZER_ARGS.items():
        own = regfn.optim.optimizers()[optimizer].factory_defaults()
        ours = optimizer_defaults(optimizer)
        for name in names:
            assert ours[name] == departs.get((optimizer, name), own[name]), (optimizer, name)
    assert optimizer_defaults("adagrad")["eps"] == 1e-10  # torch.optim's, not Adam's 1e-8
    with pytest.raises(ValueError, match="momentum"):  # one value everywhere: the factories' own check
        regfn.optim.optimizers()["sgd"].build({"momentum": -1.0})


def test_factories_read_the_registry_ranges():
    assert bounds("beta2") == {"low": 0.0, "high": 1.0, "low_open": False, "high_open": True}
    with pytest.raises(ValueError, match=r"sgd: momentum must be >= 0, got -0\.5"):
        regfn.optim.sgd(0.1, momentum=-0.5)
    with pytest.raises(ValueError, match=r"adam: betas\[1\] must be in \[0, 1\), got 1\.0"):
        regfn.optim.adam(0.1, betas=(0.9, 1.0))


def test_unswept_optimizer_arguments_keep_the_factory_default():
    rows, _ = normalize([{"lr": 0.1}, {"lr": 0.2}], "adam")
    assert live_optimizer_args(rows, "adam") == ("lr",)
    rows, _ = normalize([{"beta2": 0.99}, {"beta2": 0.999}], "adam")
    assert live_optimizer_args(rows, "adam") == ("lr", "beta2")
    rows, _ = normalize([{}], "adamw")
    assert live_optimizer_args(rows, "adamw") == ("lr", "weight_decay")  # 0, not AdamW's own 1e-2


def test_an_argument_the_optimizer_does_not_take_is_refused_unless_at_its_default():
    normalize([{"momentum": 0.0}], "adam")
    with pytest.raises(ValueError, match="config 0: optimizer 'adam' has no momentum"):
        normalize([{"momentum": 0.9}], "adam")
    with pytest.raises(ValueError, match="config 1: optimizer 'sgd' has no beta2; it takes lr, momentum"):
        normalize([{}, {"beta2": 0.9}], "sgd")


@pytest.fixture(scope="module")
def data():
    full = regfn.data.quadrants(rr.key(0), 80)
    return regfn.data.train_val_split(rr.key(1), full, 0.25)


@pytest.mark.parametrize(
    ("optimizer", "name", "values", "factory"),
    [
        ("adam", "beta2", [0.99, 0.9], lambda v: regfn.optim.adam(0.01, betas=(0.9, v))),
        ("adamw", "beta1", [0.5, 0.8], lambda v: regfn.optim.adamw(0.01, betas=(v, 0.999), weight_decay=0.0)),
        ("adam", "eps", [1e-3, 1e-6], lambda v: regfn.optim.adam(0.01, eps=v)),
        ("rmsprop", "alpha", [0.9, 0.5], lambda v: regfn.optim.rmsprop(0.01, alpha=v)),
        ("sgd", "dampening", [0.5, 0.1], lambda v: regfn.optim.sgd(0.01, momentum=0.9, dampening=v)),
        ("adagrad", "lr_decay", [0.1, 0.01], lambda v: regfn.optim.adagrad(0.01, lr_decay=v)),
        (
            "adagrad",
            "initial_accumulator_value",
            [0.1, 1.0],
            lambda v: regfn.optim.adagrad(0.01, initial_accumulator_value=v),
        ),
    ],
)
def test_a_newly_sweepable_argument_equals_the_single_run(data, optimizer, name, values, factory):
    train, val = data
    model = regfn.mlp((2, 6, 1), output="logits")
    lr = {"lr": 0.01} if name != "dampening" else {"lr": 0.01, "momentum": 0.9}
    cfgs = [{**lr, name: v, "p": 0.3, "seed": i} for i, v in enumerate(values)]
    result = regfn.sweep(model, train, cfgs, val=val, optimizer=optimizer, epochs=6, compile=False, quiet=True)
    assert result.swept()[:1] == [name]
    for row, v, cfg in zip(result.rows, values, cfgs, strict=True):
        assert row[name] == v
        single = regfn.train(model, train, optimizer=factory(v), p=0.3, key=rr.key(cfg["seed"]), epochs=6, val=val)
        assert row["loss"] == pytest.approx(single.metrics["loss"], rel=1e-5, abs=1e-7)
        assert row["val_loss"] == pytest.approx(single.val_metrics["loss"], rel=1e-5, abs=1e-7)
    # A name nobody set is not a column; the usual ones always are.
    assert "alpha" not in result.rows[0] or name == "alpha"
    assert {"lr", "momentum", "weight_decay", "l1", "l2", "norm2", "p", "seed"} <= set(result.rows[0])


def test_cli_sweeps_a_newly_sweepable_argument(tmp_path, capsys):
    from regfn.cli import main

    argv = "sweep --optimizer adam --beta2 0.99,0.999 --l2 0 --p 0 --seeds 1 --epochs 3 --no-plots --quiet"
    code = main([*argv.split(), "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert "beta2" in header
    assert main(["sweep", "--optimizer", "sgd", "--beta2", "0.9", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "--beta2: optimizer 'sgd' has no beta2" in capsys.readouterr().err
    assert torch.get_num_threads() >= 1


# ----------------------------------------------------------------- loss and model hyperparameters


def test_cross_entropy_label_smoothing_is_torchs():
    logits = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 1, 1, 2, 0, 3])
    ce = regfn.losses.get_loss("cross_entropy")
    for s in (0.0, 0.1, 0.7):
        ours = regfn.losses.loss_value(ce, logits, labels, {"label_smoothing": torch.tensor(s)})
        torchs = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=s)
        assert torch.allclose(ours, torchs, rtol=1e-6, atol=1e-7), s
    assert torch.equal(regfn.losses.loss_value(ce, logits, labels), torch.nn.functional.cross_entropy(logits, labels))


def test_label_smoothing_needs_a_loss_that_reads_it(data):
    train, _ = data
    model = regfn.mlp((2, 4, 1), output="logits")
    with pytest.raises(ValueError, match="config 0: the loss has no label_smoothing"):
        regfn.sweep(model, train, [{"label_smoothing": 0.1}], epochs=1, compile=False, quiet=True)
    regfn.sweep(model, train, [{"label_smoothing": 0.0}], epochs=1, compile=False, quiet=True)  # the default is fine


def test_declared_hyperparameters_reach_the_loss_and_the_model(data):
    train, val = data
    seen = {}

    def scaled_bce(out, y, hp):
        seen["loss"] = sorted(hp)
        return torch.nn.functional.binary_cross_entropy_with_logits(out / hp["temperature"], y)

    base = regfn.mlp((2, 6, 1), output="logits")

    def apply(params, x, *, key=None, p=0.0, train=False, hp=None):
        seen["model"] = hp is not None and "shift" in hp
        return base.apply(params, x, key=key, p=p, train=train) + hp["shift"]

    model = regfn.Model(base.init, apply)
    loss = regfn.Loss(scaled_bce, threshold=0.0)
    cfgs = [{"temperature": t, "shift": 0.0, "seed": 0, "lr": 0.1} for t in (0.5, 2.0)]
    declared = {"temperature": (0.0, None), "shift": (-1.0, 1.0, 0.0)}
    result = regfn.sweep(model, train, cfgs, val=val, loss=loss, epochs=5, hparams=declared, compile=False, quiet=True)
    assert seen["model"]
    assert {"temperature", "shift", "lr", "p"} <= set(seen["loss"])
    assert [r["temperature"] for r in result.rows] == [0.5, 2.0]
    for row, cfg in zip(result.rows, cfgs, strict=True):
        single = regfn.train(
            model, train, optimizer=regfn.optim.sgd(0.1, momentum=0.9), loss=loss, key=rr.key(0), epochs=5, val=val,
            hparams={"temperature": cfg["temperature"], "shift": 0.0},
        )  # fmt: skip
        assert row["loss"] == pytest.approx(single.metrics["loss"], rel=1e-5, abs=1e-7)
    assert result.rows[0]["loss"] != result.rows[1]["loss"]
    # Declared ranges are checked like the registry's; a name without a default must be set.
    with pytest.raises(ValueError, match="config 0: temperature must be >= 0, got -1"):
        regfn.sweep(model, train, [{"temperature": -1}], loss=loss, hparams=declared, epochs=1, quiet=True)
    with pytest.raises(ValueError, match="config 0: temperature has no default; set it in every configuration"):
        regfn.sweep(model, train, [{}], loss=loss, hparams=declared, epochs=1, quiet=True)
    with pytest.raises(ValueError, match="'lr' is a built-in hyperparameter"):
        regfn.sweep(model, train, [{}], loss=loss, hparams={"lr": (0, 1)}, epochs=1, quiet=True)
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['temperature'\]"):
        regfn.sweep(model, train, [{"temperature": 1.0}], epochs=1, quiet=True)


def test_per_layer_rates_equal_the_single_run(data):
    train, val = data
    model = regfn.mlp((2, 8, 6, 1), output="logits")
    cfgs = [{"p": 0.5, "p1": 0.1, "seed": 3}, {"p": 0.2, "p2": 0.6, "seed": 4}, {"p": 0.3, "seed": 5}]
    result = regfn.sweep(model, train, cfgs, val=val, epochs=6, compile=False, quiet=True)
    expected_rates = [(0.1, 0.5), (0.2, 0.6), (0.3, 0.3)]
    for row, cfg, rates in zip(result.rows, cfgs, expected_rates, strict=True):
        assert (row["p1"], row["p2"]) == rates
        single = regfn.train(model, train, optimizer=regfn.optim.sgd(0.1, momentum=0.9), p=rates, key=rr.key(cfg["seed"]),
                             epochs=6, val=val)  # fmt: skip
        assert row["loss"] == pytest.approx(single.metrics["loss"], rel=1e-5, abs=1e-7)
    with pytest.raises(ValueError, match=r"per-layer rates up to p1, but the MLP has 2 hidden layers"):
        regfn.sweep(model, train, [{"p1": 0.5}], epochs=1, quiet=True)


def test_collapsed_flags_a_constant_predictor_not_a_learning_one(data):
    train, val = data
    model = regfn.mlp((2, 8, 1), output="logits")
    cfgs = [{"lr": 0.5, "momentum": 0.9, "seed": 0}, {"lr": 0.5, "l2": 5.0, "seed": 0}]
    with pytest.warns(UserWarning, match="1 of 2 configurations collapsed to a constant"):
        result = regfn.sweep(model, train, cfgs, val=val, epochs=60, compile=False)
    assert result.rows[0]["val_acc"] > 0.8
    assert result.rows[0]["collapsed"] is False
    assert result.rows[1]["collapsed"] is True
    assert result.collapsed == [1]
    single = regfn.train(model, train, optimizer=regfn.optim.sgd(0.5), penalties=[regfn.l2(5.0)], key=rr.key(0),
                         epochs=60, val=val)  # fmt: skip
    assert single.collapsed
    assert "_constant" not in single.metrics
    assert "val__constant" not in result.rows[1]


def test_targets_must_fit_the_loss(data):
    train, _ = data
    model = regfn.mlp((2, 4, 1), output="logits")
    with pytest.raises(TypeError, match=r"regfn\.sweep: loss .cross_entropy. needs integer class labels"):
        regfn.sweep(model, train, [{}], loss="cross_entropy", epochs=1, quiet=True)
    with pytest.raises(TypeError, match=r"regfn\.train: loss .cross_entropy. needs integer class labels"):
        regfn.train(model, train, optimizer=regfn.optim.sgd(0.1), key=rr.key(0), loss="cross_entropy", epochs=1)
