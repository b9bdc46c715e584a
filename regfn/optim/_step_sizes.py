"""Step-size functions: the learning rate as a pure function of the step tensor.

A step-size function (:data:`StepSizeFn`; optax calls them schedules) is any
callable ``step -> value`` where ``step`` is the int64 0-d tensor counting the
updates already applied (0 on the first update). An optimizer's ``lr`` may be
one. (In regfn, "schedule" means a search schedule of :mod:`regfn.search`:
successive halving, Hyperband, PBT.) The ones here use tensor ops only (no ``.item()``, no Python branching on the
step), so they trace under ``torch.compile`` and ``vmap``, and they compute in
float64 (float32 on MPS). Their numeric arguments may be 0-d tensors, for
example a vmapped peak learning rate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._checks import check_int
from ._checks import StepSizeFn, flag, hyper, is_number, scalar_dtype


def _float_step(step: Any) -> Tensor:
    step = torch.as_tensor(step)
    return step.to(scalar_dtype(step.device))


def constant_step_size(value: Any) -> StepSizeFn:
    """The step-size function that always returns ``value``.

    Args:
        value: a number or a 0-d tensor.

    Returns:
        A step-size function ``step -> value`` (a 0-d tensor).

    Examples:
        >>> import torch
        >>> float(constant_step_size(0.1)(torch.tensor(7)))
        0.1
    """
    value = hyper(value, "value", "constant_step_size")

    def step_size(step: Tensor) -> Tensor:
        t = _float_step(step)
        return torch.zeros_like(t) + value

    return step_size


constant_schedule = constant_step_size
"""The former name of :func:`constant_step_size` (kept so that code using it runs)."""


def exponential_decay(
    init_value: Any, decay_rate: Any, transition_steps: int = 1, staircase: bool = False
) -> StepSizeFn:
    """``init_value * decay_rate ** (step / transition_steps)``.

    With the defaults this is ``torch.optim.lr_scheduler.ExponentialLR`` with
    ``gamma=decay_rate``, stepped once per update.

    Args:
        init_value: the value at step 0 (``>= 0``).
        decay_rate: the factor per ``transition_steps`` steps (``>= 0``).
        transition_steps: steps per decay period (``>= 1``).
        staircase: decay in whole periods (floor of ``step / transition_steps``).

    Returns:
        A step-size function.

    Raises:
        ValueError: for a negative value or a non-positive ``transition_steps``.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> sched = exponential_decay(1.0, 0.5)
        >>> [float(sched(torch.tensor(s))) for s in range(3)]
        [1.0, 0.5, 0.25]
    """
    where = "exponential_decay"
    init_value = hyper(init_value, "init_value", where, low=0.0)
    decay_rate = hyper(decay_rate, "decay_rate", where, low=0.0)
    transition_steps = check_int(transition_steps, "transition_steps", where, low=1)
    staircase = flag(staircase, "staircase", where)

    def step_size(step: Tensor) -> Tensor:
        p = _float_step(step) / transition_steps
        if staircase:
            p = torch.floor(p)
        rate = decay_rate if is_number(decay_rate) else decay_rate.to(p.dtype)
        return init_value * torch.pow(rate, p)

    return step_size


def cosine_decay(init_value: Any, decay_steps: int, end_value: Any = 0.0) -> StepSizeFn:
    """Half-cosine from ``init_value`` to ``end_value`` over ``decay_steps``, then flat.

    ``end + (init - end) * (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2``,
    the closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR`` with
    ``T_max=decay_steps`` and ``eta_min=end_value`` (without restarts).

    Args:
        init_value: the value at step 0 (``>= 0``).
        decay_steps: the length of the decay (``>= 1``).
        end_value: the final value (``>= 0``).

    Returns:
        A step-size function.

    Raises:
        ValueError: for a negative value or a non-positive ``decay_steps``.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> sched = cosine_decay(1.0, 4)
        >>> [round(float(sched(torch.tensor(s))), 4) for s in (0, 2, 4, 10)]
        [1.0, 0.5, 0.0, 0.0]
    """
    where = "cosine_decay"
    init_value = hyper(init_value, "init_value", where, low=0.0)
    decay_steps = check_int(decay_steps, "decay_steps", where, low=1)
    end_value = hyper(end_value, "end_value", where, low=0.0)

    def step_size(step: Tensor) -> Tensor:
        t = torch.clamp(_float_step(step), max=decay_steps)
        cosine = 0.5 * (1.0 + torch.cos(t * (math.pi / decay_steps)))
        return end_value + (init_value - end_value) * cosine

    return step_size


def linear_warmup(
    peak_value: Any, warmup_steps: int, init_value: Any = 0.0, after: StepSizeFn | None = None
) -> StepSizeFn:
    """Linear ramp from ``init_value`` to ``peak_value`` over ``warmup_steps``, then ``after``.

    Args:
        peak_value: the value reached at step ``warmup_steps`` (``>= 0``).
        warmup_steps: the length of the ramp (``>= 1``).
        init_value: the value at step 0 (``>= 0``).
        after: the step-size function to follow, called with ``step - warmup_steps``;
            ``None`` holds ``peak_value``.

    Returns:
        A step-size function.

    Raises:
        ValueError: for a negative value or a non-positive ``warmup_steps``.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> sched = linear_warmup(1.0, 4, after=cosine_decay(1.0, 10))
        >>> [float(sched(torch.tensor(s))) for s in (0, 2, 4)]
        [0.0, 0.5, 1.0]
    """
    where = "linear_warmup"
    peak_value = hyper(peak_value, "peak_value", where, low=0.0)
    warmup_steps = check_int(warmup_steps, "warmup_steps", where, low=1)
    init_value = hyper(init_value, "init_value", where, low=0.0)
    if after is not None and not callable(after):
        raise TypeError(f"{where}: after must be a step-size function step -> value, got {type(after).__name__}")

    def step_size(step: Tensor) -> Tensor:
        step = torch.as_tensor(step)
        t = _float_step(step)
        ramp = init_value + (peak_value - init_value) * (torch.clamp(t, max=warmup_steps) / warmup_steps)
        if after is None:
            return ramp
        later = torch.as_tensor(after(torch.clamp(step - warmup_steps, min=0)))
        return torch.where(t < warmup_steps, ramp, later.to(ramp.dtype))

    return step_size


def inverse_time_decay(init_value: Any, decay_rate: Any) -> StepSizeFn:
    """``init_value / (1 + step * decay_rate)``: Adagrad's ``lr_decay``.

    ``init_value`` may itself be a step-size function, which is then divided.

    Args:
        init_value: a number, a 0-d tensor or a step-size function (``>= 0``).
        decay_rate: the decay per step (``>= 0``).

    Returns:
        A step-size function.

    Raises:
        ValueError: for a negative value.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> float(inverse_time_decay(1.0, 0.5)(torch.tensor(2)))
        0.5
    """
    where = "inverse_time_decay"
    init_value = hyper(init_value, "init_value", where, low=0.0, of_step=True)
    decay_rate = hyper(decay_rate, "decay_rate", where, low=0.0)

    def step_size(step: Tensor) -> Tensor:
        value = init_value(step) if callable(init_value) else init_value
        return value / (1 + _float_step(step) * decay_rate)

    return step_size
