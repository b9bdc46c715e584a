"""Dropout's masked division in the C kernel (regfn.random._select.dropout_select) equals torch's where(mask, x /
keep, 0) bit for bit, forward and backward, alone, under vmap (nested) and grad, and inside regfn.dropout."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

import regfn
import regfn.random as rr

native = importlib.import_module("regfn.random._native")
select = importlib.import_module("regfn.random._native_select")
dropout_module = importlib.import_module("regfn.nn._dropout")

needs_kernel = pytest.mark.skipif(native.status() != "on", reason=f"the C kernel is not in use: {native.status()}")
pytestmark = needs_kernel


def reference(x, mask, keep):
    return torch.where(mask, x / keep, 0.0)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32)


@pytest.fixture
def always(monkeypatch):
    """The kernel for every size (its threshold is for speed only)."""
    monkeypatch.setattr(select, "SELECT_FROM", 0)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(1,), (7,), (3, 5), (2, 3, 17)]),
    keep=st.floats(1e-6, 1.0, allow_nan=False),
    as_tensor=st.booleans(),
)
def test_forward_and_gradient_are_torch_bits(seed, shape, keep, as_tensor):
    mp = pytest.MonkeyPatch()
    mp.setattr(select, "SELECT_FROM", 0)
    try:
        g = torch.Generator().manual_seed(seed)
        x = (torch.randn(shape, generator=g) * 10).requires_grad_()
        mask = torch.rand(shape, generator=g) < 0.6
        k = torch.tensor(keep, dtype=torch.float32) if as_tensor else keep
        out = select.dropout_select(x, mask, k)
        want = reference(x, mask, k)
        assert torch.equal(bits(out), bits(want))
        up = torch.randn(shape, generator=g)
        assert torch.equal(torch.autograd.grad(out, x, up)[0], torch.autograd.grad(want, x, up)[0])
    finally:
        mp.undo()


def test_special_values_are_kept_or_zeroed_as_where_does(always):
    x = torch.tensor([float("nan"), float("inf"), -0.0, -3.0, float("-inf"), 5.0])
    mask = torch.tensor([True, False, True, True, True, False])
    assert torch.equal(bits(select.dropout_select(x, mask, 0.75)), bits(reference(x, mask, 0.75)))


def test_vmapped_gradients_with_a_swept_keep_equal_torchs(always):
    w = torch.randn(64)
    x = torch.randn(6, 5, 64)
    mask = torch.rand(6, 5, 64) < 0.7
    keeps = torch.linspace(0.2, 1.0, 6)

    def loss(w, x, m, k, fused):
        h = x * w
        y = select.dropout_select(h, m, k) if fused else reference(h, m, k)
        return (y * y).sum()

    got = vmap(grad(loss), in_dims=(None, 0, 0, 0, None))(w, x, mask, keeps, True)
    want = vmap(grad(loss), in_dims=(None, 0, 0, 0, None))(w, x, mask, keeps, False)
    assert torch.equal(got, want)
    inner = vmap(select.dropout_select, in_dims=(0, 0, None))
    nested = vmap(inner, in_dims=(0, 0, None))(x.reshape(2, 3, 5, 64), mask.reshape(2, 3, 5, 64), torch.tensor(0.5))
    assert torch.equal(nested, reference(x, mask, 0.5).reshape(2, 3, 5, 64))


def test_the_gradient_with_respect_to_keep_is_torchs(always):
    keep = torch.tensor(0.7, requires_grad=True)
    x = torch.randn(200)
    mask = torch.rand(200) < 0.5
    got = torch.autograd.grad((select.dropout_select(x, mask, keep) ** 2).sum(), keep)[0]
    want = torch.autograd.grad((reference(x, mask, keep) ** 2).sum(), keep)[0]
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_where_the_kernel_does_not_run():
    x = torch.randn(4, 8)
    mask = torch.rand(4, 8) < 0.5
    assert select.dropout_select(x, mask, 0.5) is None  # under SELECT_FROM elements
    big = torch.randn(select.SELECT_FROM)
    big_mask = torch.rand(select.SELECT_FROM) < 0.5
    assert select.dropout_select(big, big_mask, 0.5) is not None
    assert select.dropout_select(big.double(), big_mask, 0.5) is None  # float32 only
    assert select.dropout_select(big, big_mask[:1].expand(1), 0.5) is None  # a broadcast mask
    assert select.dropout_select(big, big_mask, torch.tensor(0.5, dtype=torch.float64)) is None
    counted = []
    vmap(lambda t: counted.append(select.dropout_select(t, t > 0, 0.5)) or t)(torch.randn(64, 4096))
    assert counted[0] is not None  # 64 x 4,096 elements: the vmapped batch counts


@pytest.mark.parametrize("rate", [0.25, "tensor"])
def test_regfn_dropout_gives_the_same_bits_with_and_without_the_kernel(rate, monkeypatch, always):
    keys = rr.split(rr.key(3), 4)
    x = torch.randn(4, 16, 32)
    ps = torch.tensor([0.0, 0.1, 0.5, 1.0])

    def run():
        if rate == "tensor":
            return vmap(lambda k, x, p: regfn.dropout(k, x, p))(keys, x, ps)
        return vmap(lambda k, x: regfn.dropout(k, x, rate))(keys, x)

    fused = run()
    with monkeypatch.context() as m:
        m.setattr(dropout_module, "dropout_select", lambda *a: None)
        plain = run()
    assert torch.equal(bits(fused), bits(plain))


def test_forward_mode_and_hessians_go_through(always):
    x = torch.randn(3, 5)
    mask = torch.rand(3, 5) < 0.6

    def f(x, fused):
        y = select.dropout_select(x, mask, 0.8) if fused else reference(x, mask, 0.8)
        return (y.sin() * y).sum()

    assert torch.equal(torch.func.jacfwd(f)(x, True), torch.func.jacfwd(f)(x, False))
    torch.testing.assert_close(torch.func.hessian(f)(x, True), torch.func.hessian(f)(x, False), rtol=0, atol=1e-6)
    keep = torch.tensor(0.7)
    tangent = torch.func.jvp(lambda k: select.dropout_select(x, mask, k), (keep,), (torch.tensor(1.0),))[1]
    want = torch.func.jvp(lambda k: reference(x, mask, k), (keep,), (torch.tensor(1.0),))[1]
    torch.testing.assert_close(tangent, want, rtol=1e-6, atol=0)
