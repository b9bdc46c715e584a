"""Penalties' gradients in closed form (regfn.penalties._closed): L1, L2 and the elastic net differentiated by
hand, the L2 term added in the optimizer's update (in the C kernel's whole Adam step where it runs), with the bits
of autograd's gradient of the penalized loss; training steps, rows and vmapped updates take it alike."""

from __future__ import annotations

import contextlib
import functools
import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import vmap
from torch.utils._pytree import tree_leaves

import regfn
from regfn import optim
from regfn.penalties import elastic_net, l1, l2, norm, penalize

closed = importlib.import_module("regfn.penalties._closed")
base = importlib.import_module("regfn.optim._base")
stepping = importlib.import_module("regfn.optim._step")
checks = importlib.import_module("regfn.optim._checks")
fused = importlib.import_module("regfn.optim._fused")
native = importlib.import_module("regfn.random._native")
program = importlib.import_module("regfn._sweep._program")
training = importlib.import_module("regfn._train")

SHAPES = {"w1": (16, 12), "b1": (16,), "w2": (3, 16), "b2": (3,)}  # with FUSE_FROM 40: w1 and w2 fused
PENALTIES = {
    "l2": lambda s: [l2(s)],
    "l1": lambda s: [l1(s)],
    "elastic_net": lambda s: [elastic_net(s / 3, s)],
    "l1 + l2": lambda s: [l1(s / 5), l2(s)],
    "l2 on weights": lambda s: [l2(s, mask=["w1", "w2"])],
}


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def assert_same_bits(a, b):
    for x, y in zip(tree_leaves(a), tree_leaves(b), strict=True):
        assert x.dtype == y.dtype
        assert x.shape == y.shape
        assert torch.equal(bits(x), bits(y))


def tensors(seed: int, lead: tuple[int, ...] = ()) -> tuple[dict, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = {n: torch.randn(*lead, *s, generator=gen) for n, s in SHAPES.items()}
    params["w1"][..., 0, :3] = 0.0  # sgn(0) = 0
    return params, torch.randn(*lead, 5, 12, generator=gen)


def data_loss(params, x):
    """Each parameter used once, as a model uses its weights."""
    h = torch.tanh(x @ params["w1"].T + params["b1"])
    return (h @ params["w2"].T + params["b2"]).square().mean()


def completed(grads, params, form):
    """The closed form added by hand: the L1 terms, then the L2 terms."""
    grads = closed.add_l1_gradient(grads, params, form.l1)
    return {k: base.with_l2_gradient(g, params[k], form.l2[k]) if k in form.l2 else g for k, g in grads.items()}


STRENGTHS = st.one_of(st.floats(1e-30, 10.0), st.floats(1e-6, 1.0).map(lambda s: torch.tensor(s, dtype=torch.float32)))


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(PENALTIES)), strength=STRENGTHS, seed=st.integers(0, 2**31 - 1))
def test_the_closed_form_is_autograds_gradient_bit_for_bit(name, strength, seed):
    params, x = tensors(seed)
    pens = PENALTIES[name](strength)
    form = closed.closed_form(params, pens)
    assert form is not None
    want = torch.func.grad(penalize(data_loss, *pens))(params, x)
    got = completed(torch.func.grad(data_loss)(params, x), params, form)
    if name in ("l2", "l1", "l2 on weights"):  # two contributions a leaf: the order of the sum cannot matter
        assert_same_bits(got, want)
    else:  # three: autograd's order of additions is its own
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-6, atol=1e-7)
    plain = training.plain_grad_and_value(lambda p: penalize(data_loss, *pens)(p, x))(params)[0]
    if name in ("l2", "l1"):  # plain autograd's gradient too (what eager steps take)
        assert_same_bits(want, plain)


def test_vmapped_strengths_give_each_configuration_its_own_closed_form():
    params, x = tensors(3, (4,))
    grads = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) for n, p in params.items()}
    strengths = torch.tensor([0.0, 1e-4, 1e-2, 3.0])

    def penalties(s):
        return [l2(s), l1(s / 7)]

    def terms(p, g, s):
        return completed(g, p, closed.closed_form(p, penalties(s)))

    def both(p, s, x):
        pens = penalties(s)
        return terms(p, torch.func.grad(data_loss)(p, x), s), torch.func.grad(penalize(data_loss, *pens))(p, x)

    got, want = vmap(both)(params, strengths, x)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-6, atol=1e-7)
    got = vmap(terms)(params, grads, strengths)
    for i in range(4):
        alone = terms({n: p[i] for n, p in params.items()}, {n: g[i] for n, g in grads.items()}, strengths[i])
        assert all(torch.equal(bits(got[n][i]), bits(alone[n])) for n in alone)


def test_what_has_no_closed_form_goes_to_autograd():
    params, _ = tensors(0)
    assert closed.closed_form(params, [norm(0.1)]) is None
    assert closed.closed_form(params, [l2(0.1), norm(0.1)]) is None
    assert closed.closed_form(params, [l2(0.1), l2(0.2, mask=["w1"])]) is None  # w1 penalized twice by one kind
    assert closed.closed_form(params, [l2(0.1, mask=["w1"]), l2(0.2, mask=["w2"])]) is not None
    mixed = {**params, "b2": params["b2"].double()}
    assert closed.closed_form(mixed, [l2(0.1)]) is None  # the sum promotes: autograd rounds in float64
    assert closed.closed_form(mixed, [l2(0.1, mask=["w1", "w2"])]) is not None
    assert closed.closed_form(params, []) == closed.ClosedForm({}, {})

    class Custom(regfn.penalties.Penalty):
        mask = None

        def value(self, params):
            return params["w1"].sum()

    assert closed.closed_form(params, [Custom()]) is None


def test_a_strength_column_is_a_strength_only_inside_rows_of_configurations():
    column = torch.full((3, 1), 0.1)
    with pytest.raises(ValueError, match="strength must be a scalar"):
        l2(column)
    with checks.rows_of_configurations(3):
        assert l2(column).strength is column
        with pytest.raises(ValueError, match="strength must be a scalar"):
            l2(torch.full((2, 1), 0.1))


@pytest.fixture
def kernel_calls(monkeypatch):
    """The kernels the fused updates ran, with FUSE_FROM 40 (w1 and w2 take them)."""
    calls = []
    run = fused._run
    monkeypatch.setattr(fused, "_run", lambda *a, **kw: calls.append(a[0]) or run(*a, **kw))
    monkeypatch.setattr(fused, "FUSE_FROM", 40)
    return calls


OPTIMIZERS = {
    "adam": lambda: optim.adam(1e-2),
    "adam, lr tensor": lambda: optim.adam(torch.tensor(3e-2), betas=(0.8, 0.99)),
    "adam + weight_decay": lambda: optim.adam(1e-2, weight_decay=1e-3),
    "amsgrad": lambda: optim.adam(1e-2, amsgrad=True),
    "adamw": lambda: optim.adamw(1e-2),
    "sgd": lambda: optim.sgd(1e-2, momentum=0.9),
}


def run_updates(opt, params, steps, l2_of, rows=None, *, within=True):
    """``steps`` updates; ``within``: the L2 terms handed to update_and_apply, else added to the gradients first."""
    state = opt.init(params)
    with checks.rows_of_configurations(rows) if rows else contextlib.nullcontext():
        for g in steps:
            c = l2_of(params)
            if within:
                params, state = stepping.update_and_apply(opt, params, g, state, c)
            else:
                g = {k: base.with_l2_gradient(v, params[k], c[k]) if k in c else v for k, v in g.items()}
                params, state = stepping.update_and_apply(opt, params, g, state)
    return params, state


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_l2_term_within_the_update_equals_it_added_before(name, kernel_calls):
    params, _ = tensors(7)
    gen = torch.Generator().manual_seed(1)
    steps = [{n: torch.randn(p.shape, generator=gen) * 10.0**i for n, p in params.items()} for i in range(-1, 2)]
    strength = torch.tensor(3e-2)

    def l2_of(p):
        return closed.closed_form(p, [l2(strength, mask=["w1", "b1", "w2"])]).l2

    opt = OPTIMIZERS[name]()
    within = run_updates(opt, params, steps, l2_of)
    calls = list(kernel_calls)
    assert_same_bits(within, run_updates(opt, params, steps, l2_of, within=False))
    if native.status() == "on" and name in ("adam", "adam, lr tensor"):  # not after a transform, not AdamW's
        assert calls.count("regfn_adam_step_l2") == 6  # w1 and w2, three steps: the penalty in the kernel's pass
    else:
        assert "regfn_adam_step_l2" not in calls


def test_rows_and_vmapped_updates_with_the_l2_term_equal_each_configuration_alone(kernel_calls):
    k = 4
    params, _ = tensors(8, (k,))
    gen = torch.Generator().manual_seed(2)
    steps = [{n: torch.randn(p.shape, generator=gen) for n, p in params.items()} for _ in range(2)]
    lr, strength = torch.linspace(1e-3, 1e-1, k), torch.tensor([0.0, 1e-3, 1e-1, 2.0])

    def alone(i):
        one = {n: p[i] for n, p in params.items()}
        return run_updates(optim.adam(lr[i]), one, [{n: g[i] for n, g in s.items()} for s in steps],
                           lambda p: closed.closed_form(p, [l2(strength[i])]).l2)[0]  # fmt: skip

    rows = {n: p.reshape(k, -1) for n, p in params.items()}
    with checks.rows_of_configurations(k):
        opt, column = optim.adam(lr.reshape(k, 1)), strength.reshape(k, 1)
    got_rows = run_updates(opt, rows, [{n: g.reshape(k, -1) for n, g in s.items()} for s in steps],
                           lambda p: closed.closed_form(p, [l2(column)]).l2, rows=k)[0]  # fmt: skip

    def one(p, g0, g1, lr_i, s):
        return run_updates(optim.adam(lr_i), p, [g0, g1], lambda q: closed.closed_form(q, [l2(s)]).l2)[0]

    got_vmap = vmap(one)(params, steps[0], steps[1], lr, strength)
    for i in range(k):
        want = alone(i)
        for n, p in want.items():
            assert torch.equal(bits(got_rows[n][i].reshape(p.shape)), bits(p))
            assert torch.equal(bits(got_vmap[n][i]), bits(p))
    if native.status() == "on":
        assert "regfn_adam_step_l2" in kernel_calls


@pytest.mark.parametrize("pens", ["l2", "l1", "l1 + l2", "elastic_net"])
@pytest.mark.parametrize("opt", ["adam", "sgd"])
@pytest.mark.parametrize("plain", [True, False], ids=["plain autograd", "torch.func"])
def test_a_training_step_equals_the_penalized_losss_autograd(pens, opt, plain, monkeypatch):
    monkeypatch.setattr(fused, "FUSE_FROM", 40)
    model = regfn.mlp((12, 16, 3), output="logits")
    params = model.init(regfn.random.key(0))
    x, y = torch.randn(10, 12, generator=torch.Generator().manual_seed(0)), torch.arange(10) % 3
    loss = regfn.losses.get_loss("cross_entropy")
    penalties = PENALTIES[pens](torch.tensor(2e-2))
    optimizer = OPTIMIZERS[opt]()

    def run():
        p, state = params, optimizer.init(params)
        for i in range(3):
            p, state, value = training.train_step(model, loss, optimizer, penalties, 0.25, p, state, x, y,
                                                  regfn.random.key(i), None, plain)  # fmt: skip
        return p, state, value

    got = run()
    monkeypatch.setattr(training, "closed_form", lambda params, penalties: None)  # everything by autograd
    want = run()
    if pens in ("l2", "l1"):
        assert_same_bits(got, want)
    else:
        for a, b in zip(tree_leaves(got), tree_leaves(want), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_an_eager_sweep_adds_the_l2_term_in_the_kernel_and_its_rows_equal_train_alone(kernel_calls):
    """The sweep's objective is differentiated without its penalty; the update as rows adds it (Adam: in the
    kernel's whole step), and each row equals regfn.train of its configuration (to float tolerance: a vmapped
    matmul may sum in another order than a plain one)."""
    data = regfn.data.standardize(regfn.data.synthetic_diabetes(regfn.random.key(0), n=96))[0]
    model = regfn.mlp((8, 16, 1), output="logits")
    configs = [{"l2": 1e-2, "lr": 1e-2, "seed": 1}, {"l2": 0.0, "lr": 1e-2, "seed": 1}, {"l2": 1e-1, "lr": 3e-3}]
    kw = {"epochs": 2, "batch_size": 32, "compile": False}
    result = regfn.sweep(model, data, configs, optimizer="adam", quiet=True, **kw)
    if native.status() == "on":
        assert "regfn_adam_step_l2_t" in kernel_calls  # the weight's gradient read as autograd returns it
    for row, config in zip(result.rows, configs, strict=True):
        alone = regfn.train(model, data, penalties=[l2(config["l2"])], optimizer=optim.adam(config["lr"]),
                            key=regfn.random.key(config.get("seed", 0)), **kw)  # fmt: skip
        assert row["loss"] == pytest.approx(alone.metrics["loss"], rel=1e-5)
        assert row["penalty"] == pytest.approx(alone.metrics["penalty"], rel=1e-5)


def test_the_update_of_a_spec_with_penalties_as_rows_equals_the_vmapped_one(kernel_calls):
    """program.update_rows (a sweep's eager update: (K, 1) strength columns) against program.update vmapped."""
    k = 3
    model = regfn.mlp((5, 9, 1), output="logits")
    hp = {
        "lr": torch.tensor([1e-3, 1e-2, 1e-1]),
        "l2": torch.tensor([0.0, 1e-2, 1.0]),
        "l1": torch.tensor([0, 1e-3, 0.1]),
    }
    spec = program.Spec(model, regfn.losses.get_loss("bce_logits"), "adam", ("lr",), ("l1", "l2"), False)
    g = torch.Generator().manual_seed(0)
    params = {n: torch.randn(k, *p.shape, generator=g) for n, p in model.init(regfn.random.key(0)).items()}
    state = {"params": params, "opt": vmap(lambda p, h: program._optimizer(spec, h).init(p))(params, hp)}
    vmapped = rows = state
    for _ in range(2):
        grads = {n: torch.randn(p.shape, generator=g) for n, p in params.items()}
        vmapped = vmap(functools.partial(program.update, spec))(vmapped, hp, grads)
        rows = program.update_rows(spec, rows, hp, grads)
        assert_same_bits(rows, vmapped)


def test_the_closed_form_traces_whole_in_a_compiled_vmapped_step():
    """Dynamo traces it without a graph break (a break would make a compiled sweep fall back to eager)."""
    model = regfn.mlp((6, 8, 2), output="logits")
    spec = program.Spec(model, regfn.losses.get_loss("cross_entropy"), "adam", ("lr",), ("l1", "l2"), False)
    hp = {"lr": torch.tensor([1e-2, 1e-3]), "l1": torch.tensor([0.0, 1e-3]), "l2": torch.tensor([1e-2, 0.0]),
          "p": torch.tensor([0.0, 0.5]), "seed": torch.tensor([0, 1])}  # fmt: skip
    state = vmap(functools.partial(program.init_state, spec))(hp)
    x, y = torch.randn(5, 6, generator=torch.Generator().manual_seed(0)), torch.arange(5) % 2
    args = (x, y, torch.tensor(0), torch.tensor(0))
    step = vmap(functools.partial(program.step, spec), in_dims=(0, 0, None, None, None, None))
    eager = step(state, hp, *args)  # first: what a loss caches about itself on its first call is not traced
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="eager")(state, hp, *args)
    for a, b in zip(tree_leaves(compiled), tree_leaves(eager), strict=True):  # eager: the C kernel's sqrt
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_steps_whose_objective_nobody_reads_skip_the_penalties_value_and_change_nothing(monkeypatch):
    """An eager sweep computes the closed-form penalties' value only for an epoch's last mini-batch (the
    objective it logs and checks for NaN); every other step leaves it out. The results, curves included, are
    those of counting it at every step, and the unread step's state is the counted step's bit for bit."""
    data = regfn.data.standardize(regfn.data.synthetic_diabetes(regfn.random.key(0), n=96))[0]
    model = regfn.mlp((8, 16, 1), output="logits")
    configs = regfn.grid(l2=[0.0, 1e-2, 1.0], l1=[0.0, 1e-3], lr=[1e-2])
    kw = {"epochs": 3, "batch_size": 32, "compile": False, "optimizer": "adam", "quiet": True, "log_every": 1}
    calls = []
    real = program.BatchedAutogradStep.__call__

    def spy(self, *args):
        calls.append(self.counted)
        return real(self, *args)

    monkeypatch.setattr(program.BatchedAutogradStep, "__call__", spy)
    skipped = regfn.sweep(model, data, configs, **kw)
    assert calls.count(True) == 3
    assert calls.count(False) == 6
    monkeypatch.setattr(program.Program, "__init__", _counting_everywhere(program.Program.__init__))
    program._cached_program.cache_clear()
    try:
        counted = regfn.sweep(model, data, configs, **kw)
    finally:
        program._cached_program.cache_clear()
    assert skipped.rows == counted.rows
    assert all(torch.equal(skipped.curves[n], counted.curves[n]) for n in counted.curves)


def _counting_everywhere(init):
    def patched(self, spec, compiled, only_steps=False):
        init(self, spec, compiled, only_steps)
        self.step_batch_unread = self.step_batch

    return patched


def test_an_unread_step_is_a_counted_step_less_the_penalties_value():
    model = regfn.mlp((6, 9, 2), output="logits")
    spec = program.Spec(model, regfn.losses.get_loss("cross_entropy"), "adam", ("lr",), ("l1", "l2"), True)
    hp = {"lr": torch.tensor([1e-2, 1e-3]), "l1": torch.tensor([1e-3, 0.0]), "l2": torch.tensor([0.0, 0.5]),
          "p": torch.tensor([0.0, 0.5]), "seed": torch.tensor([0, 1])}  # fmt: skip
    state = vmap(functools.partial(program.init_state, spec))(hp)
    x, y = torch.randn(7, 6, generator=torch.Generator().manual_seed(0)), torch.arange(7) % 2
    idx = torch.tensor([[0, 2, 4], [1, 3, 5]])
    args = (hp, x, y, idx, torch.tensor(0), torch.tensor(1))
    new_counted, value_counted = program.BatchedAutogradStep(spec, True)(state, *args)
    new_unread, value_unread = program.BatchedAutogradStep(spec, True, counted=False)(state, *args)
    assert_same_bits(new_unread, new_counted)
    penalty = vmap(lambda p, h: regfn.penalties.penalty_value(p, l1(h["l1"]), l2(h["l2"])))(state["params"], hp)
    assert torch.equal(bits(value_unread + penalty), bits(value_counted))
