"""regfn.train against torch.nn + torch.optim, and its keyed reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import regfn
import regfn.random as rr
from regfn.optim import sgd


def tutorial_module(params: dict[str, torch.Tensor]) -> torch.nn.Module:
    net = torch.nn.Sequential()
    net.fc1, net.act1, net.fc2, net.act2, net.fc3 = (
        torch.nn.Linear(8, 6),
        torch.nn.ReLU(),
        torch.nn.Linear(6, 4),
        torch.nn.ReLU(),
        torch.nn.Linear(4, 1),
    )
    net.double().load_state_dict(params)
    return net


@pytest.fixture
def data():
    d = regfn.data.quadrants(rr.key(3), 96, dtype=torch.float64)
    x = torch.cat([d.x, d.x**2, d.x[:, :1] * d.x[:, 1:], d.x.sin(), d.x[:, :1] - d.x[:, 1:]], dim=1)
    return regfn.data.Dataset(x, d.y)


def test_full_batch_matches_torch_optim_sgd(data):
    model = regfn.mlp((8, 6, 4, 1), output="logits", dtype=torch.float64)
    key = rr.key(0)
    run = regfn.train(model, data, optimizer=sgd(0.05, momentum=0.9, weight_decay=1e-3), key=key, epochs=60)
    init_key = rr.split(key, 3)[0]  # regfn.train's documented key split
    net = tutorial_module(model.init(init_key))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, foreach=False)
    for _ in range(60):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(net(data.x), data.y).backward()
        opt.step()
    for name, value in net.state_dict().items():
        torch.testing.assert_close(run.params[name], value, rtol=1e-10, atol=1e-12)


def test_l2_penalty_equals_weight_decay_run(data):
    model = regfn.mlp((8, 6, 4, 1), output="logits", dtype=torch.float64)
    a = regfn.train(model, data, optimizer=sgd(0.1), penalties=[regfn.l2(1e-2)], key=rr.key(1), epochs=30)
    b = regfn.train(model, data, optimizer=sgd(0.1, weight_decay=1e-2), key=rr.key(1), epochs=30)
    for name in a.params:
        torch.testing.assert_close(a.params[name], b.params[name], rtol=1e-12, atol=1e-14)


def test_same_key_same_numbers_and_dropout_changes_them(data):
    model = regfn.mlp((8, 6, 4, 1), output="logits", dtype=torch.float64)
    kw = {"optimizer": sgd(0.1), "p": 0.5, "epochs": 10}
    a = regfn.train(model, data, key=rr.key(5), **kw)
    b = regfn.train(model, data, key=rr.key(5), **kw)
    c = regfn.train(model, data, key=rr.key(6), **kw)
    assert all(torch.equal(a.params[n], b.params[n]) for n in a.params)
    assert a.history == b.history
    assert not all(torch.equal(a.params[n], c.params[n]) for n in a.params)


def test_minibatch_history_val_and_metrics(data):
    train, val = regfn.data.train_val_split(rr.key(0), data, 0.25)
    model = regfn.mlp((8, 6, 4, 1), output="logits", dtype=torch.float64)
    logs = []
    run = regfn.train(
        model,
        train,
        optimizer=sgd(0.1),
        key=rr.key(2),
        epochs=6,
        batch_size=16,
        val=val,
        log_every=2,
        on_log=logs.append,
    )
    assert [h["epoch"] for h in run.history] == [2, 4, 6]
    assert logs == run.history
    assert {"loss", "val_loss", "val_acc", "val_penalty"} <= set(run.history[0])
    assert 0.0 <= run.metrics["acc"] <= 1.0
    assert 0.0 <= run.val_metrics["acc"] <= 1.0
    assert not run.diverged


def test_divergence_is_reported_not_raised():
    data, _ = regfn.data.sparse_regression(rr.key(0), 50, 10)
    model = regfn.mlp((10, 1), output="identity")
    run = regfn.train(model, data, loss="mse", optimizer=sgd(10.0), key=rr.key(0), epochs=40)
    assert run.diverged
    assert not math.isfinite(run.metrics["loss"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be an int >= 1"),
        ({"batch_size": 0}, "batch_size must be an int in [1, 96], got 0"),
        ({"batch_size": 10_000}, "batch_size must be an int in [1, 96]"),
        ({"log_every": -1}, "log_every must be an int >= 1"),
        ({"loss": "hinge"}, "loss must be one of"),
    ],
)
def test_bad_arguments_raise(data, kwargs, message):
    model = regfn.mlp((8, 6, 4, 1), output="logits", dtype=torch.float64)
    with pytest.raises(ValueError, match=pytest.importorskip("re").escape(message)):
        regfn.train(model, data, optimizer=sgd(0.1), key=rr.key(0), **{"epochs": 2, **kwargs})


@pytest.mark.slow
def test_compiled_run_equals_eager(data):
    model = regfn.mlp((8, 6, 4, 1), output="logits", dtype=torch.float64)
    kw = {"optimizer": sgd(0.1, momentum=0.9), "penalties": [regfn.l2(1e-3)], "p": 0.5, "key": rr.key(4), "epochs": 3}
    eager = regfn.train(model, data, **kw)
    compiled = regfn.train(model, data, compile=True, **kw)
    for name in eager.params:
        torch.testing.assert_close(compiled.params[name], eager.params[name], rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------- eager gradients by plain autograd

PLAIN_CASES = [
    ("mse", "relu", []),
    ("cross_entropy", "tanh", [regfn.l2(1e-2)]),
    ("bce", "relu", [regfn.l1(1e-3)]),
    ("mse", "gelu", [regfn.penalties.norm(1e-2, 2)]),
    ("cross_entropy", "elu", [regfn.penalties.elastic_net(1e-3, 1e-2)]),
]


@pytest.mark.parametrize(("loss", "activation", "penalties"), PLAIN_CASES)
def test_plain_autograd_steps_give_torch_funcs_bits(loss, activation, penalties):
    """One step of an MLP with dropout: plain autograd and torch.func give the same objective, gradients and update,
    bit for bit, where functorch runs no decomposition of its own (everything but bce_logits and silu)."""
    from regfn._train import train_step

    n_out = 3 if loss == "cross_entropy" else 1
    model = regfn.mlp((5, 16, 8, n_out), activation=activation, output="sigmoid" if loss == "bce" else "logits")
    lossfn = regfn.losses.get_loss(loss)
    opt = regfn.optim.adamw(1e-2, weight_decay=1e-2)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(32, 5, generator=g)
        y = (
            torch.randint(0, 3, (32,), generator=g)
            if loss == "cross_entropy"
            else (torch.rand(32, 1, generator=g) > 0.5).float()
        )
        params = model.init(rr.key(seed))
        state = opt.init(params)
        args = (model, lossfn, opt, penalties, 0.3, params, state, x, y, rr.key(100 + seed))
        p_func, _, v_func = train_step(*args)
        p_plain, _, v_plain = train_step(*args, plain_autograd=True)
        assert torch.equal(v_func, v_plain)
        for name in p_func:
            assert torch.equal(p_func[name], p_plain[name]), name


def test_plain_autograd_agrees_with_torch_func_on_bce_with_logits(data):
    """bce_logits: torch.func runs binary_cross_entropy_with_logits as its decomposition, plain autograd as the fused
    kernel: the same function, gradients equal to float tolerance."""
    from regfn._train import train_step

    model = regfn.mlp((8, 6, 4, 1), output="logits", dtype=torch.float64)
    params = model.init(rr.key(0))
    opt = sgd(0.1)
    args = (
        model,
        regfn.losses.get_loss("bce_logits"),
        opt,
        [],
        0.2,
        params,
        opt.init(params),
        data.x,
        data.y,
        rr.key(1),
    )
    p_func, _, v_func = train_step(*args)
    p_plain, _, v_plain = train_step(*args, plain_autograd=True)
    assert v_func == v_plain
    for name in p_func:
        torch.testing.assert_close(p_plain[name], p_func[name], rtol=1e-12, atol=1e-15)


def test_eager_train_runs_without_torch_func_and_unused_parameters_get_zeros(data, monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("an eager regfn.train step used torch.func.grad_and_value")

    monkeypatch.setattr("regfn._train.grad_and_value", refused)
    model = regfn.mlp((8, 6, 1), output="logits", dtype=torch.float64)
    run = regfn.train(model, data, optimizer=sgd(0.1), key=rr.key(0), p=0.2, epochs=3, batch_size=32)
    assert math.isfinite(run.metrics["loss"])
    grads, value = regfn._train.plain_grad_and_value(lambda p: (p["a"] * 3).sum())(
        {"a": torch.ones(2), "unused": torch.ones(3)}
    )
    assert grads["unused"].tolist() == [0.0, 0.0, 0.0]
    assert grads["a"].tolist() == [3.0, 3.0]
    assert value.item() == 6.0
