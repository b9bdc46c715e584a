"""Tests for regfn.optim: torch.optim parity, vmap sweeps, compile, constraints, validation."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from conftest import CUDA
from torch import nn
from torch.func import functional_call, grad, vmap

from regfn import optim
from regfn._tree import weights_only
from regfn.optim import apply_updates, chain, masked

F64 = torch.float64
F32 = torch.float32


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: intra-op threads only add contention on a loaded 2-core runner.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- problems


def _mlp(dtype):
    """The tutorial's 8-6-4-1 MLP (ReLU, sigmoid) with BCE on random labels."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 1), nn.Sigmoid()).to(
        dtype
    )
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=gen, dtype=dtype)
    y = (torch.rand(64, 1, generator=gen) > 0.5).to(dtype)
    return model, nn.functional.binary_cross_entropy, x, y


def _lsq(dtype):
    """Random least squares: a Linear(5, 1) with mean squared error."""
    torch.manual_seed(1)
    model = nn.Linear(5, 1).to(dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 5, generator=gen, dtype=dtype)
    y = torch.randn(32, 1, generator=gen, dtype=dtype)
    return model, nn.functional.mse_loss, x, y


TORCH = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    ("sgd", {"lr": 0.01, "momentum": 0.5, "maximize": True}),
    ("adam", {"lr": 1e-2}),
    ("adam", {"lr": 1e-2, "weight_decay": 1e-2, "amsgrad": True}),
    ("adam", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
    ("adamw", {"lr": 1e-2, "weight_decay": 0.1}),
    ("adamw", {"lr": 1e-2, "amsgrad": True}),
    ("rmsprop", {"lr": 1e-2}),
    ("rmsprop", {"lr": 1e-3, "alpha": 0.9, "centered": True, "momentum": 0.9, "weight_decay": 1e-2}),
    ("adagrad", {"lr": 0.1}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 1e-2, "initial_accumulator_value": 0.1}),
]
CASE_IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for name, kw in CASES]


def _rel_err(ours: dict, model: nn.Module) -> float:
    """max |ours - torch| over all entries, relative to the largest |weight|."""
    theirs = {k: v.detach() for k, v in model.named_parameters()}
    diff = max((ours[k] - theirs[k]).abs().max().item() for k in theirs)
    scale = max(v.abs().max().item() for v in theirs.values())
    return diff / scale


def _one_step(mode, opt, params, grads, state):
    """One step by ``update`` + ``apply_updates``, by ``step``, or in place by ``step_``."""
    if mode == "update":
        updates, state = opt.update(grads, state, params)
        return apply_updates(params, updates), state
    if mode == "step":
        return optim.step(opt, params, grads, state)
    return params, optim.step_(opt, params, grads, state)


MODES = ["update", "step", "step_"]


def _parity_errors(name, kwargs, problem, dtype, steps, mode="update"):
    model, loss_fn, x, y = problem(dtype)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    reference = TORCH[name](model.parameters(), foreach=False, **kwargs)
    opt = getattr(optim, name)(**kwargs)
    state = opt.init(params)
    grad_fn = grad(lambda p: loss_fn(functional_call(model, p, (x,)), y))
    errors = []
    for _ in range(steps):
        reference.zero_grad()
        loss_fn(model(x), y).backward()
        reference.step()
        params, state = _one_step(mode, opt, params, grad_fn(params), state)
        errors.append(_rel_err(params, model))
    return errors


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("problem", [_lsq, _mlp], ids=["lsq", "mlp"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_matches_torch_optim_float64(name, kwargs, problem, mode):
    errors = _parity_errors(name, kwargs, problem, F64, 200, mode)
    assert max(errors[:20]) < 1e-12, errors[:20]
    assert max(errors) < 1e-6


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("problem", [_lsq, _mlp], ids=["lsq", "mlp"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_matches_torch_optim_float32(name, kwargs, problem, mode):
    errors = _parity_errors(name, kwargs, problem, F32, 20, mode)
    assert max(errors) < 1e-5, errors


# --------------------------------------------------------------------------- vmap

_X = torch.randn(32, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
_Y = torch.randn(32, 1, generator=torch.Generator().manual_seed(3), dtype=F64)
_P0 = {
    "fc.weight": torch.randn(1, 5, generator=torch.Generator().manual_seed(4), dtype=F64),
    "fc.bias": torch.zeros(1, dtype=F64),
}


def _lsq_loss(p, x=_X, y=_Y):
    return ((x @ p["fc.weight"].T + p["fc.bias"] - y) ** 2).mean()


def _train(opt, params, steps=8):
    state = opt.init(params)
    for _ in range(steps):
        updates, state = opt.update(grad(_lsq_loss)(params), state, params)
        params = apply_updates(params, updates)
    return params


SWEEPS = [
    ("lr", lambda v: optim.sgd(lr=v, momentum=0.9), [0.01, 0.05, 0.1]),
    ("weight_decay", lambda v: optim.sgd(lr=0.05, momentum=0.9, weight_decay=v), [0.0, 0.01, 0.1]),
    ("momentum", lambda v: optim.sgd(lr=0.05, momentum=v), [0.0, 0.5, 0.9]),
    ("momentum_damped", lambda v: optim.sgd(lr=0.05, momentum=v, dampening=0.3), [0.0, 0.5, 0.9]),
    ("nesterov", lambda v: optim.sgd(lr=0.05, momentum=v, nesterov=True), [0.1, 0.5, 0.9]),
    ("adam_lr", lambda v: optim.adam(lr=v, amsgrad=True), [1e-3, 1e-2, 1e-1]),
    ("adam_betas", lambda v: optim.adam(lr=1e-2, betas=(v, 0.9 + v / 10)), [0.0, 0.5, 0.9]),
    ("adamw_wd", lambda v: optim.adamw(lr=1e-2, weight_decay=v), [0.0, 0.01, 0.1]),
    ("rmsprop", lambda v: optim.rmsprop(lr=1e-2, alpha=v, momentum=v, centered=True), [0.5, 0.9, 0.99]),
    ("adagrad", lambda v: optim.adagrad(lr=0.1, lr_decay=v, initial_accumulator_value=v), [0.0, 0.1, 0.5]),
    ("prox_l1", lambda v: chain(optim.sgd(lr=0.05), optim.prox_l1(v, lr=0.05)), [0.0, 0.1, 1.0]),
    ("max_norm", lambda v: chain(optim.sgd(lr=0.5), optim.max_norm(v)), [0.1, 0.5, 10.0]),
    ("clip", lambda v: chain(optim.clip_by_global_norm(v), optim.scale_by_learning_rate(0.1)), [0.01, 0.1, 100.0]),
    ("schedule", lambda v: optim.sgd(lr=optim.linear_warmup(v, 3, after=optim.cosine_decay(v, 5))), [0.01, 0.1, 0.2]),
]


@pytest.mark.parametrize(("factory", "values"), [s[1:] for s in SWEEPS], ids=[s[0] for s in SWEEPS])
def test_vmap_over_hyperparameter_equals_separate_runs(factory, values):
    swept = vmap(lambda v: _train(factory(v), _P0))(torch.tensor(values, dtype=F64))
    for i, v in enumerate(values):
        single = _train(factory(v), _P0)  # Python float: the validated, shortcut path
        for k in single:
            torch.testing.assert_close(swept[k][i], single[k], rtol=1e-10, atol=1e-12)


def test_vmap_over_params_and_states():
    opt = optim.adam(lr=0.05)
    batch = {k: torch.stack([v + i for i in range(3)]) for k, v in _P0.items()}
    states = vmap(opt.init)(batch)

    def step(p, s):
        u, s = opt.update(grad(_lsq_loss)(p), s, p)
        return apply_updates(p, u), s

    p, s = batch, states
    for _ in range(4):
        p, s = vmap(step)(p, s)
    for i in range(3):
        single = _train(opt, {k: v[i] for k, v in batch.items()}, steps=4)
        for k in single:
            torch.testing.assert_close(p[k][i], single[k], rtol=1e-12, atol=1e-14)


def test_grad_through_update_wrt_lr():
    def final_loss(lr):
        return _lsq_loss(_train(optim.sgd(lr=lr, momentum=0.9), _P0, steps=3))

    lr = torch.tensor(0.05, dtype=F64)
    g = grad(final_loss)(lr)
    h = 1e-6
    fd = (final_loss(lr + h) - final_loss(lr - h)) / (2 * h)
    torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------- compile


def _mlp_fn(p, x):
    h = torch.relu(x @ p["fc1.weight"].T + p["fc1.bias"])
    h = torch.relu(h @ p["fc2.weight"].T + p["fc2.bias"])
    return torch.sigmoid(h @ p["fc3.weight"].T + p["fc3.bias"])


def _mlp_params():
    model = _mlp(F32)[0]
    names = {"0": "fc1", "2": "fc2", "4": "fc3"}
    return {f"{names[k.split('.')[0]]}.{k.split('.')[1]}": v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.sgd(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3),
        lambda: chain(
            optim.clip_by_global_norm(1.0),
            optim.adamw(lr=optim.linear_warmup(1e-2, 2), amsgrad=True),
            masked(optim.prox_l1(1e-2, lr=1e-2), weights_only),
        ),
    ],
    ids=["sgd-momentum", "adamw-clip-prox-schedule"],
)
def test_compile_matches_eager(make):
    _, _, x, y = _mlp(F32)
    opt = make()

    def step(params, state):
        loss = lambda p: nn.functional.binary_cross_entropy(_mlp_fn(p, x), y)
        updates, state = opt.update(grad(loss)(params), state, params)
        return apply_updates(params, updates), state

    torch.compiler.reset()
    compiled = torch.compile(step, fullgraph=True)
    p_e = p_c = _mlp_params()
    s_e = s_c = opt.init(p_e)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(3):
            p_e, s_e = step(p_e, s_e)
            p_c, s_c = compiled(p_c, s_c)
    for k in p_e:
        torch.testing.assert_close(p_c[k], p_e[k], rtol=1e-6, atol=1e-6)
    torch.compiler.reset()


# --------------------------------------------------------------------------- primitives


def test_prox_l1_soft_threshold_exact_zeros():
    gen = torch.Generator().manual_seed(5)
    w = {"w": torch.randn(20, 10, generator=gen, dtype=F64), "b": torch.randn(10, generator=gen, dtype=F64)}
    u = {k: 0.1 * torch.randn(v.shape, generator=gen, dtype=F64) for k, v in w.items()}
    opt = chain(optim.scale(1.0), optim.prox_l1(2.0, lr=0.25))
    out, _ = opt.update(u, opt.init(w), w)
    new = apply_updates(w, out)
    for k in w:
        z = w[k] + u[k]
        expected = torch.sign(z) * torch.clamp(z.abs() - 0.5, min=0)
        torch.testing.assert_close(new[k], expected, rtol=1e-14, atol=1e-15)
        inside = z.abs() <= 0.5
        assert inside.any()
        assert (new[k][inside] == 0).all()


def test_prox_l1_mask_and_schedule():
    w = {"w": torch.full((2, 2), 0.3), "b": torch.full((2,), 0.3)}
    opt = optim.prox_l1(1.0, lr=optim.exponential_decay(0.2, 0.5), mask=weights_only)
    state = opt.init(w)
    zeros = {k: torch.zeros_like(v) for k, v in w.items()}
    out, state = opt.update(zeros, state, w)
    assert torch.allclose(apply_updates(w, out)["w"], torch.full((2, 2), 0.1))
    assert torch.equal(out["b"], zeros["b"])
    out, state = opt.update(zeros, state, w)  # threshold 0.1 at step 1
    assert torch.allclose(apply_updates(w, out)["w"], torch.full((2, 2), 0.2))


def test_max_norm_rows():
    gen = torch.Generator().manual_seed(6)
    w = {"fc.weight": torch.randn(12, 7, generator=gen, dtype=F64), "fc.bias": 5 * torch.ones(12, dtype=F64)}
    u = {k: torch.randn(v.shape, generator=gen, dtype=F64) for k, v in w.items()}
    c = 2.5
    opt = optim.max_norm(c)
    out, _ = opt.update(u, opt.init(w), w)
    new = apply_updates(w, out)
    z = w["fc.weight"] + u["fc.weight"]
    norms = z.norm(dim=1)
    assert (norms > c).any()
    assert (norms <= c).any()
    assert (new["fc.weight"].norm(dim=1) <= c * (1 + 1e-12)).all()
    inside = norms <= c
    assert torch.equal(out["fc.weight"][inside], u["fc.weight"][inside])  # untouched rows
    torch.testing.assert_close(new["fc.weight"][~inside].norm(dim=1), torch.full(((~inside).sum(),), c, dtype=F64))
    assert torch.equal(out["fc.bias"], u["fc.bias"])  # 1-d params pass through


def test_max_norm_axis_conv():
    w = {"conv.weight": torch.randn(4, 3, 2, 2) * 5}
    opt = optim.max_norm(1.0, axis=(1, 2, 3))
    new = apply_updates(w, opt.update({"conv.weight": torch.zeros(4, 3, 2, 2)}, opt.init(w), w)[0])
    assert (new["conv.weight"].flatten(1).norm(dim=1) <= 1 + 1e-6).all()


def test_clip_by_global_norm_closed_form():
    gen = torch.Generator().manual_seed(7)
    u = {"a": torch.randn(3, 4, generator=gen, dtype=F64), "b": torch.randn(5, generator=gen, dtype=F64)}
    total = math.sqrt(sum((v**2).sum().item() for v in u.values()))
    t = optim.clip_by_global_norm(total / 2)
    out, _ = t.update(u, t.init(u))
    for k in u:
        torch.testing.assert_close(out[k], u[k] / 2, rtol=1e-14, atol=0)
    t = optim.clip_by_global_norm(total * 2)
    out, _ = t.update(u, t.init(u))
    assert all(torch.equal(out[k], u[k]) for k in u)


def test_masked_leaves_unselected_untouched():
    p = {"fc.weight": torch.ones(2, 3), "fc.bias": torch.ones(2)}
    g = {"fc.weight": torch.ones(2, 3), "fc.bias": torch.ones(2)}
    opt = masked(optim.adam(lr=0.1, weight_decay=0.5), weights_only)
    state = opt.init(p)
    assert set(state[1]["exp_avg"]) == {"fc.weight"}
    out, _ = opt.update(g, state, p)
    assert out["fc.bias"] is g["fc.bias"]
    assert not torch.equal(out["fc.weight"], g["fc.weight"])


def test_add_decayed_weights_mask_and_chain_order():
    p = {"fc.weight": torch.ones(2, 2), "fc.bias": torch.ones(2)}
    t = optim.add_decayed_weights(0.1, mask=weights_only)
    out, _ = t.update({k: torch.zeros_like(v) for k, v in p.items()}, t.init(p), p)
    assert torch.allclose(out["fc.weight"], torch.full((2, 2), 0.1))
    assert torch.equal(out["fc.bias"], torch.zeros(2))
    with pytest.raises(ValueError, match="prox_l1"):
        chain(optim.prox_l1(0.1), optim.scale(2.0))
    with pytest.raises(ValueError, match="max_norm"):
        chain(chain(optim.sgd(0.1), optim.max_norm(1.0)), optim.scale(2.0))
    chain(optim.sgd(0.1), optim.max_norm(1.0), optim.prox_l1(0.1))  # post-step tail is fine
    with pytest.raises(ValueError, match="params"):
        t.update(p, t.init(p))


def test_step_sizes_closed_form():
    steps = torch.arange(12)
    cos = optim.cosine_decay(1.0, 10, end_value=0.1)
    exp = optim.exponential_decay(2.0, 0.5, transition_steps=2, staircase=True)
    warm = optim.linear_warmup(1.0, 4, init_value=0.2)
    for s in range(12):
        t = min(s, 10)
        assert math.isclose(float(cos(steps[s])), 0.1 + 0.9 * (1 + math.cos(math.pi * t / 10)) / 2, rel_tol=1e-12)
        assert math.isclose(float(exp(steps[s])), 2.0 * 0.5 ** (s // 2), rel_tol=1e-12)
        assert math.isclose(float(warm(steps[s])), 0.2 + 0.8 * min(s, 4) / 4, rel_tol=1e-12)
        assert math.isclose(float(optim.constant_step_size(0.3)(steps[s])), 0.3)
    sgd = _train(optim.sgd(lr=optim.constant_step_size(0.05), momentum=0.9), _P0)
    ref = _train(optim.sgd(lr=0.05, momentum=0.9), _P0)
    for k in ref:
        torch.testing.assert_close(sgd[k], ref[k], rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- hygiene


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_inputs_never_mutated_and_state_roundtrips(name, kwargs):
    gen = torch.Generator().manual_seed(8)
    p = {"fc.weight": torch.randn(3, 4, generator=gen), "fc.bias": torch.randn(3, generator=gen)}
    g = {k: torch.randn(v.shape, generator=gen) for k, v in p.items()}
    opt = getattr(optim, name)(**kwargs)
    state = opt.init(p)
    state = opt.update(g, state, p)[1]  # a non-trivial state
    snapshot = copy.deepcopy((p, g, state))
    versions = [t._version for t in _leaves((p, g, state))]
    _, new_state = opt.update(g, state, p)
    apply_updates(p, g)
    assert [t._version for t in _leaves((p, g, state))] == versions
    for a, b in zip(_leaves((p, g, state)), _leaves(snapshot), strict=True):
        assert torch.equal(a, b)
    buf = io.BytesIO()
    torch.save(new_state, buf)
    buf.seek(0)
    loaded = torch.load(buf)
    assert all(torch.equal(a, b) for a, b in zip(_leaves(loaded), _leaves(new_state), strict=True))


def _leaves(tree):
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _leaves(tree[k])]
    if isinstance(tree, (tuple, list)):
        return [x for t in tree for x in _leaves(t)]
    return []


BAD = [
    (optim.sgd, {"lr": -0.1}, ValueError, "lr"),
    (optim.sgd, {"lr": float("nan")}, ValueError, "lr"),
    (optim.sgd, {"lr": 0.1, "momentum": -0.5}, ValueError, "momentum"),
    (optim.sgd, {"lr": 0.1, "momentum": 0.9, "dampening": -0.1}, ValueError, "dampening"),
    (optim.sgd, {"lr": 0.1, "momentum": 0.9, "dampening": 1.5}, ValueError, "dampening"),
    (optim.sgd, {"lr": 0.1, "weight_decay": -1e-4}, ValueError, "weight_decay"),
    (optim.sgd, {"lr": 0.1, "nesterov": True}, ValueError, "momentum"),
    (optim.sgd, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, ValueError, "dampening"),
    (optim.sgd, {"lr": "0.1"}, TypeError, "lr"),
    (optim.sgd, {"lr": True}, TypeError, "lr"),
    (optim.sgd, {"lr": torch.tensor([0.1, 0.2])}, ValueError, "lr"),
    (optim.sgd, {"lr": 0.1, "nesterov": "yes"}, TypeError, "nesterov"),
    (optim.adam, {"betas": (1.0, 0.999)}, ValueError, "betas[0]"),
    (optim.adam, {"betas": (0.9, -0.1)}, ValueError, "betas[1]"),
    (optim.adam, {"betas": 0.9}, TypeError, "betas"),
    (optim.adam, {"eps": -1e-8}, ValueError, "eps"),
    (optim.adam, {"weight_decay": -1.0}, ValueError, "weight_decay"),
    (optim.adam, {"amsgrad": 1}, TypeError, "amsgrad"),
    (optim.adamw, {"lr": -1e-3}, ValueError, "lr"),
    (optim.adamw, {"weight_decay": -0.01}, ValueError, "weight_decay"),
    (optim.rmsprop, {"alpha": -0.1}, ValueError, "alpha"),
    (optim.rmsprop, {"alpha": 1.5}, ValueError, "alpha"),
    (optim.rmsprop, {"momentum": -0.9}, ValueError, "momentum"),
    (optim.rmsprop, {"eps": -1.0}, ValueError, "eps"),
    (optim.adagrad, {"lr_decay": -0.1}, ValueError, "lr_decay"),
    (optim.adagrad, {"initial_accumulator_value": -1.0}, ValueError, "initial_accumulator_value"),
    (optim.adagrad, {"eps": -1e-10}, ValueError, "eps"),
    (optim.prox_l1, {"strength": -1.0}, ValueError, "strength"),
    (optim.prox_l1, {"strength": 0.1, "lr": -1.0}, ValueError, "lr"),
    (optim.max_norm, {"max_value": -1.0}, ValueError, "max_value"),
    (optim.max_norm, {"max_value": 1.0, "axis": "rows"}, TypeError, "axis"),
    (optim.clip_by_global_norm, {"max_norm": 0.0}, ValueError, "max_norm"),
    (optim.scale, {"step_size": "x"}, TypeError, "step_size"),
    (optim.scale_by_step_size, {"fn": 0.1}, TypeError, "fn must be a callable"),
    (optim.cosine_decay, {"init_value": 0.1, "decay_steps": 0}, ValueError, "decay_steps"),
    (optim.linear_warmup, {"peak_value": 0.1, "warmup_steps": 2.5}, TypeError, "warmup_steps"),
]


@pytest.mark.parametrize(
    ("factory", "kwargs", "error", "name"), BAD, ids=[f"{f.__name__}-{n}-{i}" for i, (f, _, _, n) in enumerate(BAD)]
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, error, name):
    with pytest.raises(error) as info:
        factory(**kwargs)
    message = str(info.value)
    assert name in message
    assert factory.__name__ in message
    if error is ValueError and not isinstance(kwargs.get(name), torch.Tensor) and name in kwargs:
        assert repr(kwargs[name]) in message  # the offending value


def test_tensor_hyperparameters_are_accepted_without_inspection():
    lr = torch.tensor([0.1], dtype=F64)  # one element: reshaped to 0-d, like torch's _to_scalar
    opt = optim.sgd(lr=lr, momentum=torch.tensor(0.9, dtype=F64), weight_decay=torch.tensor(0.0, dtype=F64))
    ref = optim.sgd(lr=0.1, momentum=0.9)
    a, b = _train(opt, _P0, 3), _train(ref, _P0, 3)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.adam(lr=0.1, amsgrad=True),
        lambda: optim.rmsprop(lr=0.01, centered=True),
        lambda: optim.rmsprop(lr=0.01),
        lambda: optim.adagrad(lr=0.1),
    ],
    ids=["adam-amsgrad", "rmsprop-centered", "rmsprop", "adagrad"],
)
def test_eager_inplace_fast_path_equals_pure_path(make):
    # Plain eager calls reuse their own temporaries in place; under autograd
    # (inputs requiring grad) the pure out-of-place ops run. Same numbers.
    gen = torch.Generator().manual_seed(9)
    p = {"w": torch.randn(4, 3, generator=gen, dtype=F64)}
    grads = [{"w": torch.randn(4, 3, generator=gen, dtype=F64)} for _ in range(3)]
    opt = make()
    s_fast = s_pure = opt.init(p)
    for g in grads:
        u_fast, s_fast = opt.update(g, s_fast, p)
        u_pure, s_pure = opt.update({"w": g["w"].clone().requires_grad_()}, s_pure, p)
        torch.testing.assert_close(u_fast["w"], u_pure["w"].detach(), rtol=1e-15, atol=0)


# --------------------------------------------------------------------------- step and step_

COMPOSITES = [
    ("masked-prox", lambda: chain(optim.sgd(lr=0.05, momentum=0.9), masked(optim.prox_l1(0.1, lr=0.05), weights_only))),
    ("max_norm", lambda: chain(optim.adam(lr=0.1), optim.max_norm(0.5))),
    ("schedule", lambda: optim.adam(lr=optim.linear_warmup(0.1, 2, after=optim.cosine_decay(0.1, 5)))),
    ("tensor-lr", lambda: optim.rmsprop(lr=torch.tensor(0.01, dtype=F64), momentum=torch.tensor(0.5, dtype=F64))),
    ("tensor-lr-quotient", lambda: optim.adagrad(lr=torch.tensor(0.1, dtype=F64))),
    ("nested", lambda: chain(optim.clip_by_global_norm(1.0), chain(optim.scale_by_adam(), optim.scale(-0.01)))),
    ("bare-scale", lambda: optim.scale(-0.1)),
    ("no-final-scale", lambda: chain(optim.scale_by_learning_rate(0.1), optim.trace(0.9))),
    ("sgd-l2-folded", lambda: optim.sgd(lr=0.1, weight_decay=0.05)),
    (
        "masked-decay",
        lambda: chain(
            optim.scale_by_adam(), optim.add_decayed_weights(0.1, mask=weights_only), optim.scale_by_learning_rate(0.01)
        ),
    ),
    (
        "adamw-tensors",
        lambda: optim.adamw(lr=optim.exponential_decay(0.05, 0.9), weight_decay=torch.tensor(0.1, dtype=F64)),
    ),
    ("decay-zero", lambda: optim.adamw(lr=0.01, weight_decay=0.0)),
]
STEP_CASES = [(f"{n}-{CASE_IDS[i]}", lambda n=n, kw=kw: getattr(optim, n)(**kw)) for i, (n, kw) in enumerate(CASES)]
STEP_CASES += COMPOSITES


def _random_problem(seed=10):
    gen = torch.Generator().manual_seed(seed)
    p = {"fc.weight": torch.randn(4, 3, generator=gen, dtype=F64), "fc.bias": torch.randn(4, generator=gen, dtype=F64)}
    grads = [{k: torch.randn(v.shape, generator=gen, dtype=F64) for k, v in p.items()} for _ in range(6)]
    return p, grads


@pytest.mark.parametrize("make", [c[1] for c in STEP_CASES], ids=[c[0] for c in STEP_CASES])
def test_step_and_inplace_step_equal_update_then_apply(make):
    opt = make()
    p0, grads = _random_problem()
    runs = {}
    for mode in MODES:
        p = {k: v.clone() for k, v in p0.items()}
        s = opt.init(p)
        for g in grads:
            p, s = _one_step(mode, opt, p, g, s)
        runs[mode] = (p, s)
    for k in p0:  # step folds the learning rate into one fused op: one rounding apart
        torch.testing.assert_close(runs["step"][0][k], runs["update"][0][k], rtol=1e-13, atol=1e-15)
        # the in-place step runs step's exact operations, into the old tensors
        assert torch.equal(runs["step_"][0][k], runs["step"][0][k])
    for a, b in zip(_leaves(runs["step_"][1]), _leaves(runs["step"][1]), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_inplace_step_overwrites_params_and_state_and_reads_grads_only(name, kwargs):
    opt = getattr(optim, name)(**kwargs)
    p, grads = _random_problem()
    state = opt.update(grads[0], opt.init(p), p)[1]  # a non-trivial state
    g = grads[1]
    big = [t for t in _leaves(state) if t.ndim > 0]
    ids = [id(t) for t in list(p.values()) + big]
    ptrs = [t.data_ptr() for t in list(p.values()) + big]
    g_versions = [t._version for t in g.values()]
    expected_p, expected_state = optim.step(opt, {k: v.clone() for k, v in p.items()}, g, copy.deepcopy(state))
    new_state = optim.step_(opt, p, g, state)
    assert [t._version for t in g.values()] == g_versions
    new_big = [t for t in _leaves(new_state) if t.ndim > 0]
    assert [id(t) for t in list(p.values()) + new_big] == ids  # the same tensors ...
    assert [t.data_ptr() for t in list(p.values()) + new_big] == ptrs  # ... and storage
    for k in p:
        assert torch.equal(p[k], expected_p[k])
    for a, b in zip(_leaves(new_state), _leaves(expected_state), strict=True):
        assert torch.equal(a, b)


def test_step_is_pure_and_donation_ends_with_step_():
    opt = optim.adam(lr=0.1, amsgrad=True)
    p, grads = _random_problem()
    state = opt.update(grads[0], opt.init(p), p)[1]
    snapshot = copy.deepcopy((p, state))
    versions = [t._version for t in _leaves((p, state))]
    optim.step(opt, p, grads[1], state)
    with pytest.raises(ValueError, match="state has"):
        optim.step_(opt, p, grads[1], state[:1])  # fails inside the donating block
    opt.update(grads[1], state, p)  # after step_: pure again
    assert [t._version for t in _leaves((p, state))] == versions
    assert all(torch.equal(a, b) for a, b in zip(_leaves((p, state)), _leaves(snapshot), strict=True))


def test_inplace_step_on_module_parameters_matches_torch_optim():
    model, loss_fn, x, y = _mlp(F32)
    reference = copy.deepcopy(model)
    torch_opt = torch.optim.Adam(reference.parameters(), lr=1e-2, weight_decay=1e-2, foreach=False)
    opt = optim.adam(lr=1e-2, weight_decay=1e-2)
    params = dict(model.named_parameters())  # nn.Parameters that require grad
    state = opt.init(params)
    for _ in range(10):
        torch_opt.zero_grad()
        loss_fn(reference(x), y).backward()
        torch_opt.step()
        model.zero_grad()
        loss_fn(model(x), y).backward()
        state = optim.step_(opt, params, {k: v.grad for k, v in params.items()}, state)
    assert all(v.requires_grad for v in model.parameters())
    assert _rel_err({k: v.detach() for k, v in model.named_parameters()}, reference) < 1e-5


def test_step_under_vmap_and_compile():
    factory = lambda lr: optim.sgd(lr=lr, momentum=0.9, weight_decay=1e-2)

    def train(lr, params=_P0, steps=5):
        opt = factory(lr)
        state = opt.init(params)
        for _ in range(steps):
            params, state = optim.step(opt, params, grad(_lsq_loss)(params), state)
        return params

    lrs = [0.01, 0.05, 0.1]
    swept = vmap(train)(torch.tensor(lrs, dtype=F64))
    for i, lr in enumerate(lrs):
        single = train(lr)
        for k in single:
            torch.testing.assert_close(swept[k][i], single[k], rtol=1e-12, atol=1e-14)
    torch.compiler.reset()
    compiled = torch.compile(lambda lr: train(lr), fullgraph=True)
    out = compiled(torch.tensor(0.05, dtype=F64))
    for k in out:
        torch.testing.assert_close(out[k], train(0.05)[k], rtol=1e-12, atol=1e-14)
    torch.compiler.reset()


def test_step_rejects_bad_arguments():
    opt = optim.sgd(lr=0.1)
    p = {"w": torch.ones(2)}
    for fn in (optim.step, optim.step_):
        with pytest.raises(ValueError, match="params and grads"):
            fn(opt, p, {"v": torch.ones(2)}, opt.init(p))
        with pytest.raises(TypeError, match=fn.__name__):
            fn(lambda u: u, p, p, ())


def test_inplace_step_compiles():
    opt = optim.adamw(lr=0.1, weight_decay=0.1)
    p_eager, grads = _random_problem()
    p_comp = {k: v.clone() for k, v in p_eager.items()}
    s_eager, s_comp = opt.init(p_eager), opt.init(p_comp)
    torch.compiler.reset()
    compiled = torch.compile(lambda p, g, s: optim.step_(opt, p, g, s), fullgraph=True)
    for g in grads[:3]:
        s_eager = optim.step_(opt, p_eager, g, s_eager)
        s_comp = compiled(p_comp, g, s_comp)
    for k in p_eager:
        torch.testing.assert_close(p_comp[k], p_eager[k], rtol=1e-12, atol=1e-14)
    torch.compiler.reset()


@CUDA
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=CASE_IDS)
def test_step_and_inplace_step_cuda_match_cpu(name, kwargs):
    opt = getattr(optim, name)(**kwargs)
    p_cpu, grads = _random_problem()
    results = {}
    for device in ("cpu", "cuda"):
        for mode in ("step", "step_"):
            p = {k: v.to(device) for k, v in p_cpu.items()}
            s = opt.init(p)
            for g in grads:
                p, s = _one_step(mode, opt, p, {k: v.to(device) for k, v in g.items()}, s)
            results[device, mode] = {k: v.cpu() for k, v in p.items()}
    for k in p_cpu:
        assert torch.equal(results["cuda", "step_"][k], results["cuda", "step"][k])
        torch.testing.assert_close(results["cuda", "step_"][k], results["cpu", "step_"][k], rtol=1e-12, atol=1e-14)


def test_former_schedule_names_still_work():
    """The step-size functions were "schedules" before "schedule" came to mean regfn.search's alone."""
    assert optim.constant_schedule is optim.constant_step_size
    step = torch.tensor(3)
    fn = optim.exponential_decay(1.0, 0.5)
    params = {"w": torch.ones(2)}
    for make in (optim.scale_by_schedule, optim.scale_by_step_size):
        t = make(fn)
        state = t.init(params)
        for _ in range(4):
            updates, state = t.update({"w": torch.ones(2)}, state)
        assert torch.equal(updates["w"], torch.full((2,), 0.125)), make  # 0.5 ** 3 at step 3
        assert int(state["step"]) == int(step) + 1
