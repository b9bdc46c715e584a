"""L1 / L2 penalties as composable loss transformers.

A penalty is a small frozen object. Called on a loss function it returns a
new loss function with the same signature whose value is the loss plus the
penalty of its ``params`` argument (the first positional one, the flat
``{name: tensor}`` dict that :func:`torch.func.grad` differentiates)::

    loss_fn = l2(1e-3)(loss_fn)                # or penalize(loss_fn, l2(1e-3))
    grads = torch.func.grad(loss_fn)(params, x, y)

Conventions (``w`` ranges over the selected parameters, every element):

* :func:`l2`: ``strength / 2 * sum(w ** 2)``. Its gradient is
  ``strength * w``, exactly what ``torch.optim.SGD(weight_decay=strength)``
  adds to the gradient.
* :func:`l1`: ``strength * sum(|w|)``, with subgradient ``sign(w)`` and
  ``sign(0) = 0``.
* :func:`norm`: ``strength * sum_p torch.norm(p, ord)``, one (not squared)
  norm per parameter tensor, of the flattened tensor, summed over tensors,
  as in the popular tutorial loop
  ``lam * sum(torch.norm(p, 1) for p in model.parameters())``. Its
  gradient is 0 (not NaN) at an all-zero tensor.
* :func:`elastic_net`: ``l1(a) + l2(b)``.

Every strength may be a Python number or a 0-d tensor, in particular a
batched one under :func:`torch.func.vmap`, so one call can sweep many
strengths. Nothing branches on a tensor's value, so penalties also work
under :func:`torch.func.grad`, :func:`torch.func.vmap` and
:func:`torch.compile`.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ._checks import check_real
from ._hparams import bounds
from ._tree import Mask, Params, resolve_mask, weights_only

__all__ = [
    "ElasticNetPenalty",
    "L1Penalty",
    "L2Penalty",
    "NormPenalty",
    "Penalty",
    "elastic_net",
    "l1",
    "l2",
    "norm",
    "penalize",
    "penalty_value",
    "weights_only",
]

Strength = float | Tensor


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------


def _check_strength(value: Any, *, owner: str, name: str = "strength") -> Strength:
    """Validate a strength; return a float or a 0-d tensor.

    Tensors are checked only for their shape and dtype: their value may be a
    traced or batched (vmapped) value that must not be read in Python.
    """
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number or a 0-d tensor, got a bool")
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{owner}: {name} must be a real (floating or integer) tensor, got dtype {value.dtype}")
        if value.numel() != 1:
            raise ValueError(
                f"{owner}: {name} must be a scalar: a 0-d tensor (or one with a single "
                f"element), got shape {tuple(value.shape)}; to sweep strengths, "
                f"torch.func.vmap over a vector of them"
            )
        return value.reshape(()) if value.ndim else value
    if isinstance(value, numbers.Real):  # every penalty strength has the registry's penalty range
        return check_real(value, name, owner, **bounds("l2"))
    raise TypeError(f"{owner}: {name} must be a real number or a 0-d tensor, got {type(value).__name__}")


def _check_ord(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"norm: ord must be a real number >= 1 or math.inf, got {value!r}")
    as_float = float(value)
    if math.isnan(as_float) or as_float < 1:
        raise ValueError(f"norm: ord must be a real number >= 1 or math.inf (a norm), got {value!r}")
    return as_float


def _selected(params: Params, mask: Mask, owner: str) -> list[Tensor]:
    """The tensors of ``params`` that ``mask`` selects, in ``params``' order."""
    if not isinstance(params, Mapping):
        raise TypeError(f"{owner}: params must be a flat dict {{name: tensor}}, got {type(params).__name__}")
    names = resolve_mask(mask, params, where=f"{owner} mask")
    tensors = []
    for name, tensor in params.items():
        if name not in names:
            continue
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{owner}: parameter {name!r} is a {type(tensor).__name__}, not a tensor")
        if not tensor.is_floating_point():
            raise TypeError(
                f"{owner}: parameter {name!r} has dtype {tensor.dtype}; only floating tensors "
                f"can be penalized (leave it out with mask=...)"
            )
        tensors.append(tensor)
    return tensors


def _zero_like(params: Params) -> Tensor:
    """A 0-d zero with the dtype and device of the first tensor in ``params``."""
    for tensor in params.values():
        if isinstance(tensor, Tensor) and tensor.is_floating_point():
            return torch.zeros((), dtype=tensor.dtype, device=tensor.device)
    return torch.zeros(())


def _total(terms: list[Tensor], params: Params) -> Tensor:
    """Sum of 0-d tensors in order; a 0-d zero when there is none."""
    if not terms:
        return _zero_like(params)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _scale(total: Tensor, strength: Strength, factor: float = 1.0) -> Tensor:
    """``strength * factor * total``, keeping ``total``'s dtype."""
    if isinstance(strength, Tensor):
        strength = strength.to(total.dtype)
    if factor != 1.0:
        strength = strength * factor
    return total * strength


def _safe_norm(p: Tensor, ord: float) -> Tensor:
    """``torch.linalg.vector_norm(p, ord)`` of the flattened ``p`` whose
    derivatives are 0, not NaN, when ``p`` is all zeros (double-``where``)."""
    is_zero = (p == 0).all()
    safe = torch.where(is_zero, torch.ones_like(p), p)
    n = torch.linalg.vector_norm(safe, ord)
    return torch.where(is_zero, torch.zeros_like(n), n)


# --------------------------------------------------------------------------
# penalties
# --------------------------------------------------------------------------


class Penalty:
    """Base class of penalties: ``value(params)`` and a loss transformer.

    Subclasses are frozen dataclasses that implement :meth:`value`. Calling a
    penalty on a loss function returns ``penalize(loss_fn, penalty)``.
    """

    mask: Mask

    def value(self, params: Params) -> Tensor:
        """The penalty of ``params`` (a 0-d tensor)."""
        raise NotImplementedError

    def __call__(self, loss_fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap ``loss_fn`` so that it adds this penalty; see :func:`penalize`."""
        return penalize(loss_fn, self)


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


# --------------------------------------------------------------------------
# wrapping and reading
# --------------------------------------------------------------------------


def _first_param_name(fn: Callable[..., Any]) -> str | None:
    """Name of ``fn``'s first parameter if it can be passed by keyword."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            return parameter.name
        return None
    return None


def penalty_value(params: Params, *penalties: Penalty) -> Tensor:
    """Sum of the penalties' values at ``params``, for logging.

    Args:
        params: a flat ``{name: tensor}`` parameter dict.
        *penalties: penalties such as ``l2(1e-3)``; none gives a 0-d zero
            of the parameters' dtype.

    Returns:
        A 0-d tensor.

    Raises:
        TypeError: if an argument is not a :class:`Penalty`.

    Examples:
        >>> import torch
        >>> params = {"w": torch.tensor([1.0, -2.0])}
        >>> penalty_value(params, l1(0.1), l2(0.2))
        tensor(0.8000)
    """
    for penalty in penalties:
        if not isinstance(penalty, Penalty):
            raise TypeError(f"penalty_value: expected penalties such as l2(1e-3), got {type(penalty).__name__}")
    if not isinstance(params, Mapping):
        raise TypeError(f"penalty_value: params must be a flat dict {{name: tensor}}, got {type(params).__name__}")
    return _total([penalty.value(params) for penalty in penalties], params)


def penalize(loss_fn: Callable[..., Any], *penalties: Penalty) -> Callable[..., Any]:
    """Wrap ``loss_fn`` so that it returns its loss plus the penalties.

    The returned function has ``loss_fn``'s signature (and name and
    docstring). Its first positional argument (or the keyword argument named
    like ``loss_fn``'s first parameter) is the parameter dict that is
    penalized; every argument is passed to ``loss_fn`` untouched. If
    ``loss_fn`` returns a pair ``(loss, aux)``, as used with
    ``torch.func.grad(..., has_aux=True)``, it returns
    ``(loss + penalty, aux)``.

    ``penalize(f, a, b)`` adds ``a`` and ``b``, as ``a(b(f))`` and
    ``b(a(f))`` do (up to rounding).

    Args:
        loss_fn: ``loss_fn(params, *args, **kwargs) -> loss`` or
            ``-> (loss, aux)``.
        *penalties: penalties such as ``l2(1e-3)``.

    Returns:
        The penalized loss function.

    Raises:
        TypeError: if ``loss_fn`` is not callable or a penalty is not a
            :class:`Penalty`; when called, if no parameter dict is given or
            ``loss_fn`` returns a tuple that is not a pair.

    Examples:
        >>> import torch
        >>> def loss_fn(params, x, y):
        ...     return ((params["w"] * x - y) ** 2).mean()
        >>> params, x, y = {"w": torch.tensor(1.0)}, torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])
        >>> penalized = penalize(loss_fn, l2(0.2))
        >>> penalized.__name__, penalized(params, x, y)   # 2.5 + 0.1
        ('loss_fn', tensor(2.6000))
        >>> torch.func.grad(penalized)(params, x, y)["w"]   # -5 + 0.2
        tensor(-4.8000)
    """
    if not callable(loss_fn):
        raise TypeError(f"penalize: loss_fn must be callable, got {type(loss_fn).__name__}")
    for penalty in penalties:
        if not isinstance(penalty, Penalty):
            raise TypeError(f"penalize: expected penalties such as l2(1e-3), got {type(penalty).__name__}")
    penalties = tuple(penalties)

    @functools.wraps(loss_fn)
    def penalized(*args: Any, **kwargs: Any) -> Any:
        # The signature is only inspected when params come by keyword, so the
        # usual positional call stays free of `inspect` (which torch.compile cannot trace).
        params_name = None if args else _first_param_name(loss_fn)
        if args:
            params = args[0]
        elif params_name is not None and params_name in kwargs:
            params = kwargs[params_name]
        else:
            raise TypeError(
                f"{getattr(loss_fn, '__name__', 'loss_fn')}: missing the parameter dict (the first positional argument)"
            )
        out = loss_fn(*args, **kwargs)
        if not penalties:
            return out
        penalty = penalty_value(params, *penalties)
        if isinstance(out, tuple):
            if len(out) != 2:
                raise TypeError(
                    f"penalize: loss_fn returned a tuple of {len(out)} items; expected a loss or a pair (loss, aux)"
                )
            loss, aux = out
            return loss + penalty, aux
        return out + penalty

    return penalized
