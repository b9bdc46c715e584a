"""Adam's statistics: :func:`scale_by_adam`, with its moments (or its whole step) in regfn's C kernel eagerly.

The formulas and their order follow ``torch.optim.Adam``'s single-tensor code
path; see :mod:`regfn.optim._fused` for the kernel's passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ._base import Params, RatiosResult, State, Transform, Updates, apply_updates
from ._checks import (
    caster,
    donated,
    flag,
    grad_free,
    hyper,
    inplace_ok,
    into,
    scalar_dtype,
    step_zero,
)
from ._fused import adam_moments, adam_step, pack
from ._step import completed_gradient
from ._transforms import _decay_add_square, _divide, _quotient_transform, _times

__all__ = ["scale_by_adam"]


class _Moments(NamedTuple):
    """Adam's leaves after one update: ``nums / dens`` still to divide, and ``stepped``, the new parameters of
    the leaves that took the whole step in the C kernel (:func:`~regfn.optim._fused.adam_step`)."""

    nums: dict[str, Tensor]
    dens: dict[str, Tensor]
    stepped: dict[str, Tensor]
    state: State


def scale_by_adam(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, amsgrad: bool = False) -> Transform:
    """Adam's direction ``m_hat / (sqrt(v_hat) + eps)``, as ``torch.optim.Adam`` computes it.

    ``m = lerp(m, g, 1 - b1)``, ``v = b2 * v + (1 - b2) * g * g`` (with
    AMSGrad ``vmax = max(vmax, v)`` replaces ``v`` below), then
    ``m / (1 - b1**t) / (sqrt(v) / sqrt(1 - b2**t) + eps)``; the bias
    corrections are computed in float64 like torch's Python floats. Multiply
    by ``-lr`` afterwards (:func:`scale_by_learning_rate`).

    Args:
        b1: decay of the first moment (``0 <= b1 < 1``).
        b2: decay of the second moment (``0 <= b2 < 1``).
        eps: added to the denominator (``>= 0``).
        amsgrad: keep the running maximum of the second moment.

    Returns:
        A :class:`~regfn.optim.Transform` with state ``{"step", "exp_avg",
        "exp_avg_sq"}`` (and ``"max_exp_avg_sq"`` with AMSGrad).

    Raises:
        ValueError: for a hyperparameter out of range.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> t = scale_by_adam()
        >>> g = {"w": torch.tensor([0.5, -2.0])}
        >>> t.update(g, t.init(g))[0]["w"].round(decimals=6)  # the first step is sign(g), up to eps
        tensor([ 1., -1.])
    """
    where = "scale_by_adam"
    b1 = hyper(b1, "b1", where, low=0.0, high=1.0, high_open=True)
    b2 = hyper(b2, "b2", where, low=0.0, high=1.0, high_open=True)
    eps = hyper(eps, "eps", where, low=0.0)
    amsgrad = flag(amsgrad, "amsgrad", where)

    def init(params: Params) -> dict:
        state = {
            "step": step_zero(params),
            "exp_avg": {k: torch.zeros_like(p) for k, p in params.items()},
            "exp_avg_sq": {k: torch.zeros_like(p) for k, p in params.items()},
        }
        if amsgrad:
            state["max_exp_avg_sq"] = {k: torch.zeros_like(p) for k, p in params.items()}
        return state

    def moments(
        updates: Updates, state: State, params: Params | None, factor: Any, l2: Mapping[str, Any] | None = None
    ) -> _Moments:
        step = state["step"] + 1
        t = step.to(scalar_dtype(step.device))
        bc1 = 1 - b1**t
        bc2_sqrt = torch.sqrt(1 - b2**t)
        # denom * bc1 = bc1 * (sqrt(v) / bc2_sqrt + eps) = eps * bc1 + sqrt(v) / (bc2_sqrt / bc1)
        whole = factor is not None and params is not None and not amsgrad  # leaves may take the whole step
        get = caster(eps * bc1, bc2_sqrt / bc1, 1 - b1, b2, 1 - b2, *((factor,) if whole else ()))
        eager = inplace_ok(b1, b2, eps)
        donate = eager and donated()
        exp_avg, exp_avg_sq = {}, {}
        max_sq: dict[str, Tensor] | None = {} if amsgrad else None
        dens: dict[str, Tensor] = {}
        stepped: dict[str, Tensor] = {}
        # the fused kernel's scalars, once per dtype: the moments' five, and with the factor for the whole step
        packs: dict[torch.dtype, tuple[tuple | None, tuple | None]] = {}
        with_c: dict[tuple[torch.dtype, int], tuple | None] = {}  # the whole step's scalars and an L2 leaf's c
        for k, g in updates.items():
            eps_bc1, k2, w1, beta2, w2, *f = get(g.dtype)
            m_old, v_old = state["exp_avg"][k], state["exp_avg_sq"][k]
            c = None if l2 is None else l2.get(k)
            if not amsgrad:  # one pass of regfn's C kernel where it may run (eager float32 CPU)
                if g.dtype not in packs:
                    five = pack(w1, beta2, w2, k2, eps_bc1)  # whether the moments take the kernel: never f's say
                    packs[g.dtype] = five, pack(*five, *f) if five is not None and whole else None
                five, six = packs[g.dtype]
                if c is not None and six is not None and (g.dtype, id(c)) not in with_c:
                    with_c[g.dtype, id(c)] = pack(*six, c)
                scalars = six if c is None else with_c.get((g.dtype, id(c)))
                fused = adam_step(g, m_old, v_old, params[k], scalars) if scalars is not None and params else None
                if fused is not None:
                    exp_avg[k], exp_avg_sq[k], stepped[k] = fused
                    continue
            # where the kernel did not take it: row-major, and the penalty's gradient added
            g = completed_gradient(g, None if params is None else params[k], c)
            fast = eager and grad_free(g, m_old, v_old)
            if not amsgrad:
                fused = adam_moments(g, m_old, v_old, five, donate and fast)
                if fused is not None:
                    exp_avg[k], exp_avg_sq[k], dens[k] = fused
                    continue
            m = into(m_old if donate and fast else None, torch.lerp, m_old, g, w1)
            v = _decay_add_square(v_old, beta2, g, w2, fast, v_old if donate and fast else None)
            exp_avg[k], exp_avg_sq[k] = m, v
            if max_sq is not None:
                v_max = state["max_exp_avg_sq"][k]
                dest = v_max if donate and grad_free(v_max) else None
                v = max_sq[k] = into(dest, torch.maximum, v_max, v)
            # sqrt(v) / k2 + eps_bc1 (addcdiv's rounding, but addcdiv with 0-d
            # tensor operands takes a slow broadcasting loop on CPU: docs/benchmarks/).
            d = v.sqrt()
            dens[k] = d.div_(k2).add_(eps_bc1) if fast else d / k2 + eps_bc1
        new_state = {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        if max_sq is not None:
            new_state["max_exp_avg_sq"] = max_sq
        return _Moments({k: exp_avg[k] for k in dens}, dens, stepped, new_state)

    def ratios(updates: Updates, state: State, params: Params | None = None) -> RatiosResult:
        nums, dens, _, new_state = moments(updates, state, params, None)
        return nums, dens, new_state

    def applied(
        updates: Updates, state: State, params: Params, factor: Any, l2: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Tensor], State]:
        nums, dens, stepped, new_state = moments(updates, state, params, factor, l2)
        rest = apply_updates({k: params[k] for k in nums}, _times(_divide(nums, dens), factor))
        return {k: stepped[k] if k in stepped else rest[k] for k in params}, new_state

    return _quotient_transform(init, ratios, applied)
