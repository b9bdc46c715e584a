"""A compiled CPU MLP with a narrow hidden layer computes features first (regfn.nn._mlp.features_first).

The layout changes, never the function: the words stored column by column equal the row-major draw
transposed (every key implementation, vmapped keys, compiled); the masks of a transposed dropout equal
dropout's; a compiled MLP (and a compiled sweep) in that layout agrees with the eager, rows-first one to
float32 rounding, with the same masks; and the layout is chosen only where it was measured to pay.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

import regfn
import regfn.random as rr

native = importlib.import_module("regfn.random._native")
cols_mod = importlib.import_module("regfn.random._native_cols")
sample = importlib.import_module("regfn.random._sample")
mlp_mod = importlib.import_module("regfn.nn._mlp")
dropout_mod = importlib.import_module("regfn.nn._dropout")

IMPLS = ["threefry2x32", "philox4x32"]
needs_kernel = pytest.mark.skipif(native.status() != "on", reason=f"the C kernel is not in use: {native.status()}")


@needs_kernel
@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 9), seed=st.integers(0, 2**32 - 1), impl=st.sampled_from(IMPLS))
def test_words_stored_by_columns_are_the_row_major_draw_transposed(rows, cols, seed, impl):
    k = rr.key(seed, impl=impl)
    out = cols_mod.words_cols(k, rows, cols)
    assert out.shape == (cols, rows)
    assert out.is_contiguous()
    assert torch.equal(out.mT, sample._bits32(k, (rows, cols)))
    assert torch.equal(sample._bits32(k, (rows, cols), cols=True), sample._bits32(k, (rows, cols)))


@needs_kernel
@pytest.mark.parametrize("impl", IMPLS)
def test_words_by_columns_vmapped_and_compiled(impl):
    keys = rr.split(rr.key(3, impl=impl), 5)
    expected = vmap(lambda k: sample._bits32(k, (11, 3)))(keys)

    def stored(k):
        return cols_mod.words_cols(k, 11, 3).mT

    assert torch.equal(vmap(stored)(keys), expected)
    assert torch.equal(torch.compile(vmap(stored), fullgraph=True)(keys), expected)
    graph_ops = []

    def backend(gm, _inputs):
        graph_ops.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm

    torch.compile(vmap(stored), backend=backend, fullgraph=True)(keys)
    assert any("_cols" in op for op in graph_ops), graph_ops  # the custom operator, not a traced cipher


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("impl", IMPLS)
def test_bernoulli_by_columns_has_bernoullis_values(dtype, impl):
    k = rr.key(7, impl=impl)
    p = torch.tensor(0.3, dtype=dtype)
    assert torch.equal(sample._bernoulli(k, p, (13, 5), cols=True), rr.bernoulli(k, p, (13, 5)))
    assert torch.equal(sample._bernoulli(k, 0.3, (13, 5), cols=True), rr.bernoulli(k, 0.3, (13, 5)))
    traced = torch.compile(lambda kk: sample._bernoulli(kk, p, (13, 5), cols=True), fullgraph=True)(k)
    assert torch.equal(traced, rr.bernoulli(k, p, (13, 5)))


@pytest.mark.parametrize("p", [0.5, torch.tensor(0.25)])
def test_transposed_dropout_is_dropout_of_the_transpose(p):
    k = rr.key(1)
    x = torch.randn(6, 40)  # (features, rows): the transpose of a (40, 6) input
    expected = regfn.dropout(k, x.mT, p).mT
    assert torch.equal(dropout_mod._dropout(k, x, p, transposed=True), expected)
    compiled = torch.compile(lambda kk, xx: dropout_mod._dropout(kk, xx, p, transposed=True), fullgraph=True)
    assert torch.equal(compiled(k, x), expected)
    with pytest.raises(ValueError, match="2-d"):
        dropout_mod._dropout(k, torch.randn(2, 3, 4), 0.5, transposed=True)


def decision(x, params, hidden, layer=F.linear, activation="relu"):
    """features_first's answer while torch compiles (a constant the traced function returns)."""

    def f(t):
        return t + (1 if mlp_mod.features_first(x, params, hidden, layer, activation) else 0)

    return bool(torch.compile(f, fullgraph=True)(torch.zeros(())) == 1)


@needs_kernel
def test_the_layout_is_chosen_only_where_it_was_measured_to_pay():
    rr.uniform(rr.key(0), (2,))  # an eager draw loads the kernel, as a sweep's initial weights do
    narrow = mlp_mod.mlp_init(rr.key(0), (8, 6, 4, 1))
    wide = mlp_mod.mlp_init(rr.key(0), (8, 16, 32, 1))
    x = torch.zeros(5, 8)
    assert not mlp_mod.features_first(x, narrow, 2, F.linear, "relu")  # eagerly: never
    assert decision(x, narrow, 2)
    assert not decision(x, wide, 2)  # every hidden layer at least NARROW wide
    assert not decision(x, narrow, 2, activation=torch.relu)  # a callable may not act element by element
    assert not decision(x, narrow, 2, layer=mlp_mod._LINEAR["broadcast"])
    assert not decision(torch.zeros(2, 5, 8), narrow, 2)  # 3-d inputs


@needs_kernel
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_compiled_features_first_mlp_agrees_with_eager(p):
    model = regfn.mlp((8, 6, 4, 3), output="logits")
    keys = rr.split(rr.key(0), 4)
    params = vmap(model.init)(keys)
    x = torch.randn(50, 8)
    y = torch.randint(0, 3, (50,))
    rates = torch.tensor([p, p / 2, p, 0.0])

    def loss(ps, k, rate):
        return F.cross_entropy(model.apply(ps, x, key=k, p=rate, train=True), y)

    def outputs(ps, k, rate):
        return model.apply(ps, x, key=k, p=rate, train=True)

    step = vmap(grad(loss))
    eager_out = vmap(outputs)(params, keys, rates)
    compiled_out = torch.compile(vmap(outputs), fullgraph=True)(params, keys, rates)
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-5, atol=1e-6)
    eager_g, compiled_g = step(params, keys, rates), torch.compile(step)(params, keys, rates)
    for name in eager_g:
        torch.testing.assert_close(compiled_g[name], eager_g[name], rtol=1e-4, atol=1e-6)
    # the same masks: a hidden unit dropped eagerly is dropped compiled (its weight gradient column is 0)
    assert torch.equal(compiled_g["fc2.weight"] == 0, eager_g["fc2.weight"] == 0)


@needs_kernel
@pytest.mark.parametrize("impl", IMPLS)
def test_compiled_sweep_of_the_tutorial_mlp_agrees_with_eager(impl):
    data = regfn.data.synthetic_diabetes(rr.key(0), n=120)
    model = regfn.mlp((8, 6, 4, 1), output="logits")
    configs = regfn.grid(l2=[0.0, 1e-3], p=[0.0, 0.5], seed=[0, 1])
    kw = {"epochs": 6, "log_every": 2, "quiet": True, "key_impl": impl, "threads": 1}
    eager = regfn.sweep(model, data, configs, compile=False, **kw)
    compiled = regfn.sweep(model, data, configs, compile=True, **kw)
    for name in eager.curves:
        torch.testing.assert_close(torch.as_tensor(compiled.curves[name]), torch.as_tensor(eager.curves[name]),
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    one = regfn.sweep(model, data, configs[5:6], compile=True, **kw)  # batched == alone, compiled
    for name in eager.curves:
        torch.testing.assert_close(torch.as_tensor(one.curves[name])[0], torch.as_tensor(compiled.curves[name])[5],
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
