"""Adam's whole step in one pass of the C kernel (regfn.optim._fused.adam_step, run by
regfn.optim._step.update_and_apply, which regfn's training code calls): the same bits as ``opt.update`` followed
by ``apply_updates`` (the kernel's moments, then torch's div, mul and add), alone, as rows of configurations, under
vmap and in every mix of fused and unfused leaves; nothing else changes path."""

from __future__ import annotations

import contextlib
import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import vmap
from torch.utils._pytree import tree_leaves

import regfn
from regfn import optim

native = importlib.import_module("regfn.random._native")
fused = importlib.import_module("regfn.optim._fused")
checks = importlib.import_module("regfn.optim._checks")
stepping = importlib.import_module("regfn.optim._step")

pytestmark = pytest.mark.skipif(native.status() != "on", reason=f"the C kernel is not in use: {native.status()}")

SHAPES = {"w1": (16, 12), "b1": (16,), "w2": (3, 16), "b2": (3,)}  # with FUSE_FROM 40: w1 and w2 fused


@pytest.fixture
def fuse_from_40(monkeypatch):
    monkeypatch.setattr(fused, "FUSE_FROM", 40)


@pytest.fixture
def steps_taken(monkeypatch):
    """The shapes of the gradients whose whole step the kernel took."""
    taken = []
    real = fused.adam_step

    def counting(g, *rest):
        out = real(g, *rest)
        if out is not None:
            taken.append(tuple(g.shape))
        return out

    monkeypatch.setattr(importlib.import_module("regfn.optim._adam"), "adam_step", counting)
    return taken


def tensors(seed: int, lead: tuple[int, ...] = ()) -> tuple[dict, list[dict]]:
    gen = torch.Generator().manual_seed(seed)
    params = {n: torch.randn(*lead, *s, generator=gen) for n, s in SHAPES.items()}
    grads = [{n: torch.randn(*lead, *s, generator=gen) * 10.0**i for n, s in SHAPES.items()} for i in range(-1, 2)]
    return params, grads


def reference(opt, params, grads, rows=None):
    """The unfused path: every update, then apply_updates, step after step."""
    state = opt.init(params)
    with checks.rows_of_configurations(rows) if rows else contextlib.nullcontext():
        for g in grads:
            updates, state = opt.update(g, state, params)
            params = optim.apply_updates(params, updates)
    return params, state


def fused_path(opt, params, grads, rows=None):
    state = opt.init(params)
    with checks.rows_of_configurations(rows) if rows else contextlib.nullcontext():
        for g in grads:
            params, state = stepping.update_and_apply(opt, params, g, state)
    return params, state


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def assert_same_bits(a, b):
    for x, y in zip(tree_leaves(a), tree_leaves(b), strict=True):
        assert x.dtype == y.dtype
        assert torch.equal(bits(x), bits(y))


LRS = {
    "number": lambda: 3e-3,
    "tensor": lambda: torch.tensor(2e-2),
    "float64 tensor": lambda: torch.tensor(7e-3, dtype=torch.float64),
    "schedule": lambda: optim.exponential_decay(1e-2, 0.5),
}


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    lr=st.sampled_from(sorted(LRS)),
    b1=st.floats(0.0, 0.999),
    b2=st.floats(0.0, 0.9999),
    eps=st.sampled_from([0.0, 1e-8, 1e-3]),
)
def test_the_whole_step_equals_update_then_apply_updates(seed, lr, b1, b2, eps):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fused, "FUSE_FROM", 40)
        params, grads = tensors(seed)
        opt = optim.adam(LRS[lr](), betas=(b1, b2), eps=eps)
        assert_same_bits(fused_path(opt, params, grads), reference(opt, params, grads))


def test_the_kernel_takes_the_large_leaves_only(fuse_from_40, steps_taken):
    params, grads = tensors(0)
    opt = optim.adam(1e-2)
    assert_same_bits(fused_path(opt, params, grads), reference(opt, params, grads))
    assert steps_taken == [(16, 12), (3, 16)] * 3


def test_rows_of_configurations_equal_each_configuration_alone(fuse_from_40, steps_taken):
    """As rows of configurations (update_rows runs (K, a, b) blocks; (K, n) rows take the same path): a (K, 1)
    column of learning rates (per-row betas: tests/test_update_rows.py, against the vmapped update)."""
    k = 4
    params, grads = tensors(1, (k,))
    rows = {n: p.reshape(k, -1) for n, p in params.items()}
    row_grads = [{n: g.reshape(k, -1) for n, g in step.items()} for step in grads]
    lr = torch.linspace(1e-3, 1e-1, k).reshape(k, 1)
    with checks.rows_of_configurations(k):
        opt = optim.adam(lr, betas=(0.8, 0.99))
    got = fused_path(opt, rows, row_grads, rows=k)
    assert_same_bits(got, reference(opt, rows, row_grads, rows=k))
    assert steps_taken == [(k, 192), (k, 48)] * 3
    for i in range(k):
        alone_opt = optim.adam(lr[i, 0], betas=(0.8, 0.99))
        alone = fused_path(
            alone_opt, {n: p[i] for n, p in params.items()}, [{n: g[i] for n, g in s.items()} for s in grads]
        )
        for name, p in alone[0].items():
            assert torch.equal(got[0][name][i].reshape(p.shape), p)


def test_vmapped_equals_each_configuration_alone(fuse_from_40, steps_taken):
    k = 3
    params, grads = tensors(2, (k,))
    lr = torch.tensor([1e-3, 1e-2, 1e-1])

    def run(params, grads, lr):
        return fused_path(optim.adam(lr), params, grads)[0]

    got = vmap(run)(params, grads, lr)
    assert (16, 12) in steps_taken  # taken under vmap (the batched tensors taken apart)
    for i in range(k):
        alone = run({n: p[i] for n, p in params.items()}, [{n: g[i] for n, g in s.items()} for s in grads], lr[i])
        assert all(torch.equal(got[n][i], alone[n]) for n in alone)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.adam(1e-2, weight_decay=1e-3),  # torch's coupled decay runs first, as usual
        lambda: optim.adam(torch.tensor(1e-2), weight_decay=torch.tensor(1e-3)),
        lambda: optim.adam(1e-2, maximize=True),
        lambda: optim.adam(1e-2, weight_decay=1e-3, maximize=True),
    ],
)
def test_transforms_before_adam_run_first_then_the_whole_step(make, fuse_from_40, steps_taken):
    params, grads = tensors(5)
    opt = make()
    assert_same_bits(fused_path(opt, params, grads), reference(opt, params, grads))
    assert steps_taken == [(16, 12), (3, 16)] * 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.adam(1e-2, amsgrad=True),
        lambda: optim.adamw(1e-2),  # its decay comes between Adam and the learning rate
        lambda: optim.rmsprop(1e-2),
        lambda: optim.sgd(1e-2, momentum=0.9),
        lambda: optim.chain(optim.scale_by_adam(), optim.scale(0.5), optim.scale_by_learning_rate(1e-2)),
    ],
)
def test_other_optimizers_keep_their_path(make, fuse_from_40, steps_taken):
    params, grads = tensors(3)
    opt = make()
    assert_same_bits(fused_path(opt, params, grads), reference(opt, params, grads))
    assert steps_taken == []


def test_not_used_where_the_kernel_may_not_run(fuse_from_40, steps_taken):
    params, grads = tensors(4)
    opt = optim.adam(1e-2)
    as64 = ({n: p.double() for n, p in params.items()}, [{n: g.double() for n, g in s.items()} for s in grads])
    assert_same_bits(fused_path(opt, *as64), reference(opt, *as64))
    compiled = torch.compile(lambda p, g: fused_path(opt, p, g), backend="eager")
    assert_same_bits(compiled(params, grads), reference(opt, params, grads))
    tracked = {n: p.clone().requires_grad_() for n, p in params.items()}
    new, _ = fused_path(opt, tracked, grads)
    assert new["w1"].grad_fn is not None  # autograd records the update: torch's ops
    assert steps_taken == []


def test_a_factor_the_kernel_cannot_take_leaves_the_moments_as_opt_update_has_them(fuse_from_40, steps_taken):
    """A learning rate autograd records: no whole step, but the moments still come from the kernel exactly
    where opt.update takes it (its sqrt may differ from torch's by an ulp)."""
    params, grads = tensors(6)
    opt = optim.adam(torch.tensor(1e-2, requires_grad=True))
    assert_same_bits(fused_path(opt, params, grads), reference(opt, params, grads))
    assert steps_taken == []


def test_train_and_an_eager_sweep_take_the_whole_step(monkeypatch, steps_taken):
    """regfn.train (one configuration) and an eager sweep (as rows) both reach the kernel's whole step, and the
    sweep's rows equal regfn.train's."""
    monkeypatch.setattr(fused, "FUSE_FROM", 64)
    data = regfn.data.standardize(regfn.data.synthetic_diabetes(regfn.random.key(0), n=96))[0]
    model = regfn.mlp((8, 16, 1), output="logits")
    configs = [{"lr": 1e-2}, {"lr": 1e-3}]
    kw = {"epochs": 2, "batch_size": 32}
    result = regfn.sweep(model, data, configs, optimizer="adam", compile=False, quiet=True, **kw)
    assert (2, 16, 8) in steps_taken  # fc1.weight of both configurations as rows
    steps_taken.clear()
    single = regfn.train(model, data, optimizer=optim.adam(1e-3), key=regfn.random.key(0), **kw)
    assert steps_taken == [(16, 8)] * 6  # three batches a epoch
    assert result.rows[1]["loss"] == pytest.approx(single.metrics["loss"], rel=1e-5)


@pytest.mark.parametrize("shape", [(3, 37, 45), (2, 64, 32), (4, 5, 200), (2, 9, 2100)])  # rows cut past 1024
@pytest.mark.parametrize("l2", [False, True])
def test_a_gradient_stored_transposed_gives_the_same_step(shape, l2, fuse_from_40):
    """Rows of configurations whose gradient is each configuration's matrix transposed (a vmapped bmm's weight
    gradient): read as it is (regfn_adam_step_t, tiles of 8 rows cut anywhere, rows past 1024 columns cut), the
    bits of the row-major gradient's step."""
    k, a, b = shape
    gen = torch.Generator().manual_seed(a)
    g_t = torch.randn(k, b, a, generator=gen).mT
    assert fused.transposed_rows(g_t)
    assert not fused.transposed_rows(g_t.contiguous())
    m, v, p = (torch.randn(k, a, b, generator=gen) for _ in range(3))
    v = v.abs()
    calls = []
    run = fused._run
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fused, "_run", lambda *args, **kw: calls.append(args[0]) or run(*args, **kw))
        with checks.rows_of_configurations(k):
            column = torch.linspace(0.01, 0.5, k).reshape(k, 1, 1)
            scalars = fused.pack(0.1, 0.999, 0.001, 0.05, column * 1e-3, -column, *((column * 0.1,) if l2 else ()))
            got = fused.adam_step(g_t, m, v, p, scalars)
            want = fused.adam_step(g_t.contiguous(), m, v, p, scalars)
    assert calls == [
        "regfn_adam_step_l2_t" if l2 else "regfn_adam_step_t",
        "regfn_adam_step_l2" if l2 else "regfn_adam_step",
    ]
    assert_same_bits(got, want)
    assert all(t.is_contiguous() and t.shape == (k, a, b) for t in got)
