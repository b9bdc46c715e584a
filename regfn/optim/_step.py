"""One whole optimizer step: :func:`step` (pure) and :func:`step_` (in place).

``opt.update`` followed by :func:`~regfn.optim.apply_updates` materialises the
scaled update ``-lr * direction`` and then a new copy of every parameter. Both
functions here fold a final scaling transform (the learning rate of every named
optimizer) into the parameter update, one fused ``p + f * u`` per parameter,
which is also how ``torch.optim`` applies its step.

:func:`step_` goes further for eager training loops on large models: like
``torch.optim`` it overwrites the parameters and the optimizer state instead of
allocating new ones (the caller donates them, as with JAX's
``donate_argnums``), which keeps a step's memory traffic at torch's level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ._base import (
    Params,
    State,
    Transform,
    Updates,
    _check_transform,
    applied_with_factor,
    apply_updates,
    chained,
    check_same_names,
    quotient,
    run_chain,
    scaling_factor,
    weight_decay_of,
    with_l2_gradient,
)
from ._checks import axpy, caster, dense_in_rows, donating, is_number


class _Direction(NamedTuple):
    """The step is ``p * (1 + factor * decays[k]) + factor * nums[k] / dens[k]``.

    ``dens`` ``None``: no division; ``decays`` maps only the decayed names;
    ``factor`` ``None``: 1 (then ``decays`` is empty).
    """

    nums: Updates
    dens: Mapping[str, Tensor] | None
    decays: Mapping[str, Any]
    factor: Any
    state: State


def _direction(opt: Transform, grads: Updates, state: State, params: Params) -> _Direction:
    """Run ``opt`` up to what can be folded into the parameter update.

    When ``opt`` is a chain ending in a scaling transform (the learning rate),
    that factor is not applied to the updates; nor, just before it, a weight
    term ``+ coefficient * w`` (AdamW's decay) or, before that, the division
    of a quotient transform (Adam, RMSprop, Adagrad). Anything else runs as
    ``opt.update``.
    """
    parts = chained(opt)
    last_factor = scaling_factor(parts[-1]) if parts else None
    if not parts or last_factor is None:
        factor_fn = scaling_factor(opt)
        if factor_fn is not None:
            factor, state = factor_fn(state)
            return _Direction(dict(grads), None, {}, factor, state)
        updates, state = opt.update(grads, state, params)
        return _Direction(updates, None, {}, None, state)
    if not isinstance(state, tuple) or len(state) != len(parts):
        n = len(state) if isinstance(state, tuple) else type(state).__name__
        raise ValueError(f"step: state has {n} entries for a chain of {len(parts)} transforms")
    end = len(parts) - 1  # parts[end] is the factor; fold what directly precedes it
    decay = weight_decay_of(parts[end - 1]) if end >= 1 else None
    end -= decay is not None
    ratios = quotient(parts[end - 1]) if end >= 1 else None
    end -= ratios is not None
    nums, new_state = run_chain(parts[:end], grads, state[:end], params)
    dens = None
    if ratios is not None:
        nums, dens, ratio_state = ratios(nums, state[end], params)
        new_state += (ratio_state,)
    decays = {}
    if decay is not None:
        decays = decay(params)
        new_state += (state[len(new_state)],)  # stateless: passed through
    factor, last_state = last_factor(state[-1])
    return _Direction(nums, dens, decays, factor, (*new_state, last_state))


def step(opt: Transform, params: Params, grads: Updates, state: State) -> tuple[dict[str, Tensor], State]:
    """One optimizer step, pure: ``(new_params, new_state)``.

    The same numbers as ``opt.update`` followed by
    :func:`~regfn.optim.apply_updates`, up to rounding: the final learning rate
    is applied in one fused op per tensor, as ``torch.optim`` applies its step
    (``param.add_(u, alpha=-lr)``, ``addcdiv_`` for Adam, RMSprop and Adagrad,
    ``param.mul_(1 - lr * wd)`` for a weight decay just before the learning
    rate). Works under ``vmap``, ``grad`` and ``torch.compile``; nothing is
    mutated.

    Args:
        opt: a :class:`~regfn.optim.Transform`, e.g. ``sgd(0.1, momentum=0.9)``.
        params: the current parameters.
        grads: the gradients (same names).
        state: ``opt``'s state.

    Returns:
        The new parameters (a new dict, each keeping its dtype) and the new state.

    Raises:
        TypeError: if ``opt`` is not a transform.
        ValueError: if the names of ``params`` and ``grads`` differ.

    Examples:
        >>> import torch
        >>> from regfn import optim
        >>> opt = optim.sgd(lr=0.1, momentum=0.9)
        >>> params = {"w": torch.tensor([1.0, -1.0])}
        >>> state = opt.init(params)
        >>> params, state = optim.step(opt, params, {"w": torch.tensor([1.0, 1.0])}, state)
        >>> params
        {'w': tensor([ 0.9000, -1.1000])}
    """
    new, state = _step(opt, params, grads, state, inplace=False)
    return {k: v if v.dtype == params[k].dtype else v.to(params[k].dtype) for k, v in new.items()}, state


def step_(opt: Transform, params: Params, grads: Updates, state: State) -> State:
    """One optimizer step in place, like ``torch.optim``'s ``opt.step()``.

    The tensors in ``params`` are overwritten with the new parameters, and the
    tensors of ``state`` (momentum buffers, Adam's moments, ...) with the new
    state, so an eager training loop allocates what ``torch.optim`` allocates
    and no more. ``grads`` is only read. Returns the new state: use it for the
    next step (its large tensors are the old ones, updated; small entries such
    as step counters are new tensors). The numbers equal :func:`step`'s.

    This is the one function in :mod:`regfn.optim` that mutates its inputs: the
    caller donates ``params`` and ``state``, and any other reference to those
    tensors (an ``nn.Module`` they came from, a saved copy) sees the change.
    It runs under ``torch.no_grad()``, so ``nn.Parameter`` leaves may be
    passed. Under ``torch.compile`` the parameters are still updated in place
    but the state comes back as new tensors (the compiler fuses the step
    anyway); under ``vmap`` or ``grad`` use :func:`step`.

    Args:
        opt: a :class:`~regfn.optim.Transform`.
        params: the parameters, updated in place.
        grads: the gradients (same names).
        state: ``opt``'s state, donated.

    Returns:
        The new state.

    Raises:
        TypeError: if ``opt`` is not a transform.
        ValueError: if the names of ``params`` and ``grads`` differ.

    Examples:
        >>> import torch
        >>> from regfn import optim
        >>> opt = optim.adam(lr=0.1)
        >>> params = {"w": torch.tensor([1.0, -1.0])}
        >>> state = opt.init(params)
        >>> w = params["w"]
        >>> state = optim.step_(opt, params, {"w": torch.tensor([2.0, 2.0])}, state)
        >>> w  # the same tensor, updated
        tensor([ 0.9000, -1.1000])
        >>> state[0]["exp_avg"]["w"]
        tensor([0.2000, 0.2000])
    """
    if torch.compiler.is_compiling():  # the compiler cannot trace the donation switch;
        with torch.no_grad():  # params are still updated in place, the state is new
            return _step(opt, params, grads, state, inplace=True)[1]
    with torch.no_grad(), donating():
        return _step(opt, params, grads, state, inplace=True)[1]


def update_and_apply(
    opt: Transform, params: Params, grads: Updates, state: State, l2: Mapping[str, Any] | None = None
) -> tuple[dict[str, Tensor], State]:
    """``opt.update`` followed by :func:`~regfn.optim.apply_updates`, bit for bit, in fewer passes where it can.

    ``l2`` (``{name: c}``) completes the gradients first: leaf ``name``'s is
    ``grads[name] + c * (p + p)`` (:func:`~regfn.optim._base.with_l2_gradient`,
    the gradient of an L2 penalty ``c * sum(p ** 2)`` that the caller left out
    of its autograd; :func:`regfn.penalties._closed.closed_form`).

    For a chain whose last two transforms are one with an ``applied`` tag (see
    :class:`~regfn.optim._base.TaggedUpdate`; Adam without AMSGrad) and a
    scaling (the learning rate), eagerly (not while torch traces or compiles),
    the transforms before them run as usual (torch's coupled ``weight_decay``,
    ``maximize``'s sign), then the tagged transform runs its update, the
    scaling and the addition together: Adam's whole step in one pass of
    regfn's C kernel on CPU (:func:`~regfn.optim._fused.adam_step`), the L2
    gradient included when no transform runs before it. Unlike
    :func:`step`, the rounding is that of the separate update and addition
    (optax's and regfn's training code's), not ``torch.optim``'s ``addcdiv``.

    Examples:
        >>> import torch
        >>> from regfn import optim
        >>> opt, params = optim.adam(0.5), {"w": torch.tensor([1.0])}
        >>> update_and_apply(opt, params, {"w": torch.tensor([2.0])}, opt.init(params))[0]
        {'w': tensor([0.5000])}
        >>> update_and_apply(opt, params, {"w": torch.tensor([-2.0])}, opt.init(params), l2={"w": 2.0})[0]
        {'w': tensor([0.5000])}
    """
    l2 = {} if l2 is None else l2
    parts = chained(opt)
    if parts is not None and len(parts) >= 2 and not torch.compiler.is_compiling():
        applied, factor_fn = applied_with_factor(parts[-2]), scaling_factor(parts[-1])
        if applied is not None and factor_fn is not None and isinstance(state, tuple) and len(state) == len(parts):
            check_same_names(params, grads, "apply_updates", "updates")
            if len(parts) > 2:  # the transforms before the tagged one take the whole gradient
                grads, l2 = _completed(grads, params, l2), {}
            # else a gradient may reach the tagged transform as it came (Adam's kernel reads a transposed one)
            updates, first_states = run_chain(parts[:-2], grads, state[:-2], params)
            factor, last_state = factor_fn(state[-1])
            new, applied_state = applied(updates, state[-2], params, factor, l2)
            return new, (*first_states, applied_state, last_state)
    updates, state = opt.update(_completed(grads, params, l2), state, params)
    return apply_updates(params, updates), state


def _completed(grads: Updates, params: Params, l2: Mapping[str, Any]) -> dict[str, Tensor]:
    """Every gradient of ``grads`` by :func:`completed_gradient` (``l2``'s coefficient where it has one)."""
    return {k: completed_gradient(g, params[k], l2.get(k)) for k, g in grads.items()}


def completed_gradient(g: Tensor, p: Tensor | None, c: Any = None) -> Tensor:
    """``g`` as the transforms take it: row-major within rows of configurations
    (:func:`~regfn.optim._checks.dense_in_rows`), and with a coefficient ``c`` and the parameter ``p`` (neither
    ``None``) plus the L2 term (:func:`~regfn.optim._base.with_l2_gradient`). What any update but the C kernel's
    whole Adam step, which reads a transposed gradient and adds the term itself, runs on."""
    g = dense_in_rows(g)
    return g if c is None or p is None else with_l2_gradient(g, p, c)


def _step(
    opt: Transform, params: Params, grads: Updates, state: State, inplace: bool
) -> tuple[dict[str, Tensor], State]:
    """``({name: p + f * num / den}, new_state)``, the sums written into ``params`` if ``inplace``."""
    where = "step_" if inplace else "step"
    opt = _check_transform(opt, where)
    check_same_names(params, grads, where, "grads")
    d = _direction(opt, grads, state, params)
    get = caster(d.factor)  # a number, a 0-d tensor, or None
    new = {}
    for k, p in params.items():
        f = get(p.dtype)[0]
        if k in d.decays:  # p * (1 + f * wd), AdamW's decay of the weights
            shrink = 1 + f * caster(d.decays[k])(p.dtype)[0]
            p = p.mul_(shrink) if inplace else p * shrink
        den = None if d.dens is None else d.dens[k]
        new[k] = _add_scaled(p, d.nums[k], den, f, inplace)
    return new, d.state


def _add_scaled(p: Tensor, num: Tensor, den: Tensor | None, f: Any, inplace: bool) -> Tensor:
    """``p + f * num / den``, in place into ``p`` or as a new tensor.

    ``den`` ``None`` means no division, ``f`` ``None`` means 1; a number ``f``
    goes into the fused op (``add``'s ``alpha``, ``addcdiv``'s ``value``), a
    tensor ``f`` multiplies the quotient.
    """
    if f is None:
        f = 1
    if den is not None and is_number(f):
        return p.addcdiv_(num, den, value=f) if inplace else torch.addcdiv(p, num, den, value=f)
    u = num if den is None else num / den
    if is_number(f):
        if inplace:
            return p.add_(u, alpha=f)
        return axpy(p, u, f)
    return p.addcmul_(u, f) if inplace else torch.addcmul(p, u, f)
