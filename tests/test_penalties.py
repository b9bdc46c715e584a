"""Tests for regfn.penalties: L1 / L2 penalties as loss transformers."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap

import regfn.penalties as penalties_module
from regfn.penalties import (
    ElasticNetPenalty,
    L1Penalty,
    L2Penalty,
    NormPenalty,
    Penalty,
    elastic_net,
    l1,
    l2,
    norm,
    penalize,
    penalty_value,
    weights_only,
)

F64 = torch.float64


# --------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------


class TutorialMLP(nn.Module):
    """The tutorial's 8-6-4-1 MLP (ReLU, sigmoid output), without dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 6)
        self.fc2 = nn.Linear(6, 4)
        self.fc3 = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return torch.sigmoid(self.fc3(x))


def make_model(dtype: torch.dtype = F64, seed: int = 0) -> TutorialMLP:
    torch.manual_seed(seed)
    return TutorialMLP().to(dtype)


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def make_loss_fn(model: nn.Module):
    def loss_fn(params, x, y):
        out = functional_call(model, params, (x,)).squeeze(-1)
        return nn.functional.binary_cross_entropy(out, y)

    return loss_fn


def _diabetes_path() -> Path | None:
    candidates = [
        os.environ.get("REGFN_DIABETES_CSV"),
        Path(__file__).resolve().parents[1] / "shared" / "data" / "diabetes.csv",
        "/work/shared/data/diabetes.csv",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def load_data(source: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized features and 0/1 labels: the Pima table, or synthetic."""
    if source == "diabetes":
        path = _diabetes_path()
        if path is None:
            pytest.skip("diabetes.csv not available")
        rows = [line.split(",") for line in path.read_text().strip().splitlines()[1:]]
        table = torch.tensor([[float(v) for v in row] for row in rows], dtype=F64)
        assert table.shape == (768, 9)
        x, y = table[:, :8], table[:, 8]
    else:
        gen = torch.Generator().manual_seed(1234)
        x = torch.randn(300, 8, generator=gen, dtype=F64) * 3 + 1
        w = torch.randn(8, generator=gen, dtype=F64)
        y = (x @ w + 0.5 * torch.randn(300, generator=gen, dtype=F64) > 0).to(F64)
    x = (x - x.mean(0)) / x.std(0)
    return x.to(dtype), y.to(dtype)


@pytest.fixture
def params() -> dict[str, torch.Tensor]:
    """Float64 parameters with a zero entry and an all-zero tensor."""
    gen = torch.Generator().manual_seed(0)
    p = {
        "fc1.weight": torch.randn(6, 8, generator=gen, dtype=F64),
        "fc1.bias": torch.randn(6, generator=gen, dtype=F64),
        "fc2.weight": torch.randn(4, 6, generator=gen, dtype=F64),
        "fc2.bias": torch.zeros(4, dtype=F64),
    }
    p["fc1.weight"][0, 0] = 0.0
    return p


def simple_loss(params, x, scale=1.0):
    h = torch.tanh(x @ params["fc1.weight"].T + params["fc1.bias"])
    out = h @ params["fc2.weight"].T + params["fc2.bias"]
    return scale * (out**2).mean()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(5, 8, generator=torch.Generator().manual_seed(1), dtype=F64)


def assert_dicts_close(a, b, rtol=1e-12, atol=1e-14):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


# --------------------------------------------------------------------------
# values and gradients against closed forms
# --------------------------------------------------------------------------


def test_l2_value_and_grad(params):
    lam = 0.3
    expected = lam / 2 * sum((p**2).sum() for p in params.values())
    torch.testing.assert_close(l2(lam).value(params), expected, rtol=1e-14, atol=0)
    g = grad(l2(lam).value)(params)
    assert_dicts_close(g, {k: lam * p for k, p in params.items()}, rtol=0, atol=0)


def test_l1_value_and_subgradient(params):
    lam = 0.7
    expected = lam * sum(p.abs().sum() for p in params.values())
    torch.testing.assert_close(l1(lam).value(params), expected, rtol=1e-14, atol=0)
    g = grad(l1(lam).value)(params)
    assert_dicts_close(g, {k: lam * torch.sign(p) for k, p in params.items()}, rtol=0, atol=0)
    # sign(0) = 0: the single zero entry and the all-zero bias get exactly 0
    assert g["fc1.weight"][0, 0].item() == 0.0
    assert torch.equal(g["fc2.bias"], torch.zeros(4, dtype=F64))


@pytest.mark.parametrize("ord", [1, 2, 3, math.inf])
def test_norm_value_and_grad(params, ord):
    lam = 0.2
    nonzero = {k: v for k, v in params.items() if k != "fc2.bias"}

    def closed_form(p: torch.Tensor) -> torch.Tensor:
        a = p.abs().flatten()
        return a.max() if ord == math.inf else (a**ord).sum() ** (1 / ord)

    expected = lam * sum(closed_form(p) for p in params.values())
    torch.testing.assert_close(norm(lam, ord).value(params), expected, rtol=1e-13, atol=0)

    g = grad(norm(lam, ord).value)(params)
    for k, p in nonzero.items():
        if ord == math.inf:
            # p here has a unique arg-max
            e = torch.zeros_like(p).flatten()
            i = p.abs().flatten().argmax()
            e[i] = torch.sign(p.flatten()[i])
            e = e.view_as(p)
        else:
            n = closed_form(p)
            e = torch.sign(p) * p.abs() ** (ord - 1) / n ** (ord - 1)
        torch.testing.assert_close(g[k], lam * e, rtol=1e-12, atol=1e-15)
    # all-zero tensor: gradient 0, not NaN
    assert torch.equal(g["fc2.bias"], torch.zeros(4, dtype=F64))


@pytest.mark.parametrize("ord", [1, 2, 3, math.inf])
def test_norm_derivatives_finite_at_zero(ord):
    z = {"w": torch.zeros(3, 2, dtype=F64)}
    pen = norm(1.0, ord)
    assert pen.value(z).item() == 0.0
    assert torch.equal(grad(pen.value)(z)["w"], torch.zeros(3, 2, dtype=F64))
    # forward mode and second order too (a naive sqrt(sum(w**2)) gives NaN)
    jf = torch.func.jacfwd(pen.value)(z)["w"]
    assert torch.isfinite(jf).all()
    h = torch.func.hessian(lambda w: pen.value({"w": w}))(z["w"])
    assert torch.isfinite(h).all()
    # and under vmap with a batch of strengths
    gv = vmap(lambda lam: grad(norm(lam, ord).value)(z))(torch.tensor([0.0, 1.0], dtype=F64))
    assert torch.equal(gv["w"], torch.zeros(2, 3, 2, dtype=F64))


def test_naive_two_norm_is_nan_at_zero_but_ours_is_not():
    w = torch.zeros(3, dtype=F64)
    naive = grad(lambda w: torch.sqrt((w**2).sum()))(w)
    assert torch.isnan(naive).all()
    assert torch.equal(grad(lambda w: norm(1.0).value({"w": w}))(w), torch.zeros(3, dtype=F64))


def test_elastic_net_is_l1_plus_l2(params):
    a, b = 0.3, 0.05
    pen = elastic_net(a, b)
    torch.testing.assert_close(pen.value(params), l1(a).value(params) + l2(b).value(params), rtol=1e-15, atol=0)
    g = grad(pen.value)(params)
    assert_dicts_close(g, {k: a * torch.sign(p) + b * p for k, p in params.items()}, rtol=1e-15, atol=0)
    assert pen.strength == (a, b)


@pytest.mark.parametrize(
    "mask",
    [
        weights_only,
        {"fc1.weight", "fc2.weight"},
        ["fc1.weight", "fc2.weight"],
        {"fc1.weight": True, "fc1.bias": False, "fc2.weight": True, "fc2.bias": False},
    ],
    ids=["predicate", "set", "list", "dict"],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda m: l2(0.4, mask=m),
        lambda m: l1(0.4, mask=m),
        lambda m: norm(0.4, 2, mask=m),
        lambda m: elastic_net(0.1, 0.4, mask=m),
    ],
    ids=["l2", "l1", "norm", "elastic_net"],
)
def test_masked(params, mask, make):
    weights = {k: v for k, v in params.items() if k.endswith("weight")}
    pen = make(mask)
    full = make(None)
    torch.testing.assert_close(pen.value(params), full.value(weights), rtol=1e-15, atol=0)
    g = grad(pen.value)(params)
    g_full = grad(full.value)(weights)
    for k in params:
        if k in weights:
            torch.testing.assert_close(g[k], g_full[k], rtol=0, atol=0)
        else:
            assert torch.equal(g[k], torch.zeros_like(params[k]))


def test_weights_only_reexported():
    from regfn import _tree

    assert penalties_module.weights_only is _tree.weights_only
    assert "weights_only" in penalties_module.__all__


# --------------------------------------------------------------------------
# equivalences with torch and with the tutorial
# --------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["diabetes", "synthetic"])
@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["f64", "f32"])
def test_l2_gradient_descent_matches_sgd_weight_decay(source, dtype, rtol):
    x, y = load_data(source, dtype)
    lr, lam, steps = 0.01, 0.1, 100
    model = make_model(dtype)
    start = params_of(model)

    # torch: SGD with weight_decay on the module
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=lr, weight_decay=lam, foreach=False)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy(ref(x).squeeze(-1), y)
        loss.backward()
        opt.step()
    expected = params_of(ref)

    # regfn: plain gradient descent on the L2-penalized pure loss
    step = torch.func.grad(l2(lam)(make_loss_fn(model)))
    p = dict(start)
    for _ in range(steps):
        g = step(p, x, y)
        p = {k: w - lr * g[k] for k, w in p.items()}

    for k in p:
        scale = expected[k].abs().max().item()
        torch.testing.assert_close(p[k], expected[k], rtol=rtol, atol=rtol * scale)
    # sanity: weight decay actually changed the trajectory
    plain = torch.func.grad(make_loss_fn(model))
    q = dict(start)
    for _ in range(steps):
        g = plain(q, x, y)
        q = {k: w - lr * g[k] for k, w in q.items()}
    assert max((q[k] - expected[k]).abs().max().item() for k in q) > 100 * rtol


@pytest.mark.parametrize("ord", [1, 2])
def test_norm_matches_tutorial_loop(ord):
    x, y = load_data("synthetic", F64)
    model = make_model(F64)
    lam = 0.01

    # the tutorial: loss + lam * sum(torch.norm(p, ord) for p in model.parameters())
    model.zero_grad()
    loss = nn.functional.binary_cross_entropy(model(x).squeeze(-1), y)
    tutorial_pen = lam * sum(torch.norm(p, ord) for p in model.parameters())
    (loss + tutorial_pen).backward()
    tutorial_grads = {k: v.grad for k, v in model.named_parameters()}

    params = params_of(model)
    pen = norm(lam, ord)
    torch.testing.assert_close(pen.value(params), tutorial_pen.detach(), rtol=1e-14, atol=0)
    g, value = grad_and_value(pen(make_loss_fn(model)))(params, x, y)
    torch.testing.assert_close(value, (loss + tutorial_pen).detach(), rtol=1e-14, atol=0)
    assert_dicts_close(g, tutorial_grads, rtol=1e-13, atol=1e-16)


def test_tutorial_linear_l1_l2_example():
    # the tutorial's last example: Linear(10, 1), MSE, l1_lambda * sum|w| + l2_lambda * sum w**2
    torch.manual_seed(0)
    model = nn.Linear(10, 1).to(F64)
    x, y = torch.randn(32, 10, dtype=F64), torch.randn(32, 1, dtype=F64)
    l1_lambda, l2_lambda = 0.01, 0.02
    model.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss = loss + l1_lambda * sum(p.abs().sum() for p in model.parameters())
    loss = loss + l2_lambda * sum(p.pow(2).sum() for p in model.parameters())
    loss.backward()

    def mse(params, x, y):
        return nn.functional.mse_loss(functional_call(model, params, (x,)), y)

    # sum(w**2) without the 1/2 is l2(2 * l2_lambda) in regfn's convention
    penalized = penalize(mse, l1(l1_lambda), l2(2 * l2_lambda))
    g, value = grad_and_value(penalized)(params_of(model), x, y)
    torch.testing.assert_close(value, loss.detach(), rtol=1e-14, atol=0)
    assert_dicts_close(g, {k: v.grad for k, v in model.named_parameters()}, rtol=1e-13, atol=1e-16)
    g2 = grad(elastic_net(l1_lambda, 2 * l2_lambda)(mse))(params_of(model), x, y)
    assert_dicts_close(g2, g, rtol=1e-13, atol=1e-16)


# --------------------------------------------------------------------------
# vmap over strengths, tensor strengths
# --------------------------------------------------------------------------

MAKERS = {
    "l2": lambda s: l2(s),
    "l1": lambda s: l1(s),
    "norm1": lambda s: norm(s, 1),
    "norm2": lambda s: norm(s, 2),
    "norminf": lambda s: norm(s, math.inf),
    "elastic_net": lambda s: elastic_net(s, 2 * s),
    "l2_masked": lambda s: l2(s, mask=weights_only),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_vmap_over_strengths_equals_loop(params, x, name):
    make = MAKERS[name]
    strengths = torch.tensor([0.0, 1e-3, 0.1, 2.0], dtype=F64)

    def run(s):
        return grad_and_value(make(s)(simple_loss))(params, x)

    g_batched, v_batched = vmap(run)(strengths)
    for i, s in enumerate(strengths.tolist()):
        g, v = run(s)
        torch.testing.assert_close(v_batched[i], v, rtol=1e-14, atol=1e-16)
        assert_dicts_close({k: t[i] for k, t in g_batched.items()}, g, rtol=1e-14, atol=1e-16)


def test_tensor_strength_equals_float_and_gives_hypergradient(params):
    lam = torch.tensor(0.25, dtype=F64)
    torch.testing.assert_close(l2(lam).value(params), l2(0.25).value(params), rtol=0, atol=0)
    d_lam = grad(lambda s: l2(s).value(params))(lam)
    torch.testing.assert_close(d_lam, sum((p**2).sum() for p in params.values()) / 2)
    # a single-element tensor of shape (1,) is accepted and made 0-d
    pen = l1(torch.tensor([0.5], dtype=F64))
    assert pen.strength.shape == ()
    assert pen.value(params).shape == ()


def test_penalty_keeps_parameter_dtype():
    p = {"w": torch.ones(3, dtype=torch.float32)}
    assert l2(torch.tensor(0.1, dtype=F64)).value(p).dtype == torch.float32
    assert norm(torch.tensor(1), 2).value(p).dtype == torch.float32
    assert l1(1).value(p).dtype == torch.float32


# --------------------------------------------------------------------------
# the loss transformer
# --------------------------------------------------------------------------


def test_wrapper_adds_penalty_and_keeps_metadata(params, x):
    def my_loss(params, x, scale=1.0):
        """My docstring."""
        return simple_loss(params, x, scale)

    wrapped = l2(0.1)(my_loss)
    assert wrapped.__name__ == "my_loss"
    assert wrapped.__doc__ == "My docstring."
    assert wrapped.__wrapped__ is my_loss
    assert inspect.signature(wrapped) == inspect.signature(my_loss)
    torch.testing.assert_close(wrapped(params, x), my_loss(params, x) + l2(0.1).value(params), rtol=0, atol=0)


def test_args_and_kwargs_pass_through(params, x):
    seen = {}

    def loss_fn(params, x, *extra, scale=1.0, tag=None):
        seen.update(extra=extra, scale=scale, tag=tag)
        return simple_loss(params, x, scale)

    wrapped = l1(0.1)(loss_fn)
    out = wrapped(params, x, "a", "b", scale=3.0, tag="t")
    assert seen == {"extra": ("a", "b"), "scale": 3.0, "tag": "t"}
    torch.testing.assert_close(out, simple_loss(params, x, 3.0) + l1(0.1).value(params))
    # the parameter dict may also be passed by keyword
    torch.testing.assert_close(wrapped(params=params, x=x, scale=3.0), out)
    g = grad(wrapped)(params, x, scale=3.0)
    expected = grad(lambda p: simple_loss(p, x, 3.0) + l1(0.1).value(p))(params)
    assert_dicts_close(g, expected)


def test_has_aux_passthrough(params, x):
    def loss_with_aux(params, x):
        h = x @ params["fc1.weight"].T
        return simple_loss(params, x), {"hidden": h, "mean": h.mean()}

    wrapped = penalize(loss_with_aux, l2(0.1), l1(0.05))
    # plain call: the very aux object comes back
    value, aux = wrapped(params, x)
    ref_value, ref_aux = loss_with_aux(params, x)
    assert set(aux) == {"hidden", "mean"}
    torch.testing.assert_close(aux["hidden"], ref_aux["hidden"], rtol=0, atol=0)
    expected_value = ref_value + l2(0.1).value(params) + l1(0.05).value(params)
    torch.testing.assert_close(value, expected_value, rtol=1e-15, atol=0)
    # under grad_and_value / grad with has_aux
    (g, (value2, aux2)) = grad_and_value(wrapped, has_aux=True)(params, x)
    torch.testing.assert_close(value2, expected_value, rtol=1e-15, atol=0)
    torch.testing.assert_close(aux2["hidden"], ref_aux["hidden"], rtol=0, atol=0)
    torch.testing.assert_close(aux2["mean"], ref_aux["mean"], rtol=0, atol=0)
    g3, aux3 = grad(wrapped, has_aux=True)(params, x)
    torch.testing.assert_close(aux3["mean"], ref_aux["mean"], rtol=0, atol=0)
    assert_dicts_close(g, g3, rtol=0, atol=0)
    assert_dicts_close(g, grad(lambda p: penalize(simple_loss, l2(0.1), l1(0.05))(p, x))(params))

    sentinel = object()
    assert l2(0.1)(lambda p: (p["fc2.bias"].sum(), sentinel))(params)[1] is sentinel


def test_composition_order_independent(params, x):
    a, b, c = l1(0.03), l2(0.2), norm(0.1, 2, mask=weights_only)
    fns = [
        a(b(c(simple_loss))),
        c(b(a(simple_loss))),
        b(a(c(simple_loss))),
        penalize(simple_loss, a, b, c),
        penalize(simple_loss, c, a, b),
        penalize(penalize(simple_loss, b), c, a),
    ]
    expected_value = simple_loss(params, x) + penalty_value(params, a, b, c)
    expected_grad = grad(lambda p: simple_loss(p, x) + a.value(p) + b.value(p) + c.value(p))(params)
    for fn in fns:
        g, v = grad_and_value(fn)(params, x)
        torch.testing.assert_close(v, expected_value, rtol=1e-14, atol=0)
        assert_dicts_close(g, expected_grad, rtol=1e-13, atol=1e-16)


def test_penalty_value_helper(params):
    pens = (l1(0.1), l2(0.2, mask=weights_only), elastic_net(0.3, 0.4))
    expected = sum(p.value(params) for p in pens)
    torch.testing.assert_close(penalty_value(params, *pens), expected, rtol=1e-15, atol=0)
    zero = penalty_value(params)
    assert zero.item() == 0.0
    assert zero.dtype == F64
    # no penalty: the loss comes back untouched (no dtype promotion)
    half = {"w": torch.ones(2, dtype=torch.bfloat16)}
    out = penalize(lambda p: p["w"].sum())(half)
    assert out.dtype == torch.bfloat16
    assert penalty_value(half).dtype == torch.bfloat16
    assert l2(0.5).value({}).item() == 0.0


def test_logging_data_loss_and_penalty_separately(params, x):
    pen = l2(1e-2)
    total = pen(simple_loss)(params, x)
    torch.testing.assert_close(total - pen.value(params), simple_loss(params, x), rtol=1e-12, atol=0)


def test_torch_compile_fullgraph(params, x):
    wrapped = penalize(simple_loss, l2(0.1), norm(0.05, 2), l1(0.02, mask=weights_only))
    compiled_value = torch.compile(wrapped, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled_value(params, x), wrapped(params, x), rtol=1e-14, atol=0)
    compiled_grad = torch.compile(grad(wrapped), backend="aot_eager", fullgraph=True)
    assert_dicts_close(compiled_grad(params, x), grad(wrapped)(params, x))

    # penalty built inside the compiled function from a tensor strength
    @torch.compile(backend="aot_eager", fullgraph=True)
    def step(params, x, lam):
        return grad(elastic_net(lam, lam, mask=weights_only)(simple_loss))(params, x)

    lam = torch.tensor(0.1, dtype=F64)
    assert_dicts_close(step(params, x, lam), grad(elastic_net(0.1, 0.1, mask=weights_only)(simple_loss))(params, x))


@pytest.mark.slow
def test_torch_compile_inductor(params, x):
    wrapped = penalize(simple_loss, l2(0.1), norm(0.05, 2))
    compiled_grad = torch.compile(grad(wrapped), fullgraph=True)
    assert_dicts_close(compiled_grad(params, x), grad(wrapped)(params, x), rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1e-3, -1, float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("make", [l1, l2, norm, lambda s: elastic_net(s, 0.1)], ids=["l1", "l2", "norm", "en"])
def test_bad_strength_value(make, bad):
    with pytest.raises(ValueError, match=r"(strength|l1) must be >= 0 and finite"):
        make(bad)


def test_elastic_net_names_the_argument():
    with pytest.raises(ValueError, match="elastic_net: l2 must be"):
        elastic_net(0.1, -1.0)
    with pytest.raises(ValueError, match="elastic_net: l1 must be"):
        elastic_net(float("nan"), 0.1)
    with pytest.raises(TypeError, match="elastic_net: l2 must be"):
        elastic_net(0.1, "0.1")


@pytest.mark.parametrize(
    "bad",
    ["0.1", None, True, [0.1], 1j, torch.tensor(True), torch.tensor(1j)],
    ids=["str", "none", "bool", "list", "complex", "bool_tensor", "complex_tensor"],
)
@pytest.mark.parametrize("make", [l1, l2, norm], ids=["l1", "l2", "norm"])
def test_bad_strength_type(make, bad):
    with pytest.raises(TypeError, match="strength"):
        make(bad)


@pytest.mark.parametrize("make", [l1, l2, norm], ids=["l1", "l2", "norm"])
def test_non_scalar_tensor_strength(make):
    with pytest.raises(ValueError, match="strength must be a scalar"):
        make(torch.tensor([0.1, 0.2]))


def test_numeric_strengths_accepted():
    assert l2(0).strength == 0.0
    assert isinstance(l2(0).strength, float)
    assert l1(3).strength == 3.0
    import fractions

    assert norm(fractions.Fraction(1, 4)).strength == 0.25


@pytest.mark.parametrize(
    ("bad", "exc"),
    [
        (0.5, ValueError),
        (0, ValueError),
        (-math.inf, ValueError),
        (float("nan"), ValueError),
        ("fro", TypeError),
        (None, TypeError),
    ],
)
def test_bad_ord(bad, exc):
    with pytest.raises(exc, match="ord"):
        norm(0.1, bad)


def test_mask_errors(params):
    with pytest.raises(ValueError, match="unknown parameters"):
        l2(0.1, mask={"fc9.weight"}).value(params)
    with pytest.raises(ValueError, match="l1 mask: names unknown"):
        l1(0.1, mask={"nope": True}).value(params)
    with pytest.raises(ValueError, match="selects no parameter"):
        l2(0.1, mask=lambda name, t: False).value(params)
    with pytest.raises(TypeError, match="mask"):
        l2(0.1, mask=3).value(params)
    with pytest.raises(TypeError, match="bool"):
        norm(0.1, mask=lambda name, t: 1).value(params)
    # errors surface through the wrapper and under grad too
    with pytest.raises(ValueError, match="unknown parameters"):
        grad(l2(0.1, mask={"fc9.weight"})(simple_loss))(params, torch.zeros(1, 8, dtype=F64))


def test_params_errors(x):
    with pytest.raises(TypeError, match="flat dict"):
        l2(0.1).value(torch.ones(3))
    with pytest.raises(TypeError, match="floating"):
        l2(0.1).value({"w": torch.ones(2), "n": torch.tensor(3)})
    assert l2(0.1, mask={"w"}).value({"w": torch.ones(2), "n": torch.tensor(3)}).item() == pytest.approx(0.1)
    with pytest.raises(TypeError, match="not a tensor"):
        l1(0.1).value({"w": [1.0]})
    with pytest.raises(TypeError, match="parameter dict"):
        l2(0.1)(simple_loss)()
    with pytest.raises(TypeError, match="pair"):
        l2(0.1)(lambda p: (p["w"].sum(), 1, 2))({"w": torch.ones(2)})
    with pytest.raises(TypeError, match="callable"):
        penalize(3, l2(0.1))
    with pytest.raises(TypeError, match="penalties"):
        penalize(simple_loss, 0.1)
    with pytest.raises(TypeError, match="penalties"):
        penalty_value({"w": torch.ones(2)}, "l2")


def test_penalties_are_frozen_dataclasses():
    for pen, cls in [
        (l1(0.1), L1Penalty),
        (l2(0.1), L2Penalty),
        (norm(0.1, 1), NormPenalty),
        (elastic_net(0.1, 0.2), ElasticNetPenalty),
    ]:
        assert isinstance(pen, cls)
        assert isinstance(pen, Penalty)
        assert dataclasses.is_dataclass(pen)
        with pytest.raises(dataclasses.FrozenInstanceError):
            pen.mask = weights_only  # type: ignore[misc]
    assert norm(0.1, 1).ord == 1.0
    assert l2(0.1, mask=weights_only).mask is weights_only
    assert "L2Penalty(strength=0.1" in repr(l2(0.1))
