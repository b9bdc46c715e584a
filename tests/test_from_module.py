"""regfn.nn.from_module: torch's initial distributions from a key, dropout rates from the caller, sweeps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F

import regfn
import regfn.random as rr
from regfn._hparams import optimizer_defaults
from regfn.nn import dropout, from_module
from regfn.optim import sgd

K = 400  # keys per distribution check


def draws(module: tnn.Module, n: int = K) -> dict[str, torch.Tensor]:
    """``init`` over ``n`` keys, vmapped: each parameter with a leading dimension of ``n``."""
    return torch.func.vmap(from_module(module).init)(rr.split(rr.key(0), n))


def torch_draws(module: tnn.Module, n: int = K) -> dict[str, torch.Tensor]:
    """torch's own ``reset_parameters``, ``n`` times (the test's own seeded global RNG, restored afterwards)."""
    layers = [m for m in module.modules() if hasattr(m, "reset_parameters")]
    out: dict[str, list[torch.Tensor]] = {name: [] for name, _ in module.named_parameters()}
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        for _ in range(n):
            for m in layers:
                m.reset_parameters()
            for name, t in module.named_parameters():
                out[name].append(t.detach().clone())
    return {name: torch.stack(ts) for name, ts in out.items()}


def ks_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = a.flatten().double().sort().values, b.flatten().double().sort().values
    grid = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, grid, right=True) / a.numel()
    cdf_b = torch.searchsorted(b, grid, right=True) / b.numel()
    return (cdf_a - cdf_b).abs().max().item()


def ks_critical(n: int, m: int, alpha: float = 1e-9) -> float:
    """The KS distance two samples of one distribution exceed with probability ``alpha``."""
    return math.sqrt(-math.log(alpha / 2) / 2 * (n + m) / (n * m))


# (layer, {parameter: the uniform bound b, or "normal"}) with b = 1/sqrt(fan_in)
UNIFORM_AND_NORMAL = [
    (tnn.Linear(5, 7), {"weight": 1 / math.sqrt(5), "bias": 1 / math.sqrt(5)}),
    (tnn.Conv1d(3, 4, 5), {"weight": 1 / math.sqrt(15), "bias": 1 / math.sqrt(15)}),
    (tnn.Conv2d(4, 6, 3, groups=2), {"weight": 1 / math.sqrt(18), "bias": 1 / math.sqrt(18)}),
    (tnn.Conv3d(2, 3, (1, 2, 3)), {"weight": 1 / math.sqrt(12), "bias": 1 / math.sqrt(12)}),
    (tnn.ConvTranspose2d(4, 6, 3, groups=2), {"weight": 1 / math.sqrt(27), "bias": 1 / math.sqrt(27)}),
    (tnn.Bilinear(3, 4, 2), {"weight": 1 / math.sqrt(3), "bias": 1 / math.sqrt(3)}),
    (tnn.Embedding(30, 6), {"weight": "normal"}),
    (tnn.EmbeddingBag(30, 6), {"weight": "normal"}),
]


@pytest.mark.parametrize(("layer", "expected"), UNIFORM_AND_NORMAL, ids=lambda v: type(v).__name__)
def test_init_matches_torch_distribution(layer, expected):
    ours, theirs = draws(layer), torch_draws(layer)
    assert list(ours) == list(layer.state_dict()) == list(expected)
    for name, want in expected.items():
        x = ours[name].double()
        n = x.numel()
        assert x.shape == (K, *getattr(layer, name).shape)
        assert ours[name].dtype == torch.float32
        if want == "normal":
            # mean 0 and variance 1: six standard errors (the variance of a squared normal is 2)
            assert abs(x.mean().item()) < 6 / math.sqrt(n)
            assert abs(x.var().item() - 1) < 6 * math.sqrt(2 / n)
        else:
            b = want
            b32 = torch.tensor(b, dtype=torch.float32).item()  # the bound as the float32 draw sees it
            assert x.min().item() >= -b32  # the bounds, exactly
            assert x.max().item() <= b32
            assert x.min().item() < -b * (1 - 20 / n)  # and reached
            assert x.max().item() > b * (1 - 20 / n)
            # mean 0, variance b**2/3: six standard errors (x**2 has variance 4 b**4 / 45)
            assert abs(x.mean().item()) < 6 * b / math.sqrt(3 * n)
            assert abs(x.var().item() - b * b / 3) < 6 * b * b * math.sqrt(4 / 45 / n)
        # and the same distribution as torch's own reset_parameters
        assert ks_distance(ours[name], theirs[name]) < ks_critical(n, theirs[name].numel())


def test_embedding_padding_row_is_zero():
    params = draws(tnn.Embedding(10, 4, padding_idx=3), 8)
    assert torch.equal(params["weight"][:, 3], torch.zeros(8, 4))
    assert (params["weight"][:, 2] != 0).all()
    params = draws(tnn.EmbeddingBag(10, 4, padding_idx=-1), 8)
    assert torch.equal(params["weight"][:, 9], torch.zeros(8, 4))


@pytest.mark.parametrize(
    "layer",
    [
        tnn.LayerNorm((3, 4)),
        tnn.GroupNorm(2, 6),
        tnn.BatchNorm1d(5, track_running_stats=False),
        tnn.InstanceNorm2d(3, affine=True),
        *([tnn.RMSNorm(7)] if hasattr(tnn, "RMSNorm") else []),
    ],
    ids=lambda v: type(v).__name__,
)
def test_norm_layers_start_at_one_and_zero(layer):
    params = from_module(layer).init(rr.key(0))
    assert torch.equal(params["weight"], torch.ones_like(layer.weight))
    if "bias" in params:
        assert torch.equal(params["bias"], torch.zeros_like(layer.bias))


def test_prelu_starts_at_its_init_value():
    assert torch.equal(from_module(tnn.PReLU(3, init=0.1)).init(rr.key(0))["weight"], torch.full((3,), 0.1))


def test_same_key_same_params_and_one_key_per_parameter():
    net = tnn.Sequential(tnn.Linear(4, 4), tnn.Tanh(), tnn.Linear(4, 4))
    init = from_module(net).init
    a, b, c = init(rr.key(7)), init(rr.key(7)), init(rr.key(8))
    assert list(a) == list(net.state_dict())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a)
    # parameter j comes from fold_in(key, j): the two layers are independent draws
    assert not torch.equal(a["0.weight"], a["2.weight"])
    for j, name in enumerate(a):
        assert torch.equal(a[name], rr.uniform(rr.fold_in(rr.key(7), j), a[name].shape, minval=-0.5, maxval=0.5))
    # the module's own weights play no part
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert torch.equal(init(rr.key(7))["0.weight"], a["0.weight"])
    net.load_state_dict(before)


def test_dtype_and_device_follow_the_module():
    params = from_module(tnn.Linear(3, 2).double()).init(rr.key(0))
    assert all(v.dtype == torch.float64 for v in params.values())
    params = from_module(tnn.Embedding(4, 2).to(torch.bfloat16)).init(rr.key(0))
    assert params["weight"].dtype == torch.bfloat16


class Scaled(tnn.Module):
    """A Linear followed by a learned scale: a parameter no torch layer owns."""

    def __init__(self):
        super().__init__()
        self.fc = tnn.Linear(3, 2)
        self.scale = tnn.Parameter(torch.ones(2))

    def forward(self, x):
        return self.fc(x) * self.scale


def test_unknown_parameter_names_itself_and_init_fns():
    with pytest.raises(ValueError, match=r"'scale' of the module \(Scaled\).*init_fns=\{'scale': fn\}"):
        from_module(Scaled())
    seen = {}

    def fn(key, shape):
        seen["key"], seen["shape"] = key, shape
        return rr.normal(key, shape) * 0.1

    params = from_module(Scaled(), init_fns={"scale": fn}).init(rr.key(3))
    assert list(params) == ["scale", "fc.weight", "fc.bias"]
    assert seen["shape"] == (2,)
    assert torch.equal(seen["key"], rr.fold_in(rr.key(3), 0))
    assert torch.equal(params["scale"], rr.normal(rr.fold_in(rr.key(3), 0), (2,)) * 0.1)

    class Custom(tnn.Module):
        def __init__(self):
            super().__init__()
            self.inner = tnn.Sequential(Scaled())

    with pytest.raises(ValueError, match=r"'inner\.0\.scale' of module 'inner\.0' \(Scaled\)"):
        from_module(Custom())


def test_init_fns_override_and_are_checked():
    zeros = lambda key, shape: torch.zeros(shape, dtype=torch.float64)
    params = from_module(tnn.Linear(3, 2), init_fns={"weight": zeros}).init(rr.key(0))
    assert params["weight"].dtype == torch.float32  # cast to the parameter's dtype
    assert torch.equal(params["weight"], torch.zeros(2, 3))
    assert params["bias"].abs().max() > 0  # the other parameters keep their rule
    with pytest.raises(ValueError, match=r"init_fns names 'wieght', which the module has no parameter of"):
        from_module(tnn.Linear(3, 2), init_fns={"wieght": zeros})
    bad = from_module(tnn.Linear(3, 2), init_fns={"weight": lambda key, shape: torch.zeros(3, 2)})
    with pytest.raises(ValueError, match=r"init_fns\['weight'\] must return a tensor of shape \(2, 3\), got \(3, 2\)"):
        bad.init(rr.key(0))
    with pytest.raises(TypeError, match="must be a function"):
        from_module(tnn.Linear(3, 2), init_fns={"weight": 0.0})
    with pytest.raises(TypeError, match=r"must return a tensor"):
        from_module(tnn.Linear(3, 2), init_fns={"weight": lambda key, shape: 0.0}).init(rr.key(0))


def test_layers_with_their_own_initialisation_are_refused():
    class MyLinear(tnn.Linear):
        def reset_parameters(self):
            tnn.init.zeros_(self.weight)

    with pytest.raises(ValueError, match=r"'weight' of the module \(MyLinear\)"):
        from_module(MyLinear(2, 2))
    # MultiheadAttention initialises its own projection and re-initialises out_proj
    with pytest.raises(ValueError, match=r"'in_proj_weight' of the module \(MultiheadAttention\)"):
        from_module(tnn.MultiheadAttention(4, 2))
    fns = {n: (lambda key, shape: torch.zeros(shape)) for n in ("in_proj_weight", "in_proj_bias")}
    with pytest.raises(ValueError, match=r"'out_proj\.weight' .* re-initialised by the module \(MultiheadAttention\)"):
        from_module(tnn.MultiheadAttention(4, 2), init_fns=fns)
    with pytest.raises(ValueError, match="lazy layer"):
        from_module(tnn.LazyLinear(3))
    with pytest.raises(TypeError, match=r"must be a torch\.nn\.Module"):
        from_module(lambda x: x)


def test_modules_with_buffers_are_refused():
    net = tnn.Sequential(tnn.Linear(3, 4), tnn.BatchNorm1d(4), tnn.ReLU())
    with pytest.raises(ValueError) as err:
        from_module(net)
    msg = str(err.value)
    assert "module '1' (BatchNorm1d) has buffers (running_mean, running_var, num_batches_tracked)" in msg
    assert "GroupNorm" in msg
    assert "LayerNorm" in msg


# ----------------------------------------------------------------- apply


class OneDrop(tnn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.drop, self.fc2 = tnn.Linear(6, 16), tnn.Dropout(0.5), tnn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class TwoDrops(OneDrop):
    """nn.Dropout, then F.dropout with the module's own training flag."""

    def forward(self, x):
        h = self.drop(F.relu(self.fc1(x)))
        return F.dropout(self.fc2(h), 0.2, training=self.training)


def explicit(params, x, key, rates):
    """OneDrop/TwoDrops written out with regfn.dropout: call i draws from fold_in(key, i)."""
    h = dropout(rr.fold_in(key, 0), F.relu(F.linear(x, params["fc1.weight"], params["fc1.bias"])), rates[0])
    out = F.linear(h, params["fc2.weight"], params["fc2.bias"])
    return dropout(rr.fold_in(key, 1), out, rates[1]) if len(rates) > 1 else out


def test_apply_without_dropout_is_the_module_in_eval_mode():
    net = tnn.Sequential(
        tnn.Conv2d(2, 4, 3, padding=1),
        tnn.GroupNorm(2, 4),
        tnn.ReLU(),
        tnn.Dropout2d(0.3),
        tnn.Flatten(),
        tnn.LayerNorm(4 * 5 * 5),
        tnn.Dropout(0.5),
        tnn.Linear(4 * 5 * 5, 3),
    )
    model = from_module(net)
    params = model.init(rr.key(0))
    x = rr.normal(rr.key(1), (7, 2, 5, 5))
    out = model.apply(params, x)
    assert out.shape == (7, 3)
    assert net.training  # apply gave the module back its mode
    assert torch.equal(out, torch.func.functional_call(net.eval(), params, (x,)))
    assert torch.equal(model.apply(params, x, key=rr.key(2), p=0.5), out)  # train=False: dropout off
    # images with dropout on: Dropout2d's masks are per channel, from fold_in(key, 0)
    key = rr.key(2)
    got = model.apply(params, x, key=key, p=0.5, train=True)
    assert not net.training
    conv = F.conv2d(x, params["0.weight"], params["0.bias"], padding=1)
    h = F.group_norm(conv, 2, params["1.weight"], params["1.bias"]).relu()
    h = dropout(rr.fold_in(key, 0), h, 0.5, broadcast_dims=(2, 3))
    h = F.layer_norm(h.flatten(1), (100,), params["5.weight"], params["5.bias"])
    h = dropout(rr.fold_in(key, 1), h, 0.5)
    assert torch.equal(got, F.linear(h, params["7.weight"], params["7.bias"]))


def test_dropout_masks_come_from_fold_in_key_call():
    model = from_module(OneDrop())
    params = model.init(rr.key(0))
    x = rr.normal(rr.key(1), (32, 6))
    key = rr.key(2)
    assert torch.equal(model.apply(params, x, key=key, p=0.3, train=True), explicit(params, x, key, [0.3]))
    assert torch.equal(model.apply(params, x, key=key, train=True), explicit(params, x, key, [0.5]))  # its own p
    p = torch.tensor(0.3)
    assert torch.equal(model.apply(params, x, key=key, p=p, train=True), explicit(params, x, key, [p]))
    assert torch.equal(model.apply(params, x, key=key, p=0.0, train=True), model.apply(params, x))
    assert not torch.equal(model.apply(params, x, key=rr.key(3), p=0.3, train=True), explicit(params, x, key, [0.3]))
    with pytest.raises(ValueError, match=r"from_module: dropout site 0 .*regfn\.random\.key\(0\)"):
        model.apply(params, x, p=0.3, train=True)
    with pytest.raises(ValueError, match=r"from_module: p must be in \[0, 1\], got 1.5"):
        model.apply(params, x, key=key, p=1.5, train=True)
    with pytest.raises(TypeError, match="from_module: p must be a float"):
        model.apply(params, x, key=key, p="0.5", train=True)


def test_per_call_rates_and_their_count():
    model = from_module(TwoDrops())
    params = model.init(rr.key(0))
    x = rr.normal(rr.key(1), (32, 6))
    key = rr.key(2)
    want = explicit(params, x, key, [0.1, 0.6])
    assert torch.equal(model.apply(params, x, key=key, p=(0.1, 0.6), train=True), want)
    assert torch.equal(model.apply(params, x, key=key, p=[0.1, 0.6], train=True), want)
    rates = torch.tensor([0.1, 0.6])
    assert torch.equal(model.apply(params, x, key=key, p=rates, train=True), explicit(params, x, key, list(rates)))
    assert torch.equal(model.apply(params, x, key=key, train=True), explicit(params, x, key, [0.5, 0.2]))
    with pytest.raises(ValueError, match=r"the module made 2 dropout calls but 1 rate was given"):
        model.apply(params, x, key=key, p=(0.1,), train=True)
    with pytest.raises(ValueError, match=r"the module made 2 dropout calls but 3 rates were given"):
        model.apply(params, x, key=key, p=torch.tensor([0.1, 0.2, 0.3]), train=True)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        model.apply(params, x, key=key, p=(0.1, -0.2), train=True)


def test_vmap_over_rates_equals_a_loop():
    model = from_module(TwoDrops())
    params = model.init(rr.key(0))
    x = rr.normal(rr.key(1), (16, 6))
    key = rr.key(2)
    rates = torch.tensor([0.0, 0.25, 0.5, 0.75])
    got = torch.func.vmap(lambda p: model.apply(params, x, key=key, p=p, train=True))(rates)
    for i, p in enumerate(rates):
        assert torch.equal(got[i], model.apply(params, x, key=key, p=p, train=True))
    per_call = torch.stack([rates, rates.flip(0)], 1)  # (K, 2): one rate per dropout call
    got = torch.func.vmap(lambda p: model.apply(params, x, key=key, p=p, train=True))(per_call)
    for i in range(len(rates)):
        assert torch.equal(got[i], explicit(params, x, key, list(per_call[i])))
    # and over initialisations and keys, as a sweep does
    keys = rr.split(rr.key(5), 3)
    many = torch.func.vmap(model.init)(keys)
    got = torch.func.vmap(lambda prm, k: model.apply(prm, x, key=k, p=0.5, train=True))(many, keys)
    for i in range(3):
        assert torch.equal(got[i], model.apply(model.init(keys[i]), x, key=keys[i], p=0.5, train=True))


def test_grad_through_apply():
    model = from_module(OneDrop())
    params = model.init(rr.key(0))
    x = rr.normal(rr.key(1), (8, 6))
    grads = torch.func.grad(lambda prm: model.apply(prm, x, key=rr.key(2), p=0.5, train=True).sum())(params)
    ref = torch.func.grad(lambda prm: explicit(prm, x, rr.key(2), [0.5]).sum())(params)
    assert all(torch.equal(grads[k], ref[k]) for k in ref)


def dynamo_traces_function_modes() -> bool:
    """Whether torch.compile(fullgraph=True) traces code that enters a ``TorchFunctionMode``.

    ``apply`` routes dropout through one (``regfn.nn._module._KeyedDropout``);
    torch 2.4's dynamo cannot trace it ("inline in skipfiles:
    TorchFunctionMode.__init__") and compiles around it with graph breaks.
    """

    class Mode(torch.overrides.TorchFunctionMode):
        pass

    def f(x):
        with Mode():
            return x + 1

    try:
        torch.compile(f, fullgraph=True, backend="eager")(torch.zeros(1))
    except torch._dynamo.exc.Unsupported:
        return False
    return True


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inductor's own torch.jit use
def test_compiled_apply_matches_eager():
    model = from_module(tnn.Sequential(tnn.Linear(6, 16), tnn.Tanh(), tnn.Dropout(0.5)))  # zeros: dropped
    params = model.init(rr.key(0))
    x = rr.normal(rr.key(1), (32, 6))

    def run(params, x, key, p):
        return model.apply(params, x, key=key, p=p, train=True)

    p = torch.tensor(0.4)
    eager = run(params, x, rr.key(2), p)
    # One graph where dynamo traces the dropout routing; graph breaks around it where it cannot (torch 2.4),
    # and there inductor's own Linear and tanh between the breaks round up to ~2e-7 away from eager's.
    fullgraph = dynamo_traces_function_modes()
    compiled = torch.compile(run, fullgraph=fullgraph)(params, x, rr.key(2), p)  # one compile (10-50 s cold)
    assert (eager == 0).any()
    assert torch.equal(eager == 0, compiled == 0)  # the same masks
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-7 if fullgraph else 1e-6)


# ----------------------------------------------------------------- training and sweeps


def test_sweep_rows_equal_single_runs():
    net = tnn.Sequential(tnn.Linear(2, 8), tnn.ReLU(), tnn.Dropout(0.5), tnn.Linear(8, 1))
    model = from_module(net)
    data = regfn.data.quadrants(rr.key(0), 64)
    configs = regfn.grid(p=[0.0, 0.5], seed=[0, 1])
    result = regfn.sweep(model, data, configs, epochs=3, compile=False, quiet=True)
    assert len(result) == 4
    losses = []
    for row in result.rows:
        hp = {**optimizer_defaults("sgd"), **row}
        single = regfn.train(
            model, data, optimizer=sgd(hp["lr"], momentum=hp["momentum"]), p=hp["p"], key=rr.key(hp["seed"]), epochs=3
        )
        assert row["loss"] == pytest.approx(single.metrics["loss"], rel=1e-5, abs=1e-6)
        assert row["acc"] == pytest.approx(single.metrics["acc"], abs=1e-6)
        losses.append(row["loss"])
    assert len(set(losses)) == 4  # each seed its own initialisation, each rate its own masks
