"""The gradients of L1 and L2 penalties in closed form: :func:`closed_form` and :func:`add_l1_gradient`.

Autograd differentiates ``c * sum(p ** 2)`` (``c`` half an L2 strength) by
a pass that copies ``p``, one that doubles it, one that multiplies by ``c``
and one that adds the result to the data loss's gradient; ``s * sum(|p|)``
likewise. A training step that knows its penalties can leave them out of
the differentiated objective (their values still counted, on detached
parameters: :func:`regfn._train.training_objective`) and add
``c * (p + p)`` and ``s * sgn(p)`` itself: the L2 term inside the
optimizer's update (:func:`regfn.optim._step.update_and_apply`, in the pass
of regfn's C kernel that reads ``p`` anyway, for Adam), the L1 term before
it. The coefficients are autograd's own (``_scale`` of a one) and so is the
rounding, so a parameter used once by the model gets the penalized loss's
gradient bit for bit; with several uses or several penalties, the order of
the additions is this module's (the L1 term, then the L2 term).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .._tree import Mask, Params
from ._base import Penalty, Strength, _scale, _selected_items

__all__ = ["ClosedForm", "add_l1_gradient", "closed_form", "coefficients"]


class ClosedForm(NamedTuple):
    """A step's penalties as per-parameter coefficients: the gradient of parameter ``name`` gains
    ``l1[name] * sgn(p)`` (:func:`add_l1_gradient`) and ``l2[name] * (p + p)``
    (:func:`regfn.optim._base.with_l2_gradient`)."""

    l1: dict[str, Any]
    l2: dict[str, Any]


def coefficients(params: Params, mask: Mask, strength: Strength, factor: float, owner: str) -> dict[str, Any] | None:
    """``{name: strength * factor}`` (autograd's rounding) for the parameters ``mask`` selects (checked as the
    penalty's value checks them), or ``None`` where they have several dtypes (the penalty's sum then promotes,
    and autograd rounds otherwise)."""
    chosen = _selected_items(params, mask, owner)
    if len({t.dtype for t in chosen.values()}) > 1:
        return None
    if not chosen:
        return {}
    first = next(iter(chosen.values()))
    c = _scale(torch.ones((), dtype=first.dtype, device=first.device), strength, factor)
    return dict.fromkeys(chosen, c)


def closed_form(params: Params, penalties: Sequence[Penalty]) -> ClosedForm | None:
    """Every penalty's gradient as coefficients, or ``None`` where one has none (a norm, a user's penalty), a
    parameter is selected twice for one kind or several dtypes are (autograd's gradient then).

    Examples:
        >>> import torch
        >>> from regfn.penalties import l1, l2, norm
        >>> params = {"w": torch.ones(2), "b": torch.ones(1)}
        >>> form = closed_form(params, [l2(0.5), l1(0.1, mask=["w"])])
        >>> form.l2["w"], form.l1
        (tensor(0.2500), {'w': tensor(0.1000)})
        >>> closed_form(params, [norm(0.1)]) is None
        True
    """
    # plain loops and dict operations: torch.compile traces this in a compiled step
    by_kind: dict[str, dict[str, Any]] = {"l1": {}, "l2": {}}
    for penalty in penalties:
        parts = penalty.gradient_coefficients(params)
        if parts is None:
            return None
        for kind, found in parts.items():
            if found is None:
                return None
            into = by_kind[kind]
            for name, c in found.items():
                if name in into:
                    return None
                into[name] = c
    return ClosedForm(by_kind["l1"], by_kind["l2"])


def add_l1_gradient(grads: Mapping[str, Tensor], params: Params, l1: Mapping[str, Any]) -> dict[str, Tensor]:
    """``grads`` with ``l1[name] * sgn(p)`` added for the parameters in ``l1`` (autograd's gradient of
    ``s * sum(|p|)``: ``sgn(0) = 0``).

    Examples:
        >>> import torch
        >>> add_l1_gradient({"w": torch.zeros(3)}, {"w": torch.tensor([-2.0, 0.0, 3.0])}, {"w": 0.5})
        {'w': tensor([-0.5000,  0.0000,  0.5000])}
    """
    return {k: g + l1[k] * params[k].sgn() if k in l1 else g for k, g in grads.items()}
