"""Scaling transforms and the gradient statistics of the named optimizers.

Each function returns a :class:`~regfn.optim.Transform`. The formulas and
their order follow ``torch.optim``'s single-tensor code paths; hyperparameters
may be Python numbers (range-checked) or 0-d tensors (possibly vmapped).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Params, RatiosResult, State, TaggedUpdate, Transform, UpdateResult, Updates
from ._checks import (
    axpy,
    caster,
    donated,
    flag,
    grad_free,
    hyper,
    inplace_ok,
    into,
    is_number,
    is_zero,
    scalar_dtype,
    step_zero,
)


def _times(updates: Updates, factor: Any) -> dict:
    """``{k: u * factor}`` with a tensor factor cast to each leaf's dtype."""
    if is_number(factor):
        return {k: u * factor for k, u in updates.items()}
    get = caster(factor)
    return {k: u * get(u.dtype)[0] for k, u in updates.items()}


def _scaling(init: Any, factor: Any) -> Transform:
    """A transform ``u -> u * f`` with ``f, new_state = factor(state)``.

    The factor is exposed (see :func:`~regfn.optim._base.scaling_factor`) so
    that :func:`~regfn.optim.step` can fold a final learning rate into the
    parameter update.
    """

    def update(updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        f, state = factor(state)
        return _times(updates, f), state

    return Transform(init, TaggedUpdate(update, factor=factor))


def _quotient_transform(init: Any, ratios: Any, applied: Any = None) -> Transform:
    """A transform whose output is ``nums / dens`` from ``ratios(updates, state, params)``.

    ``ratios`` returns fresh denominators, so an eager update divides in place
    into them. The quotient form is exposed (see
    :func:`~regfn.optim._base.quotient`) so that :func:`~regfn.optim.step` can
    apply ``p + f * num / den`` as one ``addcdiv``, as ``torch.optim`` does;
    ``applied`` is the ``applied`` tag (see :class:`~regfn.optim._base.TaggedUpdate`).
    """

    def update(updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        nums, dens, state = ratios(updates, state, params)
        return _divide(nums, dens), state

    return Transform(init, TaggedUpdate(update, ratios=ratios, applied=applied))


def _divide(nums: Updates, dens: dict[str, Tensor]) -> dict[str, Tensor]:
    """``{k: nums[k] / dens[k]}``, eagerly into the (fresh) denominators."""
    eager = inplace_ok()
    return {k: into(dens[k] if eager and grad_free(num, dens[k]) else None, torch.div, num, dens[k])
            for k, num in nums.items()}  # fmt: skip


def _stateless(params: Params) -> dict:
    return {}


def scale(step_size: Any) -> Transform:
    """Multiply the updates by ``step_size``.

    Args:
        step_size: a number or a 0-d tensor (any sign).

    Returns:
        A stateless :class:`~regfn.optim.Transform`.

    Raises:
        TypeError: if ``step_size`` is not a number or a one-element tensor.

    Examples:
        >>> import torch
        >>> t = scale(-1.0)
        >>> t.update({"w": torch.tensor([1.0, -2.0])}, t.init({}))[0]
        {'w': tensor([-1.,  2.])}
    """
    step_size = hyper(step_size, "step_size", "scale")
    return _scaling(_stateless, lambda state: (step_size, state))


def scale_by_step_size(fn: Any) -> Transform:
    """Multiply the updates by ``fn(step)``; the state counts the steps.

    Args:
        fn: a step-size function ``step -> value``, ``step`` being the int64 0-d
            tensor of updates already applied (0 on the first update).

    Returns:
        A :class:`~regfn.optim.Transform` with state ``{"step": tensor}``.

    Raises:
        TypeError: if ``fn`` is not callable.

    Examples:
        >>> import torch
        >>> from regfn.optim import exponential_decay
        >>> t = scale_by_step_size(exponential_decay(1.0, 0.5))
        >>> g, s = {"w": torch.ones(1)}, t.init({"w": torch.ones(1)})
        >>> u, s = t.update(g, s)
        >>> u, s = t.update(g, s)
        >>> u
        {'w': tensor([0.5000])}
    """
    if not callable(fn):
        raise TypeError(f"scale_by_step_size: fn must be a callable step -> value, got {type(fn).__name__}")

    def init(params: Params) -> dict:
        return {"step": step_zero(params)}

    def factor(state: State) -> tuple:
        step = state["step"]
        return torch.as_tensor(fn(step)), {"step": step + 1}

    return _scaling(init, factor)


def scale_by_schedule(schedule: Any) -> Transform:
    """The former name of :func:`scale_by_step_size` (kept so that code using it runs)."""
    return scale_by_step_size(schedule)


def scale_by_learning_rate(lr: Any, *, flip_sign: bool = True) -> Transform:
    """Multiply the updates by ``-lr`` (gradient descent) or ``lr``.

    Args:
        lr: a number (``>= 0``), a 0-d tensor, or a step-size function ``step -> lr``
            (then the state counts the steps).
        flip_sign: multiply by ``-lr`` (default), turning a descent direction
            into an update.

    Returns:
        A :class:`~regfn.optim.Transform`.

    Raises:
        ValueError: for a negative or NaN ``lr``.
        TypeError: for an ``lr`` of another type.

    Examples:
        >>> import torch
        >>> t = scale_by_learning_rate(0.1)
        >>> t.update({"w": torch.tensor([1.0, -2.0])}, t.init({}))[0]
        {'w': tensor([-0.1000,  0.2000])}
    """
    lr = hyper(lr, "lr", "scale_by_learning_rate", low=0.0, of_step=True)
    flip_sign = flag(flip_sign, "flip_sign", "scale_by_learning_rate")
    sign = -1 if flip_sign else 1
    if callable(lr):
        return scale_by_step_size(lambda step: sign * torch.as_tensor(lr(step)))
    return _scaling(_stateless, lambda state: (sign * lr, state))


def check_nesterov(momentum: Any, dampening: Any, nesterov: bool, where: str) -> None:
    """torch's rule: Nesterov needs momentum > 0 and dampening == 0 (checked on numbers)."""
    if not nesterov:
        return
    if is_number(momentum) and momentum <= 0:
        raise ValueError(f"{where}: nesterov=True requires momentum > 0, got momentum={momentum!r}")
    if is_number(dampening) and dampening != 0:
        raise ValueError(f"{where}: nesterov=True requires dampening == 0, got dampening={dampening!r}")


def trace(momentum: Any, dampening: Any = 0.0, nesterov: bool = False) -> Transform:
    """Momentum, with ``torch.optim.SGD``'s exact semantics.

    ``buf = momentum * buf + (1 - dampening) * g``, except that the first
    buffer is ``g`` itself (no dampening), and with ``nesterov`` the output is
    ``g + momentum * buf`` instead of ``buf``. A tensor ``momentum`` equal to 0
    behaves like torch's "no momentum buffer" (output ``g``).

    Args:
        momentum: the momentum factor (``>= 0``).
        dampening: the dampening (``0 <= dampening <= 1``).
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and
            ``dampening == 0``; only checked for Python numbers).

    Returns:
        A :class:`~regfn.optim.Transform` with state
        ``{"step": tensor, "momentum_buffer": {name: tensor}}``.

    Raises:
        ValueError: for a hyperparameter out of range, or Nesterov with
            ``momentum <= 0`` or ``dampening != 0``.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> t = trace(0.9)
        >>> g = {"w": torch.ones(1)}
        >>> s = t.init(g)
        >>> u, s = t.update(g, s)
        >>> u, s = t.update(g, s)
        >>> u
        {'w': tensor([1.9000])}
    """
    where = "trace"
    momentum = hyper(momentum, "momentum", where, low=0.0)
    dampening = hyper(dampening, "dampening", where, low=0.0, high=1.0)
    nesterov = flag(nesterov, "nesterov", where)
    check_nesterov(momentum, dampening, nesterov, where)

    def init(params: Params) -> dict:
        return {
            "step": step_zero(params),
            "momentum_buffer": {k: torch.zeros_like(p) for k, p in params.items()},
        }

    def update(updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        step, bufs = state["step"], state["momentum_buffer"]
        damp_scale = None
        if not is_zero(dampening):
            # 1 - dampening, but 1 on the first step (torch starts the buffer at g)
            # and while a tensor momentum is 0 (torch then keeps no buffer).
            on = step > 0
            if not is_number(momentum):
                on = on & (momentum != 0)
            damp_scale = 1 - dampening * on.to(scalar_dtype(step.device))
        get = caster(momentum, damp_scale)
        donate = inplace_ok(momentum, dampening) and donated()
        new_bufs, out = {}, {}
        for k, g in updates.items():
            m, c = get(g.dtype)
            gc = g if c is None else g * c
            dest = bufs[k] if donate and grad_free(g, bufs[k]) else None
            if is_number(m):
                buf = axpy(gc, bufs[k], m, out=dest)
                out[k] = axpy(g, buf, m) if nesterov else buf
            else:
                buf = into(dest, torch.add, gc, into(dest, torch.mul, m, bufs[k]))
                out[k] = g + m * buf if nesterov else buf
            new_bufs[k] = buf
        return out, {"step": step + 1, "momentum_buffer": new_bufs}

    return Transform(init, update)


def _decay_add_square(
    old: Tensor, decay: Any, g: Tensor, weight: Any, fast: bool, dest: Tensor | None = None
) -> Tensor:
    """``old * decay + weight * g * g`` (Adam's and RMSprop's second moment).

    With ``fast`` (eager, own temporaries) the fresh product is updated in
    place; with ``dest`` (a donated state tensor) everything is written there.
    """
    out = into(dest, torch.mul, old, decay)
    if not is_number(weight):
        return into(dest, torch.addcmul, out, g * weight, g)
    if fast or dest is not None:
        return out.addcmul_(g, g, value=weight)
    return torch.addcmul(out, g, g, value=weight)


def scale_by_rms(alpha: Any = 0.99, eps: Any = 1e-8, centered: bool = False) -> Transform:
    """RMSprop's direction ``g / (sqrt(square_avg [- grad_avg**2]) + eps)``.

    ``square_avg = alpha * square_avg + (1 - alpha) * g * g`` and, when
    ``centered``, ``grad_avg = lerp(grad_avg, g, 1 - alpha)``, as in
    ``torch.optim.RMSprop``. Follow with :func:`trace` for RMSprop's momentum.

    Args:
        alpha: smoothing constant (``0 <= alpha <= 1``).
        eps: added to the denominator (``>= 0``).
        centered: normalise by the estimated variance instead of the second moment.

    Returns:
        A :class:`~regfn.optim.Transform` with state ``{"square_avg"}`` (and
        ``"grad_avg"`` when centered).

    Raises:
        ValueError: for a hyperparameter out of range.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> t = scale_by_rms(alpha=0.75, eps=0.0)
        >>> g = {"w": torch.tensor([2.0])}
        >>> t.update(g, t.init(g))[0]  # 2 / sqrt(0.25 * 4)
        {'w': tensor([2.])}
    """
    where = "scale_by_rms"
    alpha = hyper(alpha, "alpha", where, low=0.0, high=1.0)
    eps = hyper(eps, "eps", where, low=0.0)
    centered = flag(centered, "centered", where)

    def init(params: Params) -> dict:
        state = {"square_avg": {k: torch.zeros_like(p) for k, p in params.items()}}
        if centered:
            state["grad_avg"] = {k: torch.zeros_like(p) for k, p in params.items()}
        return state

    def ratios(updates: Updates, state: State, params: Params | None = None) -> RatiosResult:
        get = caster(alpha, 1 - alpha, eps)
        eager = inplace_ok(alpha, eps)
        donate = eager and donated()
        square_avg, grad_avg, dens = {}, {}, {}
        for k, g in updates.items():
            a, w, e = get(g.dtype)
            sq_old = state["square_avg"][k]
            ga_old = state["grad_avg"][k] if centered else None
            fast = eager and grad_free(g, sq_old, ga_old)
            sq = _decay_add_square(sq_old, a, g, w, fast, sq_old if donate and fast else None)
            square_avg[k] = sq
            if centered:
                ga = grad_avg[k] = into(ga_old if donate and fast else None, torch.lerp, ga_old, g, w)
                avg = torch.addcmul(sq, ga, ga, value=-1)
                avg = avg.sqrt_() if fast else avg.sqrt()
            else:
                avg = sq.sqrt()
            dens[k] = avg.add_(e) if fast else avg + e
        new_state = {"square_avg": square_avg}
        if centered:
            new_state["grad_avg"] = grad_avg
        return dict(updates), dens, new_state

    return _quotient_transform(init, ratios)


def scale_by_adagrad(initial_accumulator_value: Any = 0.0, eps: Any = 1e-10) -> Transform:
    """Adagrad's direction ``g / (sqrt(sum) + eps)`` with ``sum += g * g``.

    Adagrad's ``lr_decay`` is a step-size function
    (:func:`~regfn.optim.inverse_time_decay`), not part of this transform.

    Args:
        initial_accumulator_value: the starting value of ``sum`` (``>= 0``).
        eps: added to the denominator (``>= 0``).

    Returns:
        A :class:`~regfn.optim.Transform` with state ``{"sum"}``.

    Raises:
        ValueError: for a hyperparameter out of range.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> t = scale_by_adagrad(eps=0.0)
        >>> g = {"w": torch.tensor([3.0])}
        >>> t.update(g, t.init(g))[0]
        {'w': tensor([1.])}
    """
    where = "scale_by_adagrad"
    init_value = hyper(initial_accumulator_value, "initial_accumulator_value", where, low=0.0)
    eps = hyper(eps, "eps", where, low=0.0)

    def init(params: Params) -> dict:
        if is_number(init_value):
            return {"sum": {k: torch.full_like(p, init_value) for k, p in params.items()}}
        return {"sum": {k: torch.zeros_like(p) + init_value.to(p.dtype) for k, p in params.items()}}

    def ratios(updates: Updates, state: State, params: Params | None = None) -> RatiosResult:
        get = caster(eps)
        eager = inplace_ok(eps)
        donate = eager and donated()
        sums, dens = {}, {}
        for k, g in updates.items():
            old = state["sum"][k]
            fast = eager and grad_free(g, old)
            s = sums[k] = into(old if donate and fast else None, torch.addcmul, old, g, g)
            e = get(g.dtype)[0]
            dens[k] = s.sqrt().add_(e) if fast else s.sqrt() + e
        return dict(updates), dens, {"sum": sums}

    return _quotient_transform(init, ratios)
