"""Tests for regfn.nn: keyed dropout, the MLP as pure functions, the nn.Module bridge."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import pathlib
import sys

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F

import regfn.random as rr
from regfn.nn import (
    Model,
    dropout,
    flax_dropout_key,
    functionalize,
    mc_dropout,
    mlp,
    mlp_apply,
    mlp_init,
    numpy_dropout,
    params_from_module,
)

GOLDEN = pathlib.Path(__file__).parent / "golden"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class Tutorial(tnn.Module):
    """The seed tutorial's model (F.dropout defaults to training=True: always on)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p
        self.fc1 = tnn.Linear(8, 6)
        self.fc2 = tnn.Linear(6, 4)
        self.fc3 = tnn.Linear(4, 1)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=self.p)
        x = F.relu(self.fc2(x))
        x = F.dropout(x, p=self.p)
        return torch.sigmoid(self.fc3(x))


def _ulp(a: torch.Tensor, b: torch.Tensor) -> int:
    iv = {torch.float32: torch.int32, torch.float16: torch.int16, torch.float64: torch.int64}[a.dtype]
    return int((a.view(iv).long() - b.view(iv).long()).abs().max()) if a.numel() else 0


# ----------------------------------------------------------------- dropout statistics


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_dropout_rate_and_mean(p, as_tensor):
    n = 1_000_000
    rate = torch.tensor(p) if as_tensor else p
    y = dropout(rr.key(int(p * 10)), torch.ones(n), rate)
    keep = 1 - p
    kept = (y != 0).double().mean().item()
    assert abs(kept - keep) < 5 * math.sqrt(keep * (1 - keep) / n)
    assert torch.allclose(y[y != 0], torch.tensor(1 / keep))
    # out = mask / keep has mean 1 and variance (1 - keep) / keep
    assert abs(y.double().mean().item() - 1) < 5 * math.sqrt((1 - keep) / keep / n)


@pytest.mark.parametrize("level", [0.0, 0.2, 0.5, 0.9])
def test_numpy_dropout_rate_and_mean(level):
    n = 1_000_000
    y = numpy_dropout(np.ones(n), level, np.random.default_rng(0))
    keep = 1 - level
    assert abs((y != 0).mean() - keep) <= 5 * math.sqrt(keep * (1 - keep) / n)
    assert abs(y.mean() - 1) <= 5 * math.sqrt((1 - keep) / keep / n) + 1e-12
    assert set(np.unique(y)) <= {0.0, 1 / keep}


@pytest.mark.parametrize("level", [-0.1, 1.0, 1.5, float("nan"), "0.5"])
def test_numpy_dropout_rejects_bad_level(level):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        numpy_dropout(np.ones(3), level, np.random.default_rng(0))


# ----------------------------------------------------------------- dropout semantics


def test_dropout_off_and_zero_rate_return_input_without_key():
    x = torch.randn(3, 4)
    assert dropout(None, x, 0.5, train=False) is x
    assert dropout(None, x, 0.0) is x
    assert dropout(None, x, 0) is x


def test_dropout_deterministic_and_key_dependent():
    x = torch.randn(100)
    a = dropout(rr.key(0), x, 0.5)
    assert torch.equal(a, dropout(rr.key(0), x, 0.5))
    assert not torch.equal(a, dropout(rr.key(1), x, 0.5))


def test_dropout_mask_is_bernoulli_of_keep():
    x = torch.randn(7, 9)
    k = rr.key(3)
    y = dropout(k, x, 0.3)
    mask = rr.bernoulli(k, 0.7, (7, 9))
    assert torch.equal(y != 0, mask)
    assert torch.equal(y[mask], x[mask] / 0.7)


def test_broadcast_dims_share_mask():
    x = torch.randn(3, 4, 5) + 10  # no zeros
    y = dropout(rr.key(0), x, 0.5, broadcast_dims=(0, -1))
    m = y != 0
    assert torch.equal(m, m[:1, :, :1].expand_as(m))
    assert torch.equal(m[0, :, 0], rr.bernoulli(rr.key(0), 0.5, (1, 4, 1)).reshape(4))
    assert torch.equal(dropout(rr.key(0), x, 0.5, broadcast_dims=2), dropout(rr.key(0), x, 0.5, broadcast_dims=(-1,)))


def test_gradients_zero_for_dropped_and_scaled_for_kept():
    x = torch.randn(50)
    for p in (0.3, torch.tensor(0.3)):
        g = torch.func.grad(lambda x, p=p: dropout(rr.key(1), x, p).sum())(x)
        mask = rr.bernoulli(rr.key(1), 0.7, (50,))
        assert torch.equal(g == 0, ~mask)
        assert torch.allclose(g[mask], torch.tensor(1 / 0.7))


@pytest.mark.parametrize("p", [1.0, 1, torch.tensor(1.0), torch.tensor(1.0, dtype=torch.float64)])
def test_rate_one_gives_zeros_and_finite_grads(p):
    x = torch.randn(20)
    assert torch.equal(dropout(rr.key(0), x, p), torch.zeros(20))
    g = torch.func.grad(lambda x: dropout(rr.key(0), x, p).sum())(x)
    assert torch.equal(g, torch.zeros(20))
    if isinstance(p, torch.Tensor):
        gp = torch.func.grad(lambda p: dropout(rr.key(0), x, p).sum())(p)
        assert torch.isfinite(gp).all()


def test_errors():
    x = torch.randn(3, 4)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            dropout(rr.key(0), x, bad)
    for bad in ("0.5", True, None):
        with pytest.raises(TypeError):
            dropout(rr.key(0), x, bad)
    with pytest.raises(ValueError, match=r"regfn\.random\.key\(0\)"):
        dropout(None, x, 0.5)
    with pytest.raises(ValueError, match=r"regfn\.random\.key\(0\)"):
        dropout(None, x, torch.tensor(0.0))  # a tensor rate always needs a key
    with pytest.raises(ValueError, match="out of range"):
        dropout(rr.key(0), x, 0.5, broadcast_dims=(2,))
    with pytest.raises(ValueError, match="out of range"):
        dropout(rr.key(0), x, 0.5, broadcast_dims=(-3,))
    with pytest.raises(ValueError, match="repeats"):
        dropout(rr.key(0), x, 0.5, broadcast_dims=(1, -1))
    with pytest.raises(TypeError):
        dropout(rr.key(0), x, 0.5, broadcast_dims=(0.5,))
    with pytest.raises(ValueError, match="out of range"):  # checked even when dropout is off
        dropout(None, x, 0.5, train=False, broadcast_dims=(5,))
    with pytest.raises(ValueError, match="0-d"):
        dropout(rr.key(0), x, torch.tensor([0.5, 0.5]))
    with pytest.raises(TypeError):
        dropout(rr.key(0), torch.ones(3, dtype=torch.int64), 0.5)


def test_vmap_over_keys_equals_loop():
    x = torch.randn(4, 6)
    keys = rr.split(rr.key(0), 5)
    out = torch.func.vmap(lambda k: dropout(k, x, 0.4))(keys)
    for i in range(5):
        assert torch.equal(out[i], dropout(keys[i], x, 0.4))


def test_vmap_over_rates_equals_loop_and_float_masks():
    x = torch.randn(4, 6)
    for dtype in (torch.float32, torch.float64):
        rates = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.9, 1.0], dtype=dtype)
        out = torch.func.vmap(lambda p: dropout(rr.key(2), x, p))(rates)
        for i, p in enumerate(rates):
            assert torch.equal(out[i], dropout(rr.key(2), x, p))
            # same mask as the Python-float rate (float32 keep == float32(1.0 - p) here)
            assert torch.equal(out[i] != 0, dropout(rr.key(2), x, float(p)) != 0)
        assert torch.equal(out[0], x)
        assert torch.equal(out[-1], torch.zeros_like(x))
        g = torch.func.vmap(torch.func.grad(lambda p: dropout(rr.key(2), x, p).sum()))(rates)
        assert torch.isfinite(g).all()


def test_dtypes():
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        x = torch.randn(50, dtype=dtype)
        for p in (0.3, torch.tensor(0.3)):
            y = dropout(rr.key(0), x, p)
            assert y.dtype == dtype
            assert torch.equal(y != 0, rr.bernoulli(rr.key(0), 0.7, (50,)) & (x != 0))


# ----------------------------------------------------------------- Flax compatibility


def _golden_cases():
    return json.loads((GOLDEN / "flax_dropout.json").read_text())


def _check_case(case):
    dtype = getattr(torch, case["dtype"])
    x = torch.tensor(case["x"], dtype=dtype).reshape(case["shape"])
    ref = torch.tensor(case["out"], dtype=dtype).reshape(case["shape"])
    k = flax_dropout_key(rr.key(case["seed"]), case["path"], case["count"])
    assert k.tolist() == case["flax_key"]
    p = torch.tensor(case["rate"], dtype=torch.float32) if case["rate_is_array"] else case["rate"]
    y = dropout(k, x, p, broadcast_dims=case["broadcast_dims"])
    assert torch.equal(y != 0, ref != 0)
    assert _ulp(y, ref) <= 2


def test_flax_golden_file():
    payload = _golden_cases()
    assert payload["jax_version"]
    assert payload["flax_version"]
    assert payload["flax_fix_rng_separator"] is False
    kinds = {c["kind"] for c in payload["cases"]}
    assert kinds == {"top", "broadcast", "two", "shared", "nested"}
    for case in payload["cases"]:
        _check_case(case)


def test_flax_live():
    pytest.importorskip("flax")
    spec = importlib.util.spec_from_file_location("make_flax_golden", GOLDEN / "make_flax_golden.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen  # flax modules are dataclasses: their module must be importable
    try:
        spec.loader.exec_module(gen)
    finally:
        sys.modules.pop(spec.name, None)
    for case in gen.cases(seeds=(7, 123456)):
        _check_case(case)


def test_flax_live_mlp_paths():
    """Two Dropout layers in a Flax MLP: regfn reproduces the whole forward pass's masks."""
    flax = pytest.importorskip("flax")
    import jax

    nn = flax.linen

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dropout(0.5, deterministic=False)(nn.relu(nn.Dense(6)(x)))
            x = nn.Dropout(0.2, deterministic=False)(nn.relu(nn.Dense(4)(x)))
            return nn.Dense(1)(x)

    x = jax.random.normal(jax.random.key(0), (5, 8))
    variables = Net().init(jax.random.key(1), x)
    _, state = Net().apply(variables, x, rngs={"dropout": jax.random.key(9)}, capture_intermediates=True)
    inter = {
        name: torch.tensor(np.asarray(v["__call__"][0]))
        for name, v in state["intermediates"].items()
        if name != "__call__"
    }
    for i, rate in enumerate((0.5, 0.2)):
        before = torch.relu(inter[f"Dense_{i}"])
        ours = dropout(flax_dropout_key(rr.key(9), (f"Dropout_{i}",)), before, rate)
        assert torch.equal(ours == 0, inter[f"Dropout_{i}"] == 0)
        assert _ulp(ours, inter[f"Dropout_{i}"]) <= 2


def test_flax_dropout_key_conventions():
    k = rr.key(5)
    assert torch.equal(flax_dropout_key(5, "Block_0/Dropout_0"), flax_dropout_key(k, ("Block_0", "Dropout_0")))
    assert not torch.equal(flax_dropout_key(k, ()), flax_dropout_key(k, (), 2))
    assert not torch.equal(flax_dropout_key(k), flax_dropout_key(k, fix_separator=True))
    with pytest.raises(TypeError):
        flax_dropout_key(k, (1.5,))


# ----------------------------------------------------------------- MLP


def test_mlp_init_layout_and_bounds():
    params = mlp_init(rr.key(0), (8, 6, 4, 1))
    assert list(params) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    ref = Tutorial().state_dict()
    for name, t in params.items():
        assert t.shape == ref[name].shape
        assert t.dtype == torch.float32
        fan_in = params[name.replace("bias", "weight")].shape[1]
        assert t.abs().max() <= 1 / math.sqrt(fan_in)
    again = mlp_init(rr.key(0), (8, 6, 4, 1))
    other = mlp_init(rr.key(1), (8, 6, 4, 1))
    assert all(torch.equal(params[k], again[k]) for k in params)
    assert all(not torch.equal(params[k], other[k]) for k in params)
    kw, _ = rr.split(rr.fold_in(rr.key(0), 1))
    assert torch.equal(params["fc2.weight"], rr.uniform(kw, (4, 6), minval=-1 / math.sqrt(6), maxval=1 / math.sqrt(6)))
    assert mlp_init(rr.key(0), (3, 2), dtype=torch.float64)["fc1.weight"].dtype == torch.float64
    with pytest.raises(ValueError):
        mlp_init(rr.key(0), (8,))
    with pytest.raises(ValueError):
        mlp_init(rr.key(0), (8, 0, 1))


def test_mlp_init_spread_like_nn_linear():
    w = mlp_init(rr.key(0), (400, 300))["fc1.weight"]
    bound = 1 / 20
    assert w.min() < -0.99 * bound
    assert w.max() > 0.99 * bound
    assert abs(w.var().item() - bound**2 / 3) < 0.02 * bound**2


def _check_matches_tutorial(x):
    module = Tutorial(p=0.0)
    expected = module(x)
    for params in (dict(module.state_dict()), params_from_module(module)):
        assert torch.equal(mlp_apply(params, x), expected)
        assert torch.equal(mlp_apply(params, x, key=rr.key(0), p=0.5, train=False), expected)
        logits = module.fc3(F.relu(module.fc2(F.relu(module.fc1(x)))))
        assert torch.equal(mlp_apply(params, x, output="logits"), logits)


def test_mlp_apply_matches_tutorial_module_exactly():
    torch.manual_seed(0)
    _check_matches_tutorial(torch.randn(32, 8))


def test_mlp_apply_matches_tutorial_module_on_diabetes(diabetes_csv):
    torch.manual_seed(0)
    table = np.loadtxt(diabetes_csv, delimiter=",", skiprows=1, dtype=np.float32)
    _check_matches_tutorial(torch.from_numpy(table[:, :8]))


def test_mlp_apply_dropout_keys_per_layer():
    params = mlp_init(rr.key(0), (8, 6, 4, 1))
    x = torch.randn(5, 8)
    key = rr.key(3)
    h = F.relu(F.linear(x, params["fc1.weight"], params["fc1.bias"]))
    h = dropout(rr.fold_in(key, 0), h, 0.5)
    h = F.relu(F.linear(h, params["fc2.weight"], params["fc2.bias"]))
    h = dropout(rr.fold_in(key, 1), h, 0.2)
    expected = torch.sigmoid(F.linear(h, params["fc3.weight"], params["fc3.bias"]))
    assert torch.equal(mlp_apply(params, x, key=key, p=(0.5, 0.2), train=True), expected)
    assert torch.equal(mlp_apply(params, x, key=key, p=torch.tensor([0.5, 0.2]), train=True), expected)
    same = mlp_apply(params, x, key=key, p=0.5, train=True)
    assert torch.equal(same, mlp_apply(params, x, key=key, p=[0.5, 0.5], train=True))
    # no key needed when every rate is 0
    assert torch.equal(mlp_apply(params, x, p=0.0, train=True), mlp_apply(params, x))


def test_mlp_apply_options_and_errors():
    params = mlp_init(rr.key(0), (8, 6, 4, 3))
    x = torch.randn(5, 8)
    logits = mlp_apply(params, x, output="logits")
    assert torch.equal(mlp_apply(params, x, output="identity"), logits)
    assert torch.equal(mlp_apply(params, x), torch.sigmoid(logits))
    assert torch.allclose(mlp_apply(params, x, output="softmax").sum(-1), torch.ones(5))
    assert torch.equal(mlp_apply(params, x, activation=torch.relu, output="logits"), logits)
    assert not torch.equal(mlp_apply(params, x, activation="tanh"), torch.sigmoid(logits))
    with pytest.raises(ValueError, match="unknown activation"):
        mlp_apply(params, x, activation="swish2")
    with pytest.raises(ValueError, match="unknown output"):
        mlp_apply(params, x, output="probits")
    with pytest.raises(ValueError, match="2 hidden layers"):
        mlp_apply(params, x, p=(0.1, 0.2, 0.3), key=rr.key(0), train=True)
    with pytest.raises(ValueError, match=r"regfn\.random\.key\(0\)"):
        mlp_apply(params, x, p=0.5, train=True)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mlp_apply(params, x, p=1.5, key=rr.key(0), train=True)
    with pytest.raises(ValueError, match=r"fc1\.weight"):
        mlp_apply({"w": torch.ones(2, 2)}, x)


def test_mlp_model_vmap_over_keys_params_and_rates():
    model = mlp((8, 6, 4, 1), output="logits")
    assert isinstance(model, Model)
    assert model._fields == ("init", "apply")
    x = torch.randn(5, 8)
    keys = rr.split(rr.key(0), 3)
    batch = torch.func.vmap(model.init)(keys)
    rates = torch.tensor([0.0, 0.3, 1.0])
    out = torch.func.vmap(lambda prm, k, p: model.apply(prm, x, key=k, p=p, train=True))(batch, keys, rates)
    for i in range(3):
        params = model.init(keys[i])
        assert all(torch.equal(params[n], batch[n][i]) for n in params)
        # batched matmuls may round differently from single ones
        assert torch.allclose(out[i], model.apply(params, x, key=keys[i], p=rates[i], train=True), atol=1e-6)
    params = model.init(keys[2])
    assert torch.allclose(out[0], model.apply(model.init(keys[0]), x), atol=1e-6)
    last = params["fc3.bias"].expand(5, 1)  # p = 1 zeroes every hidden unit
    assert torch.equal(out[2], last)


def test_mlp_grad_under_vmap_over_rates():
    model = mlp((8, 6, 4, 1), output="logits")
    params = model.init(rr.key(0))
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16, 1)).float()

    def loss(params, p):
        out = model.apply(params, x, key=rr.key(1), p=p, train=True)
        return F.binary_cross_entropy_with_logits(out, y)

    grads = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, torch.tensor([0.0, 0.5, 1.0]))
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert torch.equal(grads["fc1.weight"][2], torch.zeros(6, 8))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inductor's own torch.jit use
def test_compile_matches_eager_bit_for_bit():
    # an identity output layer exposes the hidden layer's dropout exactly (x @ I == x)
    params = mlp_init(rr.key(0), (8, 6, 6))
    params["fc2.weight"], params["fc2.bias"] = torch.eye(6), torch.zeros(6)
    x = rr.normal(rr.key(2), (64, 8))

    def run(params, x, key):
        return mlp_apply(params, x, key=key, p=0.5, train=True, output="logits")

    eager = run(params, x, rr.key(1))
    compiled = torch.compile(run, fullgraph=True)(params, x, rr.key(1))  # one compile (10-50 s cold)
    assert (eager == 0).any()
    assert (eager != 0).any()
    assert torch.equal(eager == 0, compiled == 0)  # the same mask, bit for bit
    # The kept values: a compiled matmul may sum its 8 products in another order (on an AMD EPYC with
    # AVX2, up to 5e-7 apart on values of order 1, where a wrong mask would differ by the whole value).
    assert torch.allclose(eager, compiled, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- nn.Module bridge


def test_functionalize_tutorial_model():
    torch.manual_seed(0)
    module = Tutorial()
    apply, params = functionalize(module)
    assert set(params) == set(module.state_dict())
    x = torch.randn(10, 8)
    a = apply(params, x, key=rr.key(0), train=True)
    assert torch.equal(a, apply(params, x, key=rr.key(0), train=True))
    assert not torch.equal(a, apply(params, x, key=rr.key(1), train=True))
    # sites are numbered in call order: the same keys as mlp_apply's layers
    assert torch.equal(a, mlp_apply(params, x, key=rr.key(0), p=0.5, train=True))
    # train=False turns off even F.dropout's default training=True
    assert torch.equal(apply(params, x), mlp_apply(params, x))
    assert torch.equal(apply(params, x, key=rr.key(0)), mlp_apply(params, x))
    # uses params, not the module's own weights
    zeroed = {k: torch.zeros_like(v) for k, v in params.items()}
    assert torch.equal(apply(zeroed, x), torch.full((10, 1), 0.5))


def test_functionalize_grad_and_vmap():
    module = Tutorial()
    apply, params = functionalize(module)
    x = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
    grads = torch.func.grad(lambda prm: apply(prm, x, key=rr.key(0), train=True).sum())(params)
    ref = torch.func.grad(lambda prm: mlp_apply(prm, x, key=rr.key(0), p=0.5, train=True).sum())(params)
    assert all(torch.equal(grads[k], ref[k]) for k in ref)
    keys = rr.split(rr.key(1), 4)
    out = torch.func.vmap(lambda k: apply(params, x, key=k, train=True))(keys)
    for i in range(4):
        # masks are bit-for-bit; the batched matmul after them may round differently from mm (batched == looped to
        # float tolerance, as the sweep's rows are)
        torch.testing.assert_close(out[i], apply(params, x, key=keys[i], train=True), rtol=1e-6, atol=1e-7)


class Several(tnn.Module):
    """nn.Dropout, nn.Dropout2d, F.dropout(training=self.training) and torch.dropout."""

    def __init__(self):
        super().__init__()
        self.conv = tnn.Conv2d(2, 3, 1)
        self.drop2d = tnn.Dropout2d(0.5)
        self.fc = tnn.Linear(12, 8)
        self.drop = tnn.Dropout(0.3)

    def forward(self, x):
        x = self.drop2d(self.conv(x)).flatten(1)
        x = self.drop(F.relu(self.fc(x)))
        x = F.dropout(x, 0.2, training=self.training)
        return torch.dropout(x, 0.1, True)


def test_functionalize_several_sites():
    torch.manual_seed(0)
    module = Several().eval()
    apply, params = functionalize(module)
    x = torch.randn(4, 2, 2, 2)
    key = rr.key(0)
    out = apply(params, x, key=key, train=True)
    assert not module.training  # mode restored
    h = dropout(rr.fold_in(key, 0), module.conv(x), 0.5, broadcast_dims=(2, 3)).flatten(1)
    h = dropout(rr.fold_in(key, 1), F.relu(module.fc(h)), 0.3)
    h = dropout(rr.fold_in(key, 2), h, 0.2)
    assert torch.equal(out, dropout(rr.fold_in(key, 3), h, 0.1))
    with torch.no_grad():  # train=False: every site off, even torch.dropout(x, 0.1, True)
        expected = F.relu(module.fc(module.conv(x).flatten(1)))
        assert torch.equal(apply(params, x), expected)
    out2 = torch.func.vmap(lambda k: apply(params, x, key=k, train=True))(rr.split(key, 2))
    assert torch.equal(out2[0], apply(params, x, key=rr.split(key, 2)[0], train=True))


def test_functionalize_errors_restore_state_and_nesting():
    module = Tutorial()
    apply, params = functionalize(module)
    x = torch.randn(3, 8)
    with pytest.raises(ValueError, match=r"regfn\.random\.key\(0\)"):
        apply(params, x, train=True)
    stack = torch.overrides._get_current_function_mode_stack()
    assert stack == []
    assert module.training

    class Boom(tnn.Module):
        def forward(self, x):
            F.dropout(x, 0.5)
            raise RuntimeError("boom")

    boom_apply, _ = functionalize(Boom())
    with pytest.raises(RuntimeError, match="boom"):
        boom_apply({}, x, key=rr.key(0), train=True)
    assert torch.overrides._get_current_function_mode_stack() == []
    torch.manual_seed(0)
    assert (F.dropout(torch.ones(1000), 0.5) == 0).any()  # global-RNG dropout works again

    class Outer(tnn.Module):
        """Calls another functionalized model inside its forward (nesting)."""

        def forward(self, x):
            inner = apply(params, x, key=rr.key(5), train=True)
            return F.dropout(inner, 0.5)

    outer_apply, _ = functionalize(Outer())
    got = outer_apply({}, x, key=rr.key(6), train=True)
    inner = apply(params, x, key=rr.key(5), train=True)
    assert torch.equal(got, dropout(rr.fold_in(rr.key(6), 0), inner, 0.5))

    class Alpha(tnn.Module):
        def forward(self, x):
            return F.alpha_dropout(x, 0.5, training=True)

    alpha_apply, _ = functionalize(Alpha())
    assert torch.equal(alpha_apply({}, x), x)
    with pytest.raises(NotImplementedError):
        alpha_apply({}, x, key=rr.key(0), train=True)


# ----------------------------------------------------------------- Monte Carlo dropout


def test_mc_dropout():
    model = mlp((8, 6, 4, 1))
    params = model.init(rr.key(0))
    x = torch.randn(7, 8)
    mean, std = mc_dropout(model.apply, params, x, rr.key(1), 64, p=0.5)
    samples = torch.stack([model.apply(params, x, key=k, p=0.5, train=True) for k in rr.split(rr.key(1), 64)])
    assert torch.allclose(mean, samples.mean(0), atol=1e-6)
    assert torch.allclose(std, samples.std(0, correction=0), atol=1e-6)
    chunked = mc_dropout(model.apply, params, x, rr.key(1), 64, chunk_size=10, p=0.5)
    assert torch.allclose(chunked[0], mean, atol=1e-6)
    _, std0 = mc_dropout(model.apply, params, x, rr.key(1), 8, p=0.0)
    assert torch.equal(std0, torch.zeros_like(std0))
    apply, fparams = functionalize(Tutorial())
    m, s = mc_dropout(apply, fparams, x, rr.key(2), 16)
    assert m.shape == (7, 1)
    assert (s > 0).any()
    with pytest.raises(ValueError):
        mc_dropout(model.apply, params, x, rr.key(1), 0)


# ----------------------------------------------------------------- CUDA, docs


@cuda
@pytest.mark.cuda
def test_cuda_matches_cpu():
    x = torch.randn(33, 17)
    for p in (0.5, 0.3, torch.tensor(0.3)):
        cpu = dropout(rr.key(0), x, p)
        dev = dropout(rr.key(0), x.cuda(), p.cuda() if isinstance(p, torch.Tensor) else p).cpu()
        assert torch.equal(cpu != 0, dev != 0)
        assert _ulp(cpu, dev) <= 1
    dev = dropout(rr.key(0).cuda(), x.cuda(), 0.5, broadcast_dims=(0,)).cpu()
    assert torch.equal(dev, dropout(rr.key(0), x, 0.5, broadcast_dims=(0,)))
    params = mlp_init(rr.key(0), (8, 6, 4, 1))
    params_dev = mlp_init(rr.key(0, device="cuda"), (8, 6, 4, 1))
    assert all(torch.equal(params[k], params_dev[k].cpu()) for k in params)
    xs = torch.randn(16, 8)
    cpu = mlp_apply(params, xs, key=rr.key(1), p=0.5, train=True, output="logits")
    dev = mlp_apply(params_dev, xs.cuda(), key=rr.key(1), p=0.5, train=True, output="logits").cpu()
    assert torch.allclose(cpu, dev, rtol=1e-5, atol=1e-6)
    module = Tutorial().cuda()
    apply, fparams = functionalize(module)
    dev = apply(fparams, xs.cuda(), key=rr.key(1).cuda(), train=True).cpu()
    cpu = mlp_apply({k: v.cpu() for k, v in fparams.items()}, xs, key=rr.key(1), p=0.5, train=True)
    assert torch.allclose(cpu, dev, rtol=1e-5, atol=1e-6)


def test_numpy_dropout_needs_a_seeded_generator():
    with pytest.raises(TypeError, match=r"numpy\.random\.default_rng"):
        numpy_dropout(np.ones(3), 0.5, None)


def test_broadcast_linear_matches_matmul_under_vmap_and_grad():
    model = mlp((8, 6, 4, 1), output="logits")
    wide = mlp((8, 6, 4, 1), output="logits", linear="broadcast")
    keys = rr.split(rr.key(0), 3)
    params = torch.func.vmap(model.init)(keys)
    x = rr.normal(rr.key(1), (20, 8))

    def loss(apply, p, k):
        return apply(p, x, key=k, p=0.5, train=True).square().mean()

    for fn in (torch.func.grad, lambda f: f):
        a = torch.func.vmap(fn(lambda p, k: loss(model.apply, p, k)))(params, keys)
        b = torch.func.vmap(fn(lambda p, k: loss(wide.apply, p, k)))(params, keys)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="linear must be one of"):
        mlp((2, 1), linear="einsum")
