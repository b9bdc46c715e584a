"""The penalties: L2, L1, per-tensor norms and the elastic net, and their constructors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .._tree import Mask, Params
from ._base import Penalty, Strength, _check_ord, _check_strength, _safe_norm, _scale, _selected, _total
from ._closed import coefficients

__all__ = ["ElasticNetPenalty", "L1Penalty", "L2Penalty", "NormPenalty", "elastic_net", "l1", "l2", "norm"]


@dataclass(frozen=True, eq=False)
class L2Penalty(Penalty):
    """``strength / 2 * sum(w ** 2)`` over the selected parameters.

    Build it with :func:`l2`.
    """

    strength: Strength
    mask: Mask = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", _check_strength(self.strength, owner="l2"))

    def value(self, params: Params) -> Tensor:
        """Return ``strength / 2 * sum(w ** 2)`` over the selected parameters."""
        terms = [p.square().sum() for p in _selected(params, self.mask, "l2")]
        return _scale(_total(terms, params), self.strength, 0.5)

    def gradient_coefficients(self, params: Params) -> dict[str, dict[str, Any] | None]:
        """``{"l2": {name: strength / 2}}``: the gradient is ``strength / 2 * (w + w)``."""
        return {"l2": coefficients(params, self.mask, self.strength, 0.5, "l2")}


@dataclass(frozen=True, eq=False)
class L1Penalty(Penalty):
    """``strength * sum(|w|)`` over the selected parameters.

    Build it with :func:`l1`.
    """

    strength: Strength
    mask: Mask = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", _check_strength(self.strength, owner="l1"))

    def value(self, params: Params) -> Tensor:
        """Return ``strength * sum(|w|)`` over the selected parameters."""
        terms = [p.abs().sum() for p in _selected(params, self.mask, "l1")]
        return _scale(_total(terms, params), self.strength)

    def gradient_coefficients(self, params: Params) -> dict[str, dict[str, Any] | None]:
        """``{"l1": {name: strength}}``: the gradient is ``strength * sgn(w)``."""
        return {"l1": coefficients(params, self.mask, self.strength, 1.0, "l1")}


@dataclass(frozen=True, eq=False)
class NormPenalty(Penalty):
    """``strength * sum_p ||p||_ord`` over the selected parameter tensors.

    Build it with :func:`norm`.
    """

    strength: Strength
    ord: float = 2.0
    mask: Mask = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", _check_strength(self.strength, owner="norm"))
        object.__setattr__(self, "ord", _check_ord(self.ord))

    def value(self, params: Params) -> Tensor:
        """Return ``strength * sum_p torch.norm(p, ord)`` over the selected tensors."""
        terms = [_safe_norm(p, self.ord) for p in _selected(params, self.mask, "norm")]
        return _scale(_total(terms, params), self.strength)


@dataclass(frozen=True, eq=False)
class ElasticNetPenalty(Penalty):
    """``l1 * sum(|w|) + l2 / 2 * sum(w ** 2)`` over the selected parameters.

    Build it with :func:`elastic_net`.
    """

    l1: Strength
    l2: Strength
    mask: Mask = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "l1", _check_strength(self.l1, owner="elastic_net", name="l1"))
        object.__setattr__(self, "l2", _check_strength(self.l2, owner="elastic_net", name="l2"))

    @property
    def strength(self) -> tuple[Strength, Strength]:
        """The pair ``(l1, l2)``."""
        return (self.l1, self.l2)

    def value(self, params: Params) -> Tensor:
        """Return ``l1 * sum(|w|) + l2 / 2 * sum(w ** 2)`` over the selected parameters."""
        tensors = _selected(params, self.mask, "elastic_net")
        abs_total = _total([p.abs().sum() for p in tensors], params)
        sq_total = _total([p.square().sum() for p in tensors], params)
        return _scale(abs_total, self.l1) + _scale(sq_total, self.l2, 0.5)

    def gradient_coefficients(self, params: Params) -> dict[str, dict[str, Any] | None]:
        """``{"l1": {name: l1}, "l2": {name: l2 / 2}}``."""
        return {
            "l1": coefficients(params, self.mask, self.l1, 1.0, "elastic_net"),
            "l2": coefficients(params, self.mask, self.l2, 0.5, "elastic_net"),
        }


# --------------------------------------------------------------------------
# constructors
# --------------------------------------------------------------------------


def l2(strength: Strength, *, mask: Mask = None) -> L2Penalty:
    """L2 penalty ``strength / 2 * sum(w ** 2)``, the convention of weight decay.

    Its gradient is ``strength * w``: adding it to the loss and running plain
    SGD is exactly ``torch.optim.SGD(weight_decay=strength)``. (With Adam it
    is *not* ``AdamW``'s decoupled weight decay.)

    Args:
        strength: a finite number ``>= 0``, or a 0-d tensor (for example a
            batched one under :func:`torch.func.vmap`, or one you
            differentiate with respect to). Tensor values are not checked.
        mask: which parameters to penalize: ``None`` (all, like
            ``weight_decay``), a predicate ``(name, tensor) -> bool`` such as
            :func:`weights_only`, a collection of names, or a
            ``{name: bool}`` dict.

    Returns:
        An :class:`L2Penalty`: call it on a loss function to wrap it, or use
        ``.value(params)`` to read the penalty.

    Raises:
        TypeError: if ``strength`` is not a real number or real tensor.
        ValueError: if ``strength`` is negative, NaN or infinite, or a tensor
            with more than one element.

    Examples:
        >>> import torch
        >>> params = {"fc.weight": torch.tensor([[1.0, -2.0]]), "fc.bias": torch.tensor([3.0])}
        >>> l2(0.1).value(params)
        tensor(0.7000)
        >>> from regfn.penalties import weights_only
        >>> l2(0.1, mask=weights_only).value(params)
        tensor(0.2500)
        >>> loss_fn = l2(0.1)(lambda params, x: (params["fc.weight"] @ x).sum())
        >>> torch.func.grad(loss_fn)(params, torch.ones(2))["fc.weight"]
        tensor([[1.1000, 0.8000]])
    """
    return L2Penalty(strength, mask)


def l1(strength: Strength, *, mask: Mask = None) -> L1Penalty:
    """L1 penalty ``strength * sum(|w|)``.

    Its (sub)gradient is ``strength * sign(w)`` with ``sign(0) = 0``. Gradient
    steps on it shrink weights but do not land on exact zeros; for sparsity,
    use a proximal step (soft thresholding) instead, see
    :func:`regfn.optim.prox_l1`.

    Args:
        strength: a finite number ``>= 0``, or a 0-d tensor (values of
            tensors are not checked).
        mask: which parameters to penalize (see :func:`l2`).

    Returns:
        An :class:`L1Penalty`.

    Raises:
        TypeError: if ``strength`` is not a real number or real tensor.
        ValueError: if ``strength`` is negative, NaN or infinite, or a tensor
            with more than one element.

    Examples:
        >>> import torch
        >>> params = {"w": torch.tensor([1.0, -2.0, 0.0])}
        >>> l1(0.5).value(params)
        tensor(1.5000)
        >>> torch.func.grad(l1(0.5).value)(params)["w"]
        tensor([ 0.5000, -0.5000,  0.0000])
    """
    return L1Penalty(strength, mask)


def norm(strength: Strength, ord: float = 2, *, mask: Mask = None) -> NormPenalty:
    """Sum of per-tensor norms, ``strength * sum_p torch.norm(p, ord)``.

    This is the tutorial's ``lam * sum(torch.norm(p, ord) for p in
    model.parameters())``: each parameter tensor is flattened and its
    ``ord``-norm taken, *not squared*, then the norms are summed. With
    ``ord=1`` it equals :func:`l1`; with ``ord=2`` it is a group-lasso-like
    penalty, different from :func:`l2` (which is squared and halved). The
    gradient at an all-zero tensor is 0, not NaN.

    Args:
        strength: a finite number ``>= 0``, or a 0-d tensor.
        ord: the vector norm order, a number ``>= 1`` or ``math.inf``.
        mask: which parameters to penalize (see :func:`l2`).

    Returns:
        A :class:`NormPenalty`.

    Raises:
        TypeError: if ``strength`` or ``ord`` is not a real number (or
            ``strength`` a real tensor).
        ValueError: if ``strength`` is negative, NaN, infinite or a tensor
            with more than one element, or ``ord < 1``.

    Examples:
        >>> import math, torch
        >>> params = {"w": torch.tensor([[3.0, 4.0]]), "b": torch.tensor([-1.0])}
        >>> norm(0.1).value(params)          # 0.1 * (5 + 1)
        tensor(0.6000)
        >>> norm(0.1, ord=1).value(params)   # 0.1 * (7 + 1)
        tensor(0.8000)
        >>> norm(0.1, ord=math.inf).value(params)   # 0.1 * (4 + 1)
        tensor(0.5000)
        >>> torch.func.grad(norm(1.0).value)({"w": torch.zeros(2)})["w"]
        tensor([0., 0.])
    """
    return NormPenalty(strength, ord, mask)


def elastic_net(l1: Strength, l2: Strength, *, mask: Mask = None) -> ElasticNetPenalty:
    """Elastic net ``l1 * sum(|w|) + l2 / 2 * sum(w ** 2)``.

    The same as ``l1(l1)`` plus ``l2(l2)`` (same conventions) with one mask.

    Args:
        l1: strength of the L1 term, a finite number ``>= 0`` or a 0-d tensor.
        l2: strength of the L2 term, a finite number ``>= 0`` or a 0-d tensor.
        mask: which parameters to penalize (see :func:`regfn.penalties.l2`).

    Returns:
        An :class:`ElasticNetPenalty`.

    Raises:
        TypeError: if a strength is not a real number or real tensor.
        ValueError: if a strength is negative, NaN, infinite or a tensor with
            more than one element.

    Examples:
        >>> import torch
        >>> params = {"w": torch.tensor([1.0, -2.0])}
        >>> elastic_net(0.1, 0.2).value(params)   # 0.1 * 3 + 0.1 * 5
        tensor(0.8000)
    """
    return ElasticNetPenalty(l1, l2, mask)
