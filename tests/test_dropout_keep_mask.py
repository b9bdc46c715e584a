"""Dropout's keep mask drawn and compared in the C kernel (regfn.random._sample.keep_mask) is bernoulli's mask, for
both key implementations, alone, vmapped (nested, with swept rates) and inside grad; regfn.dropout through it
gives the same bits as through where(mask, x / keep, 0) (+0 for dropped negatives; but a kept -0.0 comes out +0.0),
and the same gradients."""

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
sample = importlib.import_module("regfn.random._sample")
dropout_module = importlib.import_module("regfn.nn._dropout")

pytestmark = pytest.mark.skipif(native.status() != "on", reason=f"the C kernel is not in use: {native.status()}")
IMPLS = ["threefry2x32", "philox4x32"]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32)


def without_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dropout_module, "keep_mask", lambda *args: None)


@settings(max_examples=30, deadline=None)
@given(
    impl=st.sampled_from(IMPLS),
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([(), (1,), (5,), (3, 7), (2, 3, 9)]),
    keep=st.one_of(
        st.floats(0.0, 1.0),
        st.sampled_from(
            [0.0, 1.0, -0.0, 2.0**-24, 1.0 - 2.0**-24, 0.5, 1e-30, 1e-45, -0.5, 1.5, float("nan"), float("inf"), 1e39]
        ),
    ),
    as_tensor=st.booleans(),
)
def test_the_mask_is_bernoullis(impl, seed, shape, keep, as_tensor):
    k = rr.key(seed, impl=impl)
    p = torch.tensor(keep, dtype=torch.float32) if as_tensor else keep
    got = sample.keep_mask(k, p, shape)
    assert got.dtype == torch.float32
    assert got.shape == shape
    assert torch.equal(got, rr.bernoulli(k, p, shape).to(torch.float32))


@pytest.mark.parametrize("impl", IMPLS)
def test_vmapped_nested_and_swept_rates_equal_the_loop(impl):
    keys = rr.split(rr.key(7, impl=impl), 6)
    keeps = torch.linspace(0.0, 1.0, 6)
    got = vmap(lambda k, p: sample.keep_mask(k, p, (4, 33)))(keys, keeps)
    want = torch.stack([rr.bernoulli(k, p, (4, 33)).float() for k, p in zip(keys, keeps, strict=True)])
    assert torch.equal(got, want)
    nested = vmap(vmap(lambda k: sample.keep_mask(k, 0.3, (17,))))(keys.reshape(2, 3, -1))
    assert torch.equal(nested.reshape(6, 17), torch.stack([rr.bernoulli(k, 0.3, (17,)).float() for k in keys]))


def test_where_the_kernel_is_not_used():
    assert sample.keep_mask(rr.key(0), torch.tensor(0.5, dtype=torch.float64), (3,)) is None  # float32 rates only
    assert sample.keep_mask(rr.key(0).to("meta"), 0.5, (3,)) is None


@pytest.mark.parametrize("rate", [0.25, "tensor"])
@pytest.mark.parametrize("impl", IMPLS)
def test_regfn_dropout_gives_the_same_bits_with_and_without_the_kernel(rate, impl, monkeypatch):
    keys = rr.split(rr.key(3, impl=impl), 4)
    x = torch.randn(4, 16, 32) * 3  # negative values too: dropped, they give +0, as where does
    x[0, 0, :4] = torch.tensor([0.0, -0.0, 1e-40, -1e-40])
    ps = torch.tensor([0.0, 0.1, 0.5, 1.0])
    up = torch.randn(4, 16, 32)

    def run():
        xs = x.clone().requires_grad_()
        if rate == "tensor":
            out = vmap(lambda k, x, p: regfn.dropout(k, x, p))(keys, xs, ps)
        else:
            out = vmap(lambda k, x: regfn.dropout(k, x, rate))(keys, xs)
        return out, torch.autograd.grad(out, xs, up)[0]

    got, got_grad = run()
    without_kernel(monkeypatch)
    want, want_grad = run()
    differ = bits(got) != bits(want)
    assert bool(differ.any())  # the kept -0.0 of row 0 (p = 0 there)
    assert torch.equal(differ, differ & (bits(x) == bits(torch.tensor(-0.0))))  # only there: +0.0 comes out
    assert torch.equal(bits(got), bits(want + 0.0))
    assert torch.equal(got_grad, want_grad)  # values: a dropped gradient may be -0.0 with the kernel


def test_a_gradient_through_dropout_under_grad_and_vmap_equals_the_where_route(monkeypatch):
    w = torch.randn(64)
    x = torch.randn(6, 5, 64)
    keys = rr.split(rr.key(1), 6)
    ps = torch.linspace(0.0, 0.9, 6)

    def loss(w, x, k, p):
        return (regfn.dropout(k, x * w, p) ** 2).sum()

    got = vmap(grad(loss), in_dims=(None, 0, 0, 0))(w, x, keys, ps)
    without_kernel(monkeypatch)
    want = vmap(grad(loss), in_dims=(None, 0, 0, 0))(w, x, keys, ps)
    assert torch.equal(got, want)


def test_non_finite_inputs_where_dropped_give_nan_with_the_kernel():
    k = rr.key(0)
    mask = rr.bernoulli(k, 0.5, (64,))
    x = torch.full((64,), float("inf"))
    out = regfn.dropout(k, x, 0.5)
    assert torch.equal(out[mask], x[mask])
    assert bool(out[~mask].isnan().all())  # the documented difference from where(mask, x / keep, 0)
