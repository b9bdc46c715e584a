"""regfn.nn._pool.max_pool2d: torch's max pooling, bit for bit, forward and backward, alone and under vmap."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import regfn
from regfn.nn import _pool

SPECIALS = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1.0, -1.0, 2.0]


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns (NaN payloads and the sign of zero included)."""
    return t.contiguous().view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(_bits(a), _bits(b))


def _maps(seed: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Maps full of ties, NaNs, infinities and signed zeros."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(SPECIALS) + 2, shape, generator=g)
    specials = torch.tensor([*SPECIALS, 3.0, -3.0], dtype=dtype)
    return torch.where(torch.rand(shape, generator=g) < 0.5, specials[pick], torch.randn(shape, generator=g).to(dtype))


def _grad(fn, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_()
    y = fn(x)
    return y, torch.autograd.grad(y, x, g)[0]


windows = st.tuples(st.integers(1, 3), st.integers(1, 3)).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.tuples(st.integers(k[0], k[0] + 1), st.integers(k[1], k[1] + 1)),
        st.tuples(st.integers(0, k[0] // 2), st.integers(0, k[1] // 2)),
        st.booleans(),
    )
)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 3),
    c=st.integers(1, 4),
    h=st.integers(3, 9),
    w=st.integers(3, 9),
    window=windows,
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_values_and_gradients_equal_torch(seed, n, c, h, w, window, dtype):
    kernel, stride, padding, ceil_mode = window
    x = _maps(seed, (n, c, h, w), dtype)
    torch_y = F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode)
    g = _maps(seed + 1, tuple(torch_y.shape), dtype)
    a, ga = _grad(lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode), x, g)
    b, gb = _grad(lambda t: _pool.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode), x, g)
    assert _same(a, b)
    assert _same(ga, gb)
    assert b.is_contiguous()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 4), layout=st.sampled_from(["configs first", "rows first"]))
def test_vmapped_equals_torch_vmapped(seed, k, layout):
    """Under vmap the configurations' maps may lie either way (a grouped convolution leaves them rows first)."""
    shape = (k, 5, 3, 8, 6)
    x = _maps(seed, shape)
    if layout == "rows first":
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    g = _maps(seed + 1, (k, 5, 3, 4, 3))
    calls = []
    real = _pool._pooled

    def counted(*args):
        calls.append(args[1])
        return real(*args)

    a, ga = _grad(lambda t: torch.func.vmap(lambda m: F.max_pool2d(m, 2))(t), x, g)
    try:
        _pool._pooled = counted
        b, gb = _grad(lambda t: torch.func.vmap(lambda m: _pool.max_pool2d(m, 2))(t), x, g)
    finally:
        _pool._pooled = real
    assert calls == [1]  # one plain call with the configurations' dimension in front
    assert _same(a, b)
    assert _same(ga, gb)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "stride": 1},  # overlapping windows
        {"kernel_size": 2, "dilation": 2},
        {"kernel_size": 2, "return_indices": True},
    ],
)
def test_other_calls_are_torch_s(kwargs, monkeypatch):
    monkeypatch.setattr(_pool, "_pooled", lambda *a: pytest.fail("served by _pooled"))
    x = _maps(0, (2, 3, 8, 8))
    ours, theirs = _pool.max_pool2d(x, **kwargs), F.max_pool2d(x, **kwargs)
    pairs = zip(ours, theirs, strict=True) if isinstance(ours, tuple) else [(ours, theirs)]
    for a, b in pairs:
        assert _same(a, b) if a.is_floating_point() else torch.equal(a, b)
    grad_wrapped = torch.func.grad(lambda t: _pool.max_pool2d(t, 2).nan_to_num().sum())(x)  # under grad: torch's
    assert _same(grad_wrapped, torch.func.grad(lambda t: F.max_pool2d(t, 2).nan_to_num().sum())(x))


def test_channels_last_maps_keep_torch_s_kernel():
    x = _maps(1, (2, 4, 8, 8)).contiguous(memory_format=torch.channels_last)
    g = _maps(2, (2, 4, 4, 4))
    a, ga = _grad(lambda t: F.max_pool2d(t, 2), x, g)
    b, gb = _grad(lambda t: _pool.max_pool2d(t, 2), x, g)
    assert _same(a, b)
    assert _same(ga, gb)
    assert b.stride() == a.stride()


def test_modules_pool_through_it(monkeypatch):
    """``nn.MaxPool2d`` in a module regfn runs is served by _pooled; results equal torch's own call."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.MaxPool2d(2), torch.nn.Flatten())
    apply, params = regfn.nn.functionalize(net)
    x = torch.randn(6, 1, 8, 8)
    seen = []
    real = _pool._pooled
    monkeypatch.setattr(_pool, "_pooled", lambda *a: seen.append(a[1]) or real(*a))
    out = apply(params, x)
    assert seen == [0]
    assert torch.equal(out, net(x))
    stacked = {k: torch.stack([v, v * 0.5]) for k, v in params.items()}
    both = torch.func.vmap(lambda p: apply(p, x))(stacked)
    assert seen == [0, 1]
    assert torch.equal(both, torch.func.vmap(lambda p: torch.func.functional_call(net, p, (x,)))(stacked))


@pytest.mark.parametrize("in_dims", [0, 1])
def test_nested_vmaps(in_dims):
    x = _maps(3, (3, 2, 4, 3, 8, 8))
    g = _maps(4, (2, 3, 4, 3, 4, 4) if in_dims else (3, 2, 4, 3, 4, 4))
    a, ga = _grad(lambda t: torch.func.vmap(torch.func.vmap(lambda m: F.max_pool2d(m, 2)), in_dims)(t), x, g)
    b, gb = _grad(lambda t: torch.func.vmap(torch.func.vmap(lambda m: _pool.max_pool2d(m, 2)), in_dims)(t), x, g)
    assert _same(a, b)
    assert _same(ga, gb)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_torch_s(dtype, monkeypatch):
    """torch pools half precision through float32, which may turn a NaN into another NaN: its own call serves it."""
    monkeypatch.setattr(_pool, "_pooled", lambda *a: pytest.fail("served by _pooled"))
    x = _maps(3, (6, 4, 8, 8)).to(dtype)
    assert _same(_pool.max_pool2d(x, 2), F.max_pool2d(x, 2))
