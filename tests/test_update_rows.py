"""A sweep's eager update of every configuration at once without vmap (regfn._sweep._program.update_rows: each
parameter a (K, a, b) block, each optimizer argument a (K, 1, 1) column) equals the vmapped update bit for bit, for
every registered optimizer that declares itself elementwise, with every argument live, and weight gradients stored
transposed as autograd returns them; an optimizer that does not declare it keeps the vmapped update."""

from __future__ import annotations

import functools
import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import vmap

import regfn
from regfn import optim

program = importlib.import_module("regfn._sweep._program")
checks = importlib.import_module("regfn.optim._checks")
fused = importlib.import_module("regfn.optim._fused")

MODEL = regfn.mlp((5, 7, 3, 1), output="logits")
ELEMENTWISE = sorted(name for name, spec in optim.optimizers().items() if spec.elementwise)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def arguments(name: str, k: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Every argument of optimizer ``name``, K values each inside its range (a zero now and then)."""
    out = {}
    for arg in optim.optimizers()[name].arg_names:
        top = 0.99 if arg in ("beta1", "beta2", "alpha", "dampening", "momentum") else 0.1
        values = torch.rand(k, generator=g, dtype=torch.float64) * top
        values[0] = 0.0 if arg not in ("lr", "beta2", "alpha") else values[0]
        out[arg] = values.to(torch.float32)
    return out


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(ELEMENTWISE),
    k=st.integers(1, 5),
    steps=st.integers(1, 3),
    seed=st.integers(0, 2**31),
    fuse_from=st.sampled_from([fused.FUSE_FROM, 16]),
    transposed=st.booleans(),
)
def test_the_rows_update_equals_the_vmapped_one(name, k, steps, seed, fuse_from, transposed):
    """With a small FUSE_FROM, Adam's moments of the larger leaves take the C kernel's pass on both paths; with
    weight gradients stored transposed (as autograd returns them), the rows' whole Adam step reads them so
    (regfn_adam_step_t) and every other update a row-major copy."""
    patch = pytest.MonkeyPatch()
    patch.setattr(fused, "FUSE_FROM", fuse_from)
    try:
        run_both(name, k, steps, seed, transposed)
    finally:
        patch.undo()


def gradient(shape: torch.Size, g: torch.Generator, transposed: bool) -> torch.Tensor:
    """A random gradient; ``transposed``: a (K, a, b) one stored as (K, b, a), as autograd returns a vmapped
    bmm's weight gradient."""
    if transposed and len(shape) == 3:
        return torch.randn(shape[0], shape[2], shape[1], generator=g).mT
    return torch.randn(shape, generator=g)


def run_both(name: str, k: int, steps: int, seed: int, transposed: bool = False) -> None:
    g = torch.Generator().manual_seed(seed)
    hp = arguments(name, k, g)
    spec = program.Spec(MODEL, regfn.losses.get_loss("bce_logits"), name, tuple(hp), (), False)
    params = {n: torch.randn(k, *p.shape, generator=g) for n, p in MODEL.init(regfn.random.key(0)).items()}
    opt_state = vmap(lambda p, h: program._optimizer(spec, h).init(p))(params, hp)
    vmapped = {"params": params, "opt": opt_state}
    rows = vmapped
    for _ in range(steps):
        grads = {n: gradient(p.shape, g, transposed) for n, p in params.items()}
        vmapped = vmap(functools.partial(program.update, spec))(vmapped, hp, grads)
        rows = program.update_rows(spec, rows, hp, grads)
        for a, b in zip(torch.utils._pytree.tree_leaves(rows), torch.utils._pytree.tree_leaves(vmapped), strict=True):
            assert a.shape == b.shape
            assert torch.equal(bits(a), bits(b))


def test_the_builtin_optimizers_are_elementwise_and_others_are_not_unless_declared():
    assert ELEMENTWISE == ["adagrad", "adam", "adamw", "rmsprop", "sgd"]
    toy = optim.register(optim.OptimizerSpec("toy_rows", optim.sgd, ("lr",)))
    try:
        spec = program.Spec(MODEL, regfn.losses.get_loss("bce_logits"), "toy_rows", ("lr",), (), False)
        assert not toy.elementwise
        assert not isinstance(program.BatchedAutogradStep(spec, rows=False).update, functools.partial)
        spec = program.Spec(MODEL, regfn.losses.get_loss("bce_logits"), "sgd", ("lr",), (), False)
        assert program.BatchedAutogradStep(spec, rows=False).update.func is program.update_rows
    finally:
        optim.unregister("toy_rows")


def test_a_column_of_values_is_an_argument_only_inside_rows_of_configurations():
    column = torch.full((3, 1), 0.1)
    with pytest.raises(ValueError, match="lr must be a single value"):
        optim.sgd(column)
    with checks.rows_of_configurations(3):
        optim.sgd(column)
        with pytest.raises(ValueError, match="lr must be a single value"):
            optim.sgd(torch.full((2, 1), 0.1))  # not K rows
    with pytest.raises(ValueError, match="lr must be a single value"):
        optim.sgd(column)


def test_the_rows_update_takes_the_kernels_pass_where_the_vmapped_one_does(monkeypatch):
    """Adam's step of a leaf of FUSE_FROM elements or more a configuration comes from the C kernel on both
    paths (its sqrt may differ from torch's by an ulp, so both must choose alike): the whole step
    (tests/test_adam_step.py), after the coupled weight decay, which is live here."""
    calls = []
    run = fused._run
    monkeypatch.setattr(fused, "_run", lambda *a, **kw: calls.append((a[0], a[1][0].shape)) or run(*a, **kw))
    monkeypatch.setattr(fused, "FUSE_FROM", 22)  # fc1.weight (7 x 5 = 35) only, not fc2.weight (21)
    run_both("adam", 4, 1, 0)
    if fused._native.loaded():
        # vmapped (the batched leaf taken apart), then as rows
        assert calls == [("regfn_adam_step", (4, 7, 5)), ("regfn_adam_step", (4, 7, 5))]


def test_a_transposed_weight_gradient_is_read_as_it_came_with_the_same_bits(monkeypatch):
    """Adam without a transform before it, an L2 penalty live: the rows' whole step reads fc1.weight's transposed
    gradient in the kernel (regfn_adam_step_l2_t), the vmapped update a row-major copy; the bits agree, and the
    small leaves' torch operations take row-major rows."""
    calls = []
    run = fused._run
    monkeypatch.setattr(fused, "_run", lambda *a, **kw: calls.append((a[0], a[1][0].shape)) or run(*a, **kw))
    monkeypatch.setattr(fused, "FUSE_FROM", 22)  # fc1.weight (7 x 5 = 35) only
    k = 4
    g = torch.Generator().manual_seed(3)
    hp = {"lr": torch.tensor([1e-3, 1e-2, 3e-2, 0.1]), "l2": torch.tensor([0.0, 1e-3, 0.1, 1.0])}
    spec = program.Spec(MODEL, regfn.losses.get_loss("bce_logits"), "adam", ("lr",), ("l2",), False)
    params = {n: torch.randn(k, *p.shape, generator=g) for n, p in MODEL.init(regfn.random.key(0)).items()}
    state = {"params": params, "opt": vmap(lambda p, h: program._optimizer(spec, h).init(p))(params, hp)}
    vmapped = rows = state
    for _ in range(2):
        grads = {n: gradient(p.shape, g, transposed=True) for n, p in params.items()}
        assert fused.transposed_rows(grads["fc1.weight"])
        vmapped = vmap(functools.partial(program.update, spec))(vmapped, hp, grads)
        rows = program.update_rows(spec, rows, hp, grads)
        for a, b in zip(torch.utils._pytree.tree_leaves(rows), torch.utils._pytree.tree_leaves(vmapped), strict=True):
            assert a.shape == b.shape
            assert torch.equal(bits(a), bits(b))
    if fused._native.loaded():
        assert calls == [("regfn_adam_step_l2", (4, 7, 5)), ("regfn_adam_step_l2_t", (4, 7, 5))] * 2
