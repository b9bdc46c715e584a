"""Keyed dropout and models as pure functions over parameter dicts.

Everything here is a pure function: parameters are flat dicts named like a
``torch.nn.Module``'s ``state_dict`` (``fc1.weight``, ``fc1.bias``, ...) and
randomness comes from explicit keys (:mod:`regfn.random`), so the functions
work under ``torch.func.grad``, ``torch.func.vmap`` and ``torch.compile``.

* :func:`dropout` is Flax's ``nn.Dropout`` rule, bit for bit in the mask;
  :func:`flax_dropout_key` derives the key a Flax ``Dropout`` layer draws.
* :func:`mlp_init`, :func:`mlp_apply` and :func:`mlp` are the tutorial's MLP
  as ``init(key) -> params`` and ``apply(params, x, *, key, p, train)``.
* :func:`functionalize` turns any ``nn.Module`` into ``(apply, params)`` with
  its dropout driven by a key; :func:`mc_dropout` averages over many keys.
* :func:`numpy_dropout` is the tutorial's numpy reference implementation.

Examples:
    >>> import torch, regfn.random as rr
    >>> model = mlp((8, 6, 4, 1))
    >>> params = model.init(rr.key(0))
    >>> sorted(params)
    ['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight', 'fc3.bias', 'fc3.weight']
    >>> x = torch.ones(5, 8)
    >>> model.apply(params, x, key=rr.key(1), p=0.5, train=True).shape
    torch.Size([5, 1])
"""

from __future__ import annotations

import hashlib
import itertools
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from .random import bernoulli, fold_in, split, uniform
from .random import key as _make_key

__all__ = [
    "MLPSettings",
    "Model",
    "dropout",
    "flax_dropout_key",
    "functionalize",
    "mc_dropout",
    "mlp",
    "mlp_apply",
    "mlp_init",
    "numpy_dropout",
    "params_from_module",
]

Rate = float | Tensor
_KEY_HINT = "pass one, e.g. key=regfn.random.key(0), or use train=False"


# ----------------------------------------------------------------- dropout


def _check_rate(p: object, fn: str) -> Rate:
    if isinstance(p, Tensor):
        if not p.dtype.is_floating_point:
            raise TypeError(f"{fn}: a tensor p must be floating point, got {p.dtype}")
        if p.ndim != 0:
            raise ValueError(
                f"{fn}: p must be a scalar (0-d tensor), got shape {tuple(p.shape)}; "
                "use torch.func.vmap to sweep over several rates"
            )
        return p
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{fn}: p must be a float or a 0-d floating tensor, got {type(p).__name__}")
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{fn}: the drop probability p must be in [0, 1], got {p}")
    return p


def _mask_shape(shape: torch.Size, broadcast_dims: Sequence[int] | int) -> tuple[int, ...]:
    dims = (broadcast_dims,) if isinstance(broadcast_dims, int) else tuple(broadcast_dims)
    out = list(shape)
    seen = set()
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"dropout: broadcast_dims must be ints, got {broadcast_dims!r}")
        if not -len(out) <= d < len(out):
            raise ValueError(f"dropout: broadcast_dims {tuple(dims)} out of range for an input with {len(out)} dims")
        d = int(d) % len(out)
        if d in seen:
            raise ValueError(f"dropout: broadcast_dims {tuple(dims)} repeats dimension {d}")
        seen.add(d)
        out[d] = 1
    return tuple(out)


def dropout(
    key: Tensor | None,
    x: Tensor,
    p: Rate,
    *,
    train: bool = True,
    broadcast_dims: Sequence[int] | int = (),
) -> Tensor:
    """Inverted dropout driven by an explicit key, with ``flax.linen.Dropout``'s rule.

    ``keep = 1 - p``, ``mask = regfn.random.bernoulli(key, keep, mask_shape)``
    and the result is ``where(mask, x / keep, 0)``, where ``mask_shape`` is
    ``x.shape`` with size 1 along ``broadcast_dims`` (those dimensions share
    one mask). Given the key a Flax ``Dropout`` layer draws (see
    :func:`flax_dropout_key`) the mask equals Flax's and the kept values agree
    to 2 ulp (XLA's float32 division is not always correctly rounded).

    A Python float ``p`` is handled like Flax: ``p == 0`` (or ``train=False``)
    returns ``x`` itself, ``p == 1`` returns zeros (with zero, not NaN,
    gradients), and otherwise ``keep = 1.0 - p`` is computed in double
    precision and rounded to float32 for the comparison with float32
    uniforms, exactly as ``jax.random.bernoulli`` does with a Python float.

    A 0-d tensor ``p`` (for example a rate that ``torch.func.vmap`` sweeps
    over) takes no Python branch on its value: ``keep = 1 - p`` is computed in
    ``p``'s dtype (float32 ``p`` matches Flax with a float32 ``jnp`` rate
    exactly), except that a float64 ``keep`` is rounded to float32 (JAX
    without x64 has no float64, and a float64 sweep then reproduces the
    Python-float masks); uniforms are drawn in ``keep``'s dtype and ``x`` is
    divided by ``where(keep > 0, keep, 1)`` (then cast back to ``x.dtype``),
    so ``p == 1`` gives zeros and finite gradients. A tensor ``p`` is not
    range-checked, and it always needs a key when ``train=True``.

    On CPU the kept values are correctly rounded quotients; XLA's (and
    CUDA's division by a scalar) may differ from them by 1 ulp.

    Args:
        key: a key from :func:`regfn.random.key` (may be ``None`` when
            ``train=False`` or ``p == 0.0``). It is moved to ``x``'s device.
        x: a floating tensor.
        p: the drop probability (not the keep probability), a float in
            ``[0, 1]`` or a 0-d floating tensor.
        train: ``False`` turns dropout off (returns ``x``).
        broadcast_dims: dimensions that share the same mask (e.g. ``(-1,)``).

    Returns:
        A tensor like ``x``.

    Raises:
        ValueError: for a float ``p`` outside ``[0, 1]``, a missing key, or
            ``broadcast_dims`` out of range or repeated.
        TypeError: for a non-float ``p`` or non-int ``broadcast_dims``.

    Examples:
        >>> import torch, regfn.random as rr
        >>> x = torch.ones(2, 4)
        >>> y = dropout(rr.key(0), x, 0.5)
        >>> bool(((y == 0) | (y == 2)).all())
        True
        >>> dropout(None, x, 0.5, train=False) is x
        True
        >>> y = dropout(rr.key(0), x, 0.5, broadcast_dims=(0,))
        >>> bool((y[0] == y[1]).all())
        True
    """
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
        raise TypeError(f"dropout: x must be a floating tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    p = _check_rate(p, "dropout")
    shape = _mask_shape(x.shape, broadcast_dims)
    if not train or (isinstance(p, float) and p == 0.0):
        return x
    if key is None:
        raise ValueError(f"dropout: train=True needs a random key; {_KEY_HINT}")
    if isinstance(p, float) and p == 1.0:
        return torch.zeros_like(x)  # Flax's edge case: no x / 0, so no NaN gradient
    key = key.to(x.device)
    if isinstance(p, float):
        keep = 1.0 - p
        return torch.where(bernoulli(key, keep, shape), x / keep, 0.0)
    keep = 1 - p.to(x.device)
    if keep.dtype == torch.float64:
        keep = keep.to(torch.float32)
    safe = torch.where(keep > 0, keep, torch.ones_like(keep))
    return torch.where(bernoulli(key, keep, shape), (x / safe).to(x.dtype), 0.0)


def flax_dropout_key(
    rng: Tensor | int,
    path: Sequence[str] | str = ("Dropout_0",),
    count: int = 1,
    *,
    fix_separator: bool = False,
) -> Tensor:
    """The key a ``flax.linen.Dropout`` layer draws from the ``'dropout'`` rng.

    Flax's ``make_rng`` folds into the rng passed as ``rngs={'dropout': rng}``
    one 32-bit hash: the first 4 bytes (big-endian) of the SHA-1 of the
    layer's module path followed by the layer's call count (``LazyRng`` and
    ``_fold_in_static`` in ``flax/core/scope.py``). With this key,
    ``dropout(key, x, rate)`` reproduces the layer's mask.

    Args:
        rng: the ``'dropout'`` rng as a regfn key (``jax.random.key(s)`` is
            ``regfn.random.key(s)``), or an int seed.
        path: module names from the root module to the ``Dropout`` layer,
            root excluded: ``("Dropout_0",)`` for the first ``nn.Dropout`` of a
            compact model, ``("Block_0", "Dropout_1")`` deeper down, ``()`` for
            ``nn.Dropout(r).apply(...)`` at top level. A ``"/"``-separated
            string is accepted too.
        count: how many times this layer has drawn, this draw included (1 for
            a layer called once per ``apply``).
        fix_separator: Flax's ``flax_fix_rng_separator`` config flag (default
            off in flax 0.12), which hashes a NUL byte before each item.

    Returns:
        A key of shape ``(2,)``.

    Examples:
        >>> import regfn.random as rr
        >>> k = flax_dropout_key(rr.key(0), ("Dropout_0",))
        >>> k.shape, bool((k != flax_dropout_key(rr.key(0), ("Dropout_1",))).any())
        (torch.Size([2]), True)
    """
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        rng = _make_key(int(rng))
    if isinstance(path, str):
        path = tuple(s for s in path.split("/") if s)
    m = hashlib.sha1()
    for item in (*path, count):
        if fix_separator:
            m.update(b"\x00")
        if isinstance(item, str):
            m.update(item.encode("utf-8"))
        elif isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            m.update(item.to_bytes((item.bit_length() + 7) // 8, byteorder="big"))
        else:
            raise TypeError(f"flax_dropout_key: path items must be str and count an int >= 0, got {item!r}")
    return fold_in(rng, int.from_bytes(m.digest()[:4], byteorder="big"))


def numpy_dropout(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """The seed tutorial's numpy inverted dropout, kept as a reference.

    Keeps each unit with probability ``retain = 1 - level`` (a binomial mask
    drawn from ``rng``) and scales the kept units by ``1 / retain``. The
    tutorial raised a bare ``Exception`` for a bad level; this raises
    ``ValueError``.

    Args:
        x: an array.
        level: the drop probability, in ``[0, 1)``.
        rng: a seeded ``numpy.random.Generator``, e.g.
            ``numpy.random.default_rng(0)`` (required: no hidden global
            randomness, even in the reference).

    Returns:
        ``x * mask / retain`` as a float array of ``x``'s shape.

    Raises:
        ValueError: for a level outside ``[0, 1)``.
        TypeError: if ``rng`` is not a ``numpy.random.Generator``.

    Examples:
        >>> import numpy as np
        >>> y = numpy_dropout(np.ones((2, 3)), 0.5, np.random.default_rng(0))
        >>> y.shape, set(y.ravel()) <= {0.0, 2.0}
        ((2, 3), True)
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 <= level < 1.0:
        raise ValueError(f"numpy_dropout: level must be a float in [0, 1), got {level!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"numpy_dropout: rng must be a numpy.random.Generator such as numpy.random.default_rng(0), "
            f"got {type(rng).__name__}"
        )
    x = np.asarray(x)
    retain = 1.0 - float(level)
    mask = rng.binomial(1, retain, size=x.shape)
    return x * mask / retain


# ----------------------------------------------------------------- the MLP

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
    "softplus": F.softplus,
    "identity": lambda t: t,
}
_OUTPUTS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "identity": lambda t: t,
    "logits": lambda t: t,
    "softmax": lambda t: torch.softmax(t, dim=-1),
    "log_softmax": lambda t: torch.log_softmax(t, dim=-1),
    "tanh": torch.tanh,
}


def _lookup(fn: str | Callable[[Tensor], Tensor], table: dict, what: str) -> Callable[[Tensor], Tensor]:
    if callable(fn):
        return fn
    if fn not in table:
        raise ValueError(f"mlp: unknown {what} {fn!r}; use one of {sorted(table)} or a callable")
    return table[fn]


def mlp_init(key: Tensor, sizes: Sequence[int], *, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Initial parameters of an MLP, drawn from a key like ``torch.nn.Linear``'s.

    Layer ``i`` (1-based) maps ``sizes[i-1]`` to ``sizes[i]`` features and is
    stored as ``fc{i}.weight`` (shape ``(out, in)``) and ``fc{i}.bias``, both
    uniform in ``[-1/sqrt(in), 1/sqrt(in))`` (``nn.Linear``'s distribution).
    The weight and bias keys are ``split(fold_in(key, i - 1))``.

    Args:
        key: a key; parameters live on its device.
        sizes: layer widths, input first: ``(8, 6, 4, 1)`` gives fc1, fc2, fc3.
        dtype: a floating dtype.

    Returns:
        A flat dict named like the tutorial module's ``state_dict``.

    Examples:
        >>> import regfn.random as rr
        >>> params = mlp_init(rr.key(0), (8, 6, 1))
        >>> {k: tuple(v.shape) for k, v in params.items()}
        {'fc1.weight': (6, 8), 'fc1.bias': (6,), 'fc2.weight': (1, 6), 'fc2.bias': (1,)}
    """
    sizes = tuple(sizes)
    if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"mlp_init: sizes must be at least two positive ints, got {sizes!r}")
    params = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        kw, kb = split(fold_in(key, i))
        bound = 1.0 / fan_in**0.5
        params[f"fc{i + 1}.weight"] = uniform(kw, (fan_out, fan_in), dtype, -bound, bound)
        params[f"fc{i + 1}.bias"] = uniform(kb, (fan_out,), dtype, -bound, bound)
    return params


def _num_layers(params: Mapping[str, Tensor]) -> int:
    n = 0
    while f"fc{n + 1}.weight" in params:
        n += 1
    if n == 0:
        raise ValueError(f"mlp_apply: expected parameters fc1.weight, fc1.bias, ...; got {sorted(params)}")
    return n


def _broadcast_linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    y = (x.unsqueeze(-2) * w).sum(-1)
    return y if b is None else y + b


_LINEAR = {"matmul": F.linear, "broadcast": _broadcast_linear}


def _linear_kind(linear: object) -> Callable[..., Tensor]:
    if not isinstance(linear, str) or linear not in _LINEAR:
        raise ValueError(f"linear must be one of {sorted(_LINEAR)}, got {linear!r}")
    return _LINEAR[linear]


def mlp_apply(
    params: Mapping[str, Tensor],
    x: Tensor,
    *,
    key: Tensor | None = None,
    p: Rate | Sequence[Rate] = 0.0,
    train: bool = False,
    activation: str | Callable[[Tensor], Tensor] = "relu",
    output: str | Callable[[Tensor], Tensor] = "sigmoid",
    linear: str = "matmul",
) -> Tensor:
    """Run the MLP: ``linear -> activation -> dropout`` per hidden layer, then ``output``.

    This is the tutorial's forward pass (``relu``, ``F.dropout``, ...,
    ``sigmoid``) as a pure function. Hidden layer ``i`` (0-based) drops with
    rate ``p[i]`` using the key ``fold_in(key, i)``. With dropout off the
    result equals the tutorial module's output exactly for the same weights.

    Args:
        params: ``fc1.weight``, ``fc1.bias``, ``fc2.weight``, ... (as from
            :func:`mlp_init` or a module's ``state_dict``).
        x: inputs of shape ``(..., sizes[0])``.
        key: the dropout key (needed when ``train`` and some rate is not 0.0).
        p: one drop rate for every hidden layer (float or 0-d tensor), or one
            per hidden layer (a sequence, or a 1-d tensor).
        train: dropout on (``True``) or off.
        activation: hidden activation, a name (``"relu"``, ``"tanh"``,
            ``"gelu"``, ...) or a callable.
        output: ``"sigmoid"``, ``"logits"`` (= ``"identity"``, for
            ``F.binary_cross_entropy_with_logits``), ``"softmax"``,
            ``"log_softmax"``, ``"tanh"`` or a callable.
        linear: how a layer multiplies: ``"matmul"`` (``F.linear``, the
            default; equal to ``torch.nn.Linear`` bit for bit) or
            ``"broadcast"`` (``(x[..., None, :] * w).sum(-1) + b``: no matrix
            multiply kernel, so a compiler can fuse tiny layers with their
            activation and dropout; sums in another order, so results differ
            from ``"matmul"`` in the last bits). Meant for sweeps of tiny
            models; see BENCHMARKS.md.

    Returns:
        The output, shape ``(..., sizes[-1])``.

    Examples:
        >>> import torch, regfn.random as rr
        >>> params = mlp_init(rr.key(0), (8, 6, 4, 1))
        >>> x = torch.ones(3, 8)
        >>> mlp_apply(params, x, key=rr.key(1), p=(0.5, 0.2), train=True).shape
        torch.Size([3, 1])
        >>> bool(torch.equal(mlp_apply(params, x), mlp_apply(params, x, key=rr.key(1), p=0.5)))
        True
    """
    act = _lookup(activation, _ACTIVATIONS, "activation")
    out_fn = _lookup(output, _OUTPUTS, "output")
    layer = _linear_kind(linear)
    n = _num_layers(params)
    hidden = n - 1
    if (isinstance(p, Tensor) and p.ndim == 1) or isinstance(p, Sequence):
        if len(p) != hidden:
            raise ValueError(f"mlp_apply: got {len(p)} rates for {hidden} hidden layers")
        rates = [p[i] for i in range(hidden)]
    else:
        rates = [p] * hidden
    for i in range(n):
        x = layer(x, params[f"fc{i + 1}.weight"], params.get(f"fc{i + 1}.bias"))
        if i == hidden:
            break
        x = act(x)
        rate = _check_rate(rates[i], "mlp_apply")
        if train and not (isinstance(rate, float) and rate == 0.0):
            if key is None:
                raise ValueError(f"mlp_apply: train=True with dropout needs a random key; {_KEY_HINT}")
            x = dropout(fold_in(key, i), x, rate)
    return out_fn(x)


class MLPSettings(NamedTuple):
    """The settings of a :func:`mlp`, kept on its ``apply`` as ``apply.mlp_settings``.

    Examples:
        >>> mlp((8, 6, 4, 1), output="logits").apply.mlp_settings.sizes
        (8, 6, 4, 1)
    """

    sizes: tuple[int, ...]
    activation: str | Callable[[Tensor], Tensor]
    output: str | Callable[[Tensor], Tensor]
    dtype: torch.dtype


class Model(NamedTuple):
    """A model as two pure functions.

    Attributes:
        init: ``init(key) -> params``.
        apply: ``apply(params, x, *, key=None, p=0.0, train=False) -> output``.
    """

    init: Callable[[Tensor], dict[str, Tensor]]
    apply: Callable[..., Tensor]


def mlp(
    sizes: Sequence[int],
    activation: str | Callable[[Tensor], Tensor] = "relu",
    output: str | Callable[[Tensor], Tensor] = "sigmoid",
    *,
    dtype: torch.dtype = torch.float32,
    linear: str = "matmul",
) -> Model:
    """An MLP as a :class:`Model`: :func:`mlp_init` and :func:`mlp_apply` with fixed settings.

    Examples:
        >>> import torch, regfn.random as rr
        >>> init, apply = mlp((8, 6, 4, 1), output="logits")
        >>> apply(init(rr.key(0)), torch.zeros(2, 8), key=rr.key(1), p=0.5, train=True).shape
        torch.Size([2, 1])
    """
    sizes = tuple(sizes)
    _lookup(activation, _ACTIVATIONS, "activation")
    _lookup(output, _OUTPUTS, "output")
    _linear_kind(linear)

    def init(key: Tensor) -> dict[str, Tensor]:
        return mlp_init(key, sizes, dtype=dtype)

    def apply(
        params: Mapping[str, Tensor],
        x: Tensor,
        *,
        key: Tensor | None = None,
        p: Rate | Sequence[Rate] = 0.0,
        train: bool = False,
    ) -> Tensor:
        return mlp_apply(params, x, key=key, p=p, train=train, activation=activation, output=output, linear=linear)

    # What the function computes, for engines that recognise an MLP (regfn.sweep(engine="triton")).
    apply.mlp_settings = MLPSettings(sizes, activation, output, dtype)
    return Model(init, apply)


# ----------------------------------------------------------------- nn.Module bridge


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
    """Routes torch's dropout functions to :func:`dropout`, one key per call site."""

    def __init__(self, key: Tensor | None, train: bool):
        super().__init__()
        self.key, self.train, self.site = key, train, 0

    def _drop(self, x: Tensor, p: Any, training: bool, dims: tuple[int, ...], what: str) -> Tensor:
        site = self.site
        self.site += 1
        if not (self.train and training):
            return x
        p = _check_rate(p, what)
        if self.key is None and not (isinstance(p, float) and p == 0.0):
            raise ValueError(f"functionalize: dropout site {site} ({what}) needs a key with train=True; {_KEY_HINT}")
        return dropout(None if self.key is None else fold_in(self.key, site), x, p, broadcast_dims=dims)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            kind = _ROUTED.get(func)
        except TypeError:  # unhashable callables
            kind = None
        if kind is None:
            return func(*args, **kwargs)
        return kind(self, *args, **kwargs)


def _f_dropout(mode, input, p=0.5, training=True, inplace=False):
    return mode._drop(input, p, training, (), "dropout")


def _torch_dropout(mode, input, p, train):
    return mode._drop(input, p, train, (), "dropout")


def _f_dropout_nd(spatial: int, name: str):
    def route(mode, input, p=0.5, training=True, inplace=False):
        # torch reads a 3-d input to dropout2d as (N, C, L): one mask per channel
        s = 1 if spatial == 2 and input.ndim == 3 else spatial
        return mode._drop(input, p, training, _channel_dims(input.ndim, s), name)

    return route


def _unsupported(name: str):
    def route(mode, input, p=0.5, training=False, *args, **kwargs):
        mode.site += 1
        if mode.train and training and p != 0:
            raise NotImplementedError(f"functionalize: {name} is not supported with train=True")
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
    when it would drop. Modules with batch norm update the running
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

    def apply(params: Mapping[str, Tensor], *args: Any, key: Tensor | None = None, train: bool = False, **kwargs: Any):
        modes = [(m, m.training) for m in module.modules()]
        module.train(train)
        try:
            with _KeyedDropout(key, train):
                return torch.func.functional_call(module, dict(params), args, kwargs)
        finally:
            for m, was in modes:
                m.training = was

    return apply, params_from_module(module)


def mc_dropout(
    apply: Callable[..., Tensor],
    params: Mapping[str, Tensor],
    x: Tensor,
    key: Tensor,
    n: int,
    *,
    chunk_size: int | None = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """Monte Carlo dropout: mean and standard deviation of ``n`` dropout predictions.

    Calls ``apply(params, x, key=k, train=True, **kwargs)`` for the ``n`` keys
    ``split(key, n)`` in one ``torch.func.vmap`` (``chunk_size`` bounds its
    memory).

    Returns:
        ``(mean, std)`` over the ``n`` samples (``std`` with ``correction=0``,
        like ``numpy.std``).

    Examples:
        >>> import torch, regfn.random as rr
        >>> init, apply = mlp((8, 6, 4, 1))
        >>> mean, std = mc_dropout(apply, init(rr.key(0)), torch.ones(3, 8), rr.key(1), 50, p=0.5)
        >>> mean.shape, bool((std > 0).any())
        (torch.Size([3, 1]), True)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"mc_dropout: n must be an int >= 1, got {n!r}")
    samples = torch.func.vmap(lambda k: apply(params, x, key=k, train=True, **kwargs), chunk_size=chunk_size)(
        split(key, n)
    )
    return samples.mean(0), samples.std(0, correction=0)
