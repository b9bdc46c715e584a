"""What one configuration computes, written once and vmapped over configurations.

A :class:`Spec` is everything a sweep holds fixed (model, loss, optimizer,
which penalties and optimizer arguments are live, full batch or not); the
hyperparameters are a dict of ``(K,)`` tensors, one entry per configuration,
so new values never change the program. The pure per-configuration functions
here (initial state, one step, a mini-batch order, the evaluation) are what
:func:`regfn.train` runs for one configuration; :class:`Program` holds them
vmapped (and compiled) for the engines, which decide how to run them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import vmap
from torch.utils import _pytree

from .. import optim
from .._hparams import LAYER_RATE_NAMES
from .._inductor import cpu_step_options
from .._train import (
    apply_gradients,
    evaluate,
    plain_grad_and_value,
    run_keys,
    step_key,
    train_step,
    training_objective,
)
from ..data import batches
from ..losses import Loss
from ..nn import Model
from ..optim._checks import rows_of_configurations
from ..penalties import Penalty, l1, l2, norm
from ..penalties._closed import closed_form
from ..random import DEFAULT_IMPL, check_impl, fold_in
from ..random import key as make_key

__all__ = [
    "PENALTIES",
    "OneConfig",
    "Program",
    "Spec",
    "build_optimizer",
    "live_optimizer_args",
    "program",
]

PENALTIES: Mapping[str, Callable[[Any], Penalty]] = {
    "l1": l1,
    "l2": l2,
    "norm2": lambda s: norm(s, 2),  # the tutorial's strength * sum_p ||p||_2
}
"""The penalty of each penalty hyperparameter, built from its strength."""


def build_optimizer(name: str, values: Mapping[str, Any]) -> optim.Transform:
    """The optimizer ``name`` built from registry values (see :meth:`regfn.optim.OptimizerSpec.build`)."""
    return optim.optimizers()[name].build(values)


def live_optimizer_args(rows: Sequence[Mapping[str, Any]], optimizer: str) -> tuple[str, ...]:
    """The arguments handed to the optimizer as tensors: ``lr`` and any other that leaves the factory's default.

    The rest keep the factory's default as a Python number, so an argument
    nobody sweeps adds no work to the step. (A sweep's AdamW has no weight
    decay unless a configuration sets one, so there ``weight_decay`` is live.)
    """
    spec = optim.optimizers()[optimizer]
    own = spec.factory_defaults()
    return tuple(name for name in spec.arg_names if name == "lr" or any(r[name] != own.get(name) for r in rows))


@dataclass(frozen=True)
class Spec:
    """What stays fixed across configurations (the compiled program depends on it).

    Attributes:
        model: the model.
        loss: the loss.
        optimizer: the optimizer's name (a name of :func:`regfn.optim.optimizers`).
        optimizer_args: the registry names handed to the optimizer as
            per-configuration tensors; the others keep the factory's default
            (so an argument nobody sweeps costs nothing).
        penalties: the penalty names some configuration turns on.
        minibatch: keyed mini-batches (else full batch).
        layer_rates: 0 to give the model one dropout rate (``p``), else the
            number of per-call rates ``p1`` .. ``p<layer_rates>`` it gets.
        key_impl: the implementation of the configurations' keys
            (:func:`regfn.random.key`'s ``impl``): each configuration's run key
            is ``regfn.random.key(seed, impl=key_impl)``, and every key split
            or folded from it (weights, dropout masks, mini-batch orders) is
            of the same kind.

    Raises:
        ValueError: for an unknown ``key_impl`` (named as ``regfn.sweep``'s argument).
    """

    model: Model
    loss: Loss
    optimizer: str
    optimizer_args: tuple[str, ...]
    penalties: tuple[str, ...]
    minibatch: bool
    layer_rates: int = 0
    key_impl: str = DEFAULT_IMPL

    def __post_init__(self) -> None:
        check_impl(self.key_impl, "regfn.sweep: key_impl")


def _optimizer(spec: Spec, hp: Mapping[str, Tensor]) -> optim.Transform:
    """A configuration's optimizer, its live arguments from ``hp``."""
    return build_optimizer(spec.optimizer, {n: hp[n] for n in spec.optimizer_args})


def _penalties(spec: Spec, hp: Mapping[str, Tensor]) -> list[Penalty]:
    """A configuration's penalties (the live ones, their strengths from ``hp``)."""
    return [PENALTIES[n](hp[n]) for n in spec.penalties]


def init_state(spec: Spec, hp: Mapping[str, Tensor]) -> dict[str, Any]:
    """One configuration's starting state: params, optimizer state, dropout and shuffle keys."""
    init_key, dropout_key, shuffle_key = run_keys(make_key(hp["seed"], impl=spec.key_impl))
    params = spec.model.init(init_key)
    return {"params": params, "opt": _optimizer(spec, hp).init(params), "dkey": dropout_key, "skey": shuffle_key}


def rates(spec: Spec, hp: Mapping[str, Tensor]) -> Any:
    """The dropout rate(s) a configuration hands its model: ``p``, or ``(p1, ..., p<k>)``."""
    if spec.layer_rates == 0:
        return hp["p"]
    return tuple(hp[name] for name in LAYER_RATE_NAMES[: spec.layer_rates])


def step(
    spec: Spec,
    state: dict[str, Any],
    hp: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    epoch: Tensor,
    batch: Tensor,
    plain_autograd: bool = False,
) -> tuple[dict[str, Any], Tensor]:
    """One optimizer step of one configuration on ``(x, y)``; returns (state, objective).

    ``plain_autograd``: gradients by plain autograd (an eager step of one configuration, not vmapped), see
    :func:`regfn._train.train_step`.
    """
    # The optimizer is built first: compiled, the digits CNN's step ran 2x slower with it built after the
    # gradient (12.3 against 5.8 s for 16 configurations, 3 epochs; docs/benchmarks/sweep.md).
    opt, pens = _optimizer(spec, hp), _penalties(spec, hp)
    k = step_key(state["dkey"], epoch, batch)
    params, opt_state, value = train_step(
        spec.model, spec.loss, opt, pens, rates(spec, hp), state["params"], state["opt"], x, y, k, hp, plain_autograd
    )
    return {**state, "params": params, "opt": opt_state}, value


def objective(
    spec: Spec, params: dict[str, Tensor], dkey: Tensor, hp: Mapping[str, Tensor], x: Tensor, y: Tensor,
    epoch: Tensor, batch: Tensor, counted: bool = True,
) -> Tensor:  # fmt: skip
    """One configuration's training objective at ``params`` on ``(x, y)``, with the dropout masks of this step
    from its dropout key ``dkey`` (``state["dkey"]``): what :func:`step` differentiates
    (:class:`BatchedAutogradStep`'s forward; vmapped, only the tensors it reads are batched). Not ``counted``:
    penalties in closed form are left out of the value too (see :func:`regfn._train.training_objective`)."""
    k = step_key(dkey, epoch, batch)
    pens = _penalties(spec, hp)
    closed = closed_form(params, pens) is not None  # then update() adds their gradients
    return training_objective(spec.model, spec.loss, pens, rates(spec, hp), x, y, k, hp, closed, counted)(params)


def update(spec: Spec, state: dict[str, Any], hp: Mapping[str, Tensor], grads: dict[str, Tensor]) -> dict[str, Any]:
    """One configuration's optimizer update from ``grads`` (those of :func:`objective`, whose penalties in closed
    form are added here): the rest of :func:`step`."""
    params = state["params"]
    form = closed_form(params, _penalties(spec, hp))
    params, opt_state = apply_gradients(_optimizer(spec, hp), params, grads, state["opt"], form)
    return {**state, "params": params, "opt": opt_state}


def update_rows(
    spec: Spec, state: dict[str, Any], hp: Mapping[str, Tensor], grads: dict[str, Tensor]
) -> dict[str, Any]:
    """Every configuration's :func:`update` at once, without ``vmap``, for an elementwise optimizer
    (:attr:`regfn.optim.OptimizerSpec.elementwise`).

    Each tensor of the parameters, gradients and optimizer state (``(K, ...)``:
    a configuration a row) is seen as a ``(K, a, b)`` block of rows (:func:`_blocks`),
    and each optimizer argument and penalty strength as a ``(K, 1, 1)`` column,
    so that every operation broadcasts a configuration's arguments along its
    own rows: the operations ``vmap`` runs, on the same values, without its cost
    per operation (tens of microseconds, most of an eager update of a small
    model: docs/benchmarks/search.md). A weight's gradient, which autograd
    returns transposed per configuration, stays as it came: the C kernel's whole
    Adam step reads it so, every other update a row-major copy
    (:func:`regfn.optim._checks.dense_in_rows`).
    """
    k = hp["lr"].shape[0]
    was = (state["params"], state["opt"])
    params, opt_state = _pytree.tree_map(lambda t: _blocks(t, k) if isinstance(t, Tensor) else t, was)
    columns = {name: hp[name].reshape(k, 1, 1) for name in spec.optimizer_args}
    strengths = {name: hp[name].reshape(k, 1, 1) for name in spec.penalties}
    with rows_of_configurations(k):
        form = closed_form(params, _penalties(spec, strengths))
        new = apply_gradients(_optimizer(spec, columns), params, {n: _blocks(g, k) for n, g in grads.items()}, opt_state,
                              form)  # fmt: skip
    params, opt_state = _pytree.tree_map(lambda t, old: t.reshape(old.shape) if isinstance(t, Tensor) else t, new, was)
    return {**state, "params": params, "opt": opt_state}


def _blocks(t: Tensor, k: int) -> Tensor:
    """``t`` (``(K, ...)``) as ``(K, a, b)``: a configuration's matrix as it is (a view, whatever its layout),
    anything else as one row ``(K, 1, n)``."""
    return t if t.ndim == 3 else t.reshape(k, 1, -1)


class BatchedAutogradStep:
    """Every configuration's eager :func:`step` (or :func:`step_batch`), the gradients by plain autograd.

    The objectives are vmapped forward only; one ``torch.autograd.grad`` of
    their sum gives each configuration its own gradient (no term of the sum
    depends on another configuration's parameters), then the optimizer
    updates run: all at once as rows (:func:`update_rows`) for an elementwise
    optimizer, else vmapped. The same arithmetic as ``vmap(grad(...))`` without
    functorch's grad transform, which wraps every operation and whose first
    use imports ``torch._dynamo`` (about a second in a fresh process):
    docs/benchmarks/sweep.md. Compiled steps keep ``torch.func``. Not
    ``counted``: the objectives returned leave out the penalties whose gradients
    are in closed form (:attr:`Program.step_batch_unread`).
    """

    def __init__(self, spec: Spec, rows: bool, counted: bool = True):
        data = 0 if rows else None  # each configuration's own rows, gathered before the vmap (see __call__)
        self.counted = counted
        one = functools.partial(objective, spec, counted=counted)
        self.objective = vmap(one, in_dims=(0, 0, 0, data, data, None, None))
        self.update: Callable[..., dict[str, Any]]
        if optim.optimizers()[spec.optimizer].elementwise:
            self.update = functools.partial(update_rows, spec)
        else:
            self.update = vmap(functools.partial(update, spec), in_dims=(0, 0, 0))
        self.rows = rows

    def __call__(self, state: dict[str, Any], hp: Mapping[str, Tensor], x: Tensor, y: Tensor, *rest: Tensor) -> Any:
        """``(state, hp, x, y, [idx,] epoch, batch) -> (state, objectives)``, as :class:`Program`'s step."""
        if self.rows:  # x[idx] under vmap is advanced indexing, about 4x slower than one index_select
            x, y = (_rows(t, rest[0]) for t in (x, y))
        epoch, batch = rest[-2:]

        def objectives(params: dict[str, Tensor]) -> Tensor:
            return self.objective(params, state["dkey"], hp, x, y, epoch, batch)

        grads, values = plain_grad_and_value(objectives)(state["params"])  # the gradient of their sum
        return self.update(state, hp, grads), values


def _rows(t: Tensor, idx: Tensor) -> Tensor:
    """``t[idx]`` (``idx``: a ``(K, rows)`` integer tensor) by one ``index_select``: the same elements."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def step_batch(
    spec: Spec,
    state: dict[str, Any],
    hp: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    idx: Tensor,
    epoch: Tensor,
    batch: Tensor,
    plain_autograd: bool = False,
) -> tuple[dict[str, Any], Tensor]:
    """:func:`step` on the rows ``idx`` of ``(x, y)``."""
    return step(spec, state, hp, x[idx], y[idx], epoch, batch, plain_autograd)


def order(state: Mapping[str, Any], epoch: Tensor, n: int, batch_size: int) -> Tensor:
    """One configuration's mini-batch order of epoch ``epoch`` (``(n // batch_size, batch_size)`` rows)."""
    return batches(fold_in(state["skey"], epoch), n, batch_size)


def evaluate_config(
    spec: Spec, params: dict[str, Tensor], hp: Mapping[str, Tensor], x: Tensor, y: Tensor, block: int | None = None
) -> dict[str, Tensor]:
    """One configuration's metrics with dropout off, the model run ``block`` rows at a time (``None``: all at
    once; :attr:`regfn._sweep._engine.Job.eval_block_rows`; see :func:`regfn._train.evaluate`)."""
    return evaluate(spec.model, spec.loss, _penalties(spec, hp), params, x, y, hp, block)


def evaluate_rows(
    spec: Spec,
    params: dict[str, Tensor],
    hp: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    idx: Tensor,
    block: int | None = None,
) -> dict[str, Tensor]:
    """:func:`evaluate_config` on the rows ``idx`` of ``(x, y)`` (a cross-validation fold's)."""
    return evaluate_config(spec, params, hp, x[idx], y[idx], block)


class Program:
    """The per-configuration functions of one spec, vmapped (and possibly compiled).

    Attributes:
        compiled: whether the functions go through ``torch.compile``.
        compiles_evaluation: whether the evaluations do too (not with ``only_steps``).
        init: ``init(hp) -> state`` (never compiled: it runs once a chunk).
        step, step_batch: one step of every configuration (full batch / rows ``idx``).
        step_batch_unread: ``step_batch`` for a mini-batch whose objective nobody reads (all
            but an epoch's last): eagerly, the penalties with a closed-form gradient are not
            computed for it (their value, a pass over every parameter, was up to 8% of an eager
            step of issue #22's wide MLP); compiled, ``step_batch`` itself.
        order: every configuration's mini-batch order of an epoch.
        eval: every configuration's metrics on ``(x, y)``.
        eval_rows: every configuration's metrics on its own rows ``idx[k]`` of ``(x, y)``.
        one: the same functions for one configuration, not vmapped (:class:`OneConfig`; the
            sequential engine's). ``torch.compile`` wraps lazily, so an engine compiles only
            what it calls.

    With ``only_steps`` (a compiled sweep on a CPU) only the steps are compiled: the
    mini-batch orders (once an epoch) and the evaluations (at log points) run eagerly,
    since compiling them costs more than they save there (for issue #22's digits MLP:
    about 27 s of an 86 s cold compile, docs/benchmarks/sweep.md), and the steps compile
    with :func:`regfn._inductor.cpu_step_options` (C++ wrapper, no redundant
    vector-instruction probe). On CUDA everything compiles (the orders run inside
    captured CUDA graphs).
    """

    def __init__(self, spec: Spec, compiled: bool, only_steps: bool = False):
        self.spec = spec
        self.compiled = compiled
        self.compiles_evaluation = compiled and not only_steps
        # dynamic=False: one static program per data shape (train and validation
        # evaluations differ in rows), instead of a slower symbolic recompilation.
        options = cpu_step_options() if only_steps else None  # a cheaper cold compile on a CPU (._inductor)
        wrap = functools.partial(torch.compile, dynamic=False, options=options) if compiled else _as_is
        rest = _as_is if only_steps else wrap
        self.init = vmap(functools.partial(init_state, spec))
        if compiled:
            self.step = wrap(vmap(functools.partial(step, spec), in_dims=(0, 0, None, None, None, None)))
            self.step_batch = wrap(vmap(functools.partial(step_batch, spec), in_dims=(0, 0, None, None, 0, None, None)))
        else:  # eager: gradients by plain autograd, as an eager regfn.train takes them
            self.step, self.step_batch = BatchedAutogradStep(spec, False), BatchedAutogradStep(spec, True)
        self.step_batch_unread = self.step_batch if compiled else BatchedAutogradStep(spec, True, counted=False)
        self.order = rest(vmap(order, in_dims=(0, None, None, None)))
        self.eval = rest(vmap(functools.partial(evaluate_config, spec), in_dims=(0, 0, None, None, None)))
        self.eval_rows = rest(vmap(functools.partial(evaluate_rows, spec), in_dims=(0, 0, None, None, 0, None)))
        self.one = OneConfig(spec, wrap, rest)


def _as_is(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Not compiled."""
    return fn


class OneConfig:
    """:class:`Program`'s step and evaluation for one configuration at a time (``hp``: 0-d tensors);
    ``wrap`` compiles the steps, ``rest`` the evaluations. Eager steps (nothing to vmap) take their
    gradients by plain autograd, as an eager :func:`regfn.train` does."""

    def __init__(self, spec: Spec, wrap: Callable[..., Any], rest: Callable[..., Any]):
        plain = wrap is _as_is
        self.step = wrap(functools.partial(step, spec, plain_autograd=plain))
        self.step_batch = wrap(functools.partial(step_batch, spec, plain_autograd=plain))
        self.eval = rest(functools.partial(evaluate_config, spec))
        self.eval_rows = rest(functools.partial(evaluate_rows, spec))


def program(spec: Spec, compiled: bool, only_steps: bool = False) -> Program:
    """The program of ``spec``, cached so that chunks and repeated calls reuse one compiled program."""
    return _cached_program(spec, compiled, only_steps)


@functools.lru_cache(maxsize=16)
def _cached_program(spec: Spec, compiled: bool, only_steps: bool) -> Program:
    return Program(spec, compiled, only_steps)
