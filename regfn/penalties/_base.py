"""Penalties' base class, their checks and sums, and the loss wrapper :func:`penalize`."""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from .._checks import check_real
from .._hparams import bounds
from .._tree import Mask, Params, resolve_mask
from ..optim._checks import is_configuration_column

__all__ = ["Penalty", "Strength", "penalize", "penalty_value"]

Strength = float | Tensor

# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------


def _check_strength(value: Any, *, owner: str, name: str = "strength") -> Strength:
    """Validate a strength; return a float or a 0-d tensor.

    Tensors are checked only for their shape and dtype: their value may be a
    traced or batched (vmapped) value that must not be read in Python. Within
    :func:`regfn.optim._checks.rows_of_configurations` a column of strengths,
    one per configuration (:func:`regfn.optim._checks.is_configuration_column`), is one too.
    """
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number or a 0-d tensor, got a bool")
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{owner}: {name} must be a real (floating or integer) tensor, got dtype {value.dtype}")
        if value.numel() != 1:
            if is_configuration_column(value):
                return value  # a column of per-configuration strengths (optim's rows_of_configurations)
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
    return list(_selected_items(params, mask, owner).values())


def _selected_items(params: Params, mask: Mask, owner: str) -> dict[str, Tensor]:
    """``{name: tensor}`` of the parameters ``mask`` selects, in ``params``' order; a ``TypeError`` for one
    that is not a floating tensor."""
    if not isinstance(params, Mapping):
        raise TypeError(f"{owner}: params must be a flat dict {{name: tensor}}, got {type(params).__name__}")
    names = resolve_mask(mask, params, where=f"{owner} mask")
    chosen = {}
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
        chosen[name] = tensor
    return chosen


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

    def gradient_coefficients(self, params: Params) -> dict[str, dict[str, Any] | None] | None:
        """The gradient in closed form, ``{"l1" or "l2": {name: coefficient}}`` (a ``None`` coefficient dict: not
        in closed form for these ``params``), or ``None``: autograd's only (:mod:`regfn.penalties._closed`)."""
        return None

    def __call__(self, loss_fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap ``loss_fn`` so that it adds this penalty; see :func:`penalize`."""
        return penalize(loss_fn, self)


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
        >>> from regfn.penalties import l1, l2
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
        >>> from regfn.penalties import l2
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
