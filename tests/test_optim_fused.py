"""Adam's moments in the C kernel (regfn.optim._fused): torch's numbers to within a unit or two in the last place
(sqrt may differ: IEEE against MKL's), the same bits under vmap as per configuration, in place as pure,
and used only where it may be (eager float32 CPU, no autograd, no transform but vmap)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

from regfn import optim

native = importlib.import_module("regfn.random._native")
fused = importlib.import_module("regfn.optim._fused")

pytestmark = pytest.mark.skipif(native.status() != "on", reason=f"the C kernel is not in use: {native.status()}")


@pytest.fixture(autouse=True, scope="module")
def every_size():
    """The kernel for every parameter size (its bound is for speed only; tested on its own below)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fused, "FUSE_FROM", 0)
        yield


def torch_moments(g, m, v, w1, b2, w2, k2, e):
    """scale_by_adam's arithmetic in torch's ops (its unfused path)."""
    m_new = torch.lerp(m, g, w1)
    v_new = torch.addcmul(v * b2, g, g, value=w2)
    return m_new, v_new, v_new.sqrt() / k2 + e


def ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """The largest distance in units in the last place between two float32 tensors of one sign pattern."""
    assert torch.equal(torch.signbit(a), torch.signbit(b))
    return int((a.view(torch.int32).long() - b.view(torch.int32).long()).abs().max()) if a.numel() else 0


def scalars(step: int, b1: float, b2: float, eps: float) -> tuple:
    bc1, bc2_sqrt = 1 - b1**step, (1 - b2**step) ** 0.5
    return 1 - b1, b2, 1 - b2, bc2_sqrt / bc1, eps * bc1


def draw(seed: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen), torch.randn(shape, generator=gen) * 0.1, torch.rand(shape, generator=gen)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(1,), (17,), (3, 33), (2, 3, 65)]),
    step=st.integers(1, 10_000),
    b1=st.floats(0.0, 0.999),
    b2=st.floats(0.0, 0.9999),
    eps=st.floats(0.0, 1e-3),
)
def test_torch_numbers_within_one_ulp_and_den_is_ieee(seed, shape, step, b1, b2, eps):
    g, m, v = draw(seed, shape)
    s = scalars(step, b1, b2, eps)
    out = fused.adam_moments(g, m, v, fused.pack(*s))
    assert out is not None
    want = torch_moments(g, m, v, *s)
    assert ulps(out[0], want[0]) <= 1  # 0 where torch's lerp and addcmul use FMA, as here
    assert ulps(out[1], want[1]) <= 1
    assert ulps(out[2], want[2]) <= 2  # sqrt's ulp, carried through the division and the addition
    k2, e = np.float32(s[3]), np.float32(s[4])
    ieee = np.sqrt(out[1].numpy()) / k2 + e  # numpy's float32 sqrt, division and addition are IEEE
    assert np.array_equal(out[2].numpy(), ieee)


def test_tensor_scalars_equal_numbers():
    g, m, v = draw(0, (4, 50))
    s = scalars(3, 0.9, 0.999, 1e-8)
    as_tensors = [torch.tensor(x, dtype=torch.float32) for x in s]
    for a, b in zip(
        fused.adam_moments(g, m, v, fused.pack(*s)), fused.adam_moments(g, m, v, fused.pack(*as_tensors)), strict=True
    ):
        assert torch.equal(a, b)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 6), n=st.integers(1, 300), lead=st.booleans())
def test_vmapped_equals_each_configuration_alone(seed, k, n, lead):
    """Per-configuration hyperparameters under vmap (batch dimension first or last): the same bits as alone."""
    g, m, v = draw(seed, (k, n))
    b1 = torch.linspace(0.5, 0.95, k)
    step = torch.arange(1, k + 1, dtype=torch.float64)
    k2 = ((1 - 0.999**step).sqrt() / (1 - b1.double() ** step)).float()
    e = (1e-8 * (1 - b1.double() ** step)).float()
    w1 = 1 - b1

    def one(g, m, v, w1, k2, e):
        return fused.adam_moments(g, m, v, fused.pack(w1, 0.999, 0.001, k2, e))

    if lead:
        got = vmap(one)(g, m, v, w1, k2, e)
    else:
        got = vmap(one, in_dims=(1, 1, 1, 0, 0, 0), out_dims=1)(g.T.contiguous(), m.T.contiguous(), v.T.contiguous(),
                                                                 w1, k2, e)  # fmt: skip
        got = tuple(t.T for t in got)
    for i in range(k):
        alone = fused.adam_moments(g[i], m[i], v[i], fused.pack(w1[i], 0.999, 0.001, k2[i], e[i]))
        for a, b in zip(got, alone, strict=True):
            assert torch.equal(a[i], b)


def test_nested_vmap_and_unbatched_state():
    g, m, v = draw(1, (2, 3, 10))
    lr_axis = vmap(
        vmap(lambda g, m, v: fused.adam_moments(g, m, v, fused.pack(0.1, 0.999, 0.001, 2.0, 1e-9))),
        in_dims=(0, 0, None),
    )
    got = lr_axis(g, m, v[0])  # the second moment shared by the outer axis: expanded, not batched
    for i in range(2):
        for j in range(3):
            alone = fused.adam_moments(g[i, j], m[i, j], v[0, j], fused.pack(0.1, 0.999, 0.001, 2.0, 1e-9))
            for a, b in zip(got, alone, strict=True):
                assert torch.equal(a[i, j], b)


def test_not_used_where_it_may_not_be():
    g, m, v = draw(2, (8,))
    s = scalars(1, 0.9, 0.999, 1e-8)
    assert fused.adam_moments(g.double(), m.double(), v.double(), fused.pack(*s)) is None
    assert fused.adam_moments(g, m, v[:4], fused.pack(*s)) is None
    assert fused.pack(torch.tensor([0.1, 0.1]), *s[1:]) is None  # not a 0-d scalar
    assert fused.pack(torch.tensor(0.1, requires_grad=True), *s[1:]) is None  # autograd records
    assert fused.adam_moments(g.requires_grad_(), m, v, fused.pack(*s)) is None  # autograd records
    seen = []
    grad(lambda g: seen.append(fused.adam_moments(g, m, v, fused.pack(*s))) or g.sum())(g.detach())
    assert seen == [None]  # under torch.func.grad: torch's ops
    compiled = torch.compile(
        lambda g: fused.adam_moments(g, m, v, fused.pack(*s)) is None, backend="eager", fullgraph=False
    )
    assert compiled(g.detach())


def test_adam_update_uses_the_kernel_and_matches_torch_optim():
    params = {"w": torch.randn(64, 32), "b": torch.randn(32)}
    opt = optim.adam(1e-2, weight_decay=1e-3)
    state = opt.init(params)
    torch_params = [torch.nn.Parameter(p.clone()) for p in params.values()]
    torch_opt = torch.optim.Adam(torch_params, lr=1e-2, weight_decay=1e-3, foreach=False)
    calls = []
    real = fused._run
    try:
        fused._run = lambda *a, **k: calls.append(1) or real(*a, **k)
        for i in range(20):
            gen = torch.Generator().manual_seed(i)
            grads = {k: torch.randn(p.shape, generator=gen) for k, p in params.items()}
            params, state = optim.step(opt, params, grads, state)
            for tp, g in zip(torch_params, grads.values(), strict=True):
                tp.grad = g.clone()
            torch_opt.step()
    finally:
        fused._run = real
    assert len(calls) == 40
    for p, tp in zip(params.values(), torch_params, strict=True):
        torch.testing.assert_close(p, tp.detach(), rtol=1e-6, atol=1e-7)


def test_step_in_place_equals_pure_step():
    params = {"w": torch.randn(10, 7)}
    opt = optim.adam(1e-2)
    grads = {"w": torch.randn(10, 7)}
    pure, pure_state = optim.step(opt, params, grads, opt.init(params))
    donated = {"w": params["w"].clone()}
    state = opt.init(donated)
    m_before = state[0]["exp_avg"]["w"]
    new_state = optim.step_(opt, donated, grads, state)
    assert new_state[0]["exp_avg"]["w"] is m_before  # written into the donated tensor
    assert torch.equal(donated["w"], pure["w"])
    assert torch.equal(new_state[0]["exp_avg_sq"]["w"], pure_state[0]["exp_avg_sq"]["w"])


def test_the_size_bound_is_per_configuration(monkeypatch):
    """Whether a parameter takes the kernel depends on one configuration's size, not on how many run at once."""
    monkeypatch.setattr(fused, "FUSE_FROM", 100)
    s = scalars(2, 0.9, 0.999, 1e-8)
    small, large = draw(3, (64, 99)), draw(4, (3, 100))
    assert fused.adam_moments(*(t[0] for t in small), fused.pack(*s)) is None
    seen = []
    vmap(lambda g, m, v: seen.append(fused.adam_moments(g, m, v, fused.pack(*s))) or g)(*small)
    assert seen == [None]  # 64 x 99 elements at once, 99 per configuration
    assert fused.adam_moments(*(t[0] for t in large), fused.pack(*s)) is not None
    got = vmap(lambda g, m, v: fused.adam_moments(g, m, v, fused.pack(*s)))(*large)
    alone = fused.adam_moments(*(t[1] for t in large), fused.pack(*s))
    assert all(torch.equal(a[1], b) for a, b in zip(got, alone, strict=True))
