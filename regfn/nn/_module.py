"""The ``torch.nn.Module`` bridge: :func:`functionalize` and :func:`params_from_module`.

:func:`functionalize` runs a module through ``torch.func.functional_call``
with its dropout calls routed, by a ``TorchFunctionMode``, to the keyed
:func:`regfn.nn.dropout`, one key per call site, and its ``F.max_pool2d``
calls to :func:`regfn.nn._pool.max_pool2d` (the same results, faster on CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from ..random import fold_in
from ._dropout import _KEY_HINT, _check_rate, dropout
from ._pool import max_pool2d

__all__ = ["functionalize", "params_from_module"]


def params_from_module(module: torch.nn.Module) -> dict[str, Tensor]:
    """A module's parameters as a flat dict of detached copies (``named_parameters`` names).

    Examples:
        >>> import torch
        >>> sorted(params_from_module(torch.nn.Linear(3, 2)))
        ['bias', 'weight']
    """
    return {name: t.detach().clone() for name, t in module.named_parameters()}


def _channel_dims(ndim: int, spatial: int) -> tuple[int, ...]:
    return tuple(range(ndim - spatial, ndim))


class _KeyedDropout(TorchFunctionMode):
    """Routes torch's dropout functions to :func:`dropout`, one key per call site, and ``F.max_pool2d`` to
    :func:`regfn.nn._pool.max_pool2d`.

    ``rates`` overrides the calls' own rates: ``None`` keeps them, one rate (a
    float or 0-d tensor) serves every call, a tuple or 1-d tensor serves call
    ``i`` with ``rates[i]`` (calls past its end keep their own rate; the caller
    compares ``site``, the number of calls made, with the length afterwards).
    """

    def __init__(self, key: Tensor | None, train: bool, where: str = "functionalize", rates: Any = None):
        super().__init__()
        self.key, self.train, self.where, self.rates, self.site = key, train, where, rates, 0

    def _rate(self, site: int, own: Any) -> Any:
        rates = self.rates
        if rates is None:
            return own
        if isinstance(rates, tuple) or (isinstance(rates, Tensor) and rates.ndim == 1):
            return rates[site] if site < len(rates) else own
        return rates

    def _drop(self, x: Tensor, p: Any, training: bool, dims: tuple[int, ...], what: str) -> Tensor:
        site = self.site
        self.site += 1
        if not (self.train and training):
            return x
        p = _check_rate(self._rate(site, p), self.where)
        if self.key is None and not (isinstance(p, float) and p == 0.0):
            raise ValueError(f"{self.where}: dropout site {site} ({what}) needs a key with train=True; {_KEY_HINT}")
        return dropout(None if self.key is None else fold_in(self.key, site), x, p, broadcast_dims=dims)

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        try:
            kind = _ROUTED.get(func)
        except TypeError:  # unhashable callables
            kind = None
        if kind is None:
            return func(*args, **kwargs)
        return kind(self, *args, **kwargs)


def _f_dropout(
    mode: _KeyedDropout, input: Tensor, p: Any = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    return mode._drop(input, p, training, (), "dropout")


def _torch_dropout(mode: _KeyedDropout, input: Tensor, p: Any, train: bool) -> Tensor:
    return mode._drop(input, p, train, (), "dropout")


def _f_dropout_nd(spatial: int, name: str) -> Callable[..., Tensor]:
    def route(mode: _KeyedDropout, input: Tensor, p: Any = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
        # torch reads a 3-d input to dropout2d as (N, C, L): one mask per channel
        s = 1 if spatial == 2 and input.ndim == 3 else spatial
        return mode._drop(input, p, training, _channel_dims(input.ndim, s), name)

    return route


def _f_max_pool2d(mode: _KeyedDropout, *args: Any, **kwargs: Any) -> Any:
    return max_pool2d(*args, **kwargs)


def _unsupported(name: str) -> Callable[..., Tensor]:
    def route(
        mode: _KeyedDropout, input: Tensor, p: Any = 0.5, training: bool = False, *args: Any, **kwargs: Any
    ) -> Tensor:
        p = mode._rate(mode.site, p)
        mode.site += 1
        if mode.train and training and (isinstance(p, Tensor) or p != 0):
            raise NotImplementedError(f"{mode.where}: {name} is not supported with train=True")
        return input

    return route


_ROUTED: dict[Any, Callable[..., Tensor]] = {
    F.dropout: _f_dropout,
    torch.dropout: _torch_dropout,
    F.dropout1d: _f_dropout_nd(1, "dropout1d"),
    F.dropout2d: _f_dropout_nd(2, "dropout2d"),
    F.dropout3d: _f_dropout_nd(3, "dropout3d"),
    F.alpha_dropout: _unsupported("alpha_dropout"),
    F.feature_alpha_dropout: _unsupported("feature_alpha_dropout"),
    F.max_pool2d: _f_max_pool2d,
}


def functionalize(module: torch.nn.Module) -> tuple[Callable[..., Any], dict[str, Tensor]]:
    """Turn a ``torch.nn.Module`` into a pure ``apply`` function and its parameter dict.

    ``apply(params, *args, key=None, train=False, **kwargs)`` runs
    ``module(*args, **kwargs)`` through ``torch.func.functional_call`` with
    ``params`` in place of the module's parameters (buffers come from the
    module). While it runs, the module is put in ``train`` mode and every call
    to ``F.dropout``, ``torch.dropout`` and ``F.dropout1d/2d/3d`` (so every
    ``nn.Dropout``/``nn.Dropout1d/2d/3d``) is served by :func:`dropout` with the
    key ``fold_in(key, site)``, where ``site`` counts dropout calls in call
    order from 0 (the same model and key always give the same masks). The
    rerouting is a thread-local ``TorchFunctionMode``, active only during the
    call, so it is undone on error and nests.

    A site drops only when ``train=True`` *and* the call's own ``training``
    argument is true. So ``train=False`` turns off even ``F.dropout(x, 0.5)``,
    whose ``training`` defaults to True: the tutorial's always-on dropout
    becomes train-only. ``F.alpha_dropout`` raises ``NotImplementedError``
    when it would drop. ``F.max_pool2d`` (so ``nn.MaxPool2d``) runs through
    :func:`regfn.nn._pool.max_pool2d`: torch's values and gradients, without
    torch's slow plane-by-plane CPU kernel. Modules with batch norm update the running
    statistics in place when ``train=True``, as in torch.

    Args:
        module: any ``nn.Module``.

    Returns:
        ``(apply, params)`` with ``params = params_from_module(module)``.

    Examples:
        >>> import torch, regfn.random as rr
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5))
        >>> apply, params = functionalize(net)
        >>> x = torch.ones(2, 4)
        >>> a = apply(params, x, key=rr.key(0), train=True)
        >>> bool(torch.equal(a, apply(params, x, key=rr.key(0), train=True)))
        True
        >>> bool(torch.equal(apply(params, x), net[0](x)))
        True
    """

    def apply(
        params: Mapping[str, Tensor], *args: Any, key: Tensor | None = None, train: bool = False, **kwargs: Any
    ) -> Any:
        return _routed_call(module, params, args, kwargs, key=key, train=train)[0]

    return apply, params_from_module(module)


def _routed_call(
    module: torch.nn.Module,
    params: Mapping[str, Tensor],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    key: Tensor | None,
    train: bool,
    where: str = "functionalize",
    rates: Any = None,
) -> tuple[Any, int]:
    """``functional_call(module, params, args, kwargs)`` with dropout routed; returns ``(output, dropout calls)``.

    The module (and every submodule) is in ``train`` mode during the call and
    gets its modes back afterwards, even on error. ``rates`` as in
    :class:`_KeyedDropout`.
    """
    modes = [(m, m.training) for m in module.modules()]
    module.train(train)
    try:
        mode = _KeyedDropout(key, train, where, rates)
        with mode:  # not `with ... as mode`: under torch.compile that binds something else
            out = torch.func.functional_call(module, dict(params), tuple(args), dict(kwargs))
        return out, mode.site
    finally:
        for m, was in modes:
            m.training = was
