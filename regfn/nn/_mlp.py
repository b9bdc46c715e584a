"""The tutorial's MLP as pure functions: :func:`mlp_init`, :func:`mlp_apply`, :func:`mlp`.

Parameters are flat dicts named like the tutorial module's ``state_dict``
(``fc1.weight``, ``fc1.bias``, ...). :func:`mlp` bundles ``init`` and ``apply``
into a :class:`Model` and keeps its settings on ``apply.mlp_settings``
(:class:`MLPSettings`) for engines that recognise an MLP. Also here: the
activation and output tables and the two kinds of linear layer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..random import _native_cols, fold_in, split, uniform
from ..random._host import tracing
from ._dropout import _KEY_HINT, Rate, _check_rate, _dropout

__all__ = ["MLPSettings", "Model", "mlp", "mlp_apply", "mlp_init"]

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

NARROW = 16
"""A hidden layer narrower than this (one AVX-512 vector of float32) makes a compiled CPU MLP compute features
first (:func:`features_first`)."""


def features_first(
    x: Tensor, params: Mapping[str, Tensor], hidden: int, layer: Callable[..., Tensor], activation: object
) -> bool:
    """Whether :func:`mlp_apply` computes features first: activations ``(features, rows)`` in memory and in
    the traced graph.

    Only while torch compiles for a CPU, for 2-d inputs, ``linear="matmul"``
    layers, an activation given by name (element by element) and some hidden
    layer narrower than :data:`NARROW`, where the C kernel draws the masks
    (stored the same way, :mod:`regfn.random._native_cols`). There inductor's
    fused kernels otherwise run along a few features at a time and gather
    across rows: the tutorial's compiled sweep step (8-6-4-1) took 1.7x longer
    (docs/benchmarks/sweep.md). Every value is computed from the same operands
    and masks (the layout changes, not the function): results may differ from
    the rows-first ones in the last bits, as compiled code may from eager code.

    Examples:
        >>> import torch, regfn.random as rr
        >>> params = mlp_init(rr.key(0), (8, 6, 1))
        >>> features_first(torch.zeros(4, 8), params, 1, F.linear, "relu")  # eagerly: never
        False
    """
    if layer is not F.linear or not isinstance(activation, str) or x.ndim != 2 or x.device.type != "cpu":
        return False
    if not tracing():
        return False
    narrow = any(params[f"fc{i + 1}.weight"].shape[0] < NARROW for i in range(hidden))
    return narrow and _native_cols.ready()


def _linear_features_first(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``F.linear(x.mT, w, b).mT``: a layer for ``(features, rows)`` activations."""
    return w @ x if b is None else torch.addmm(b.unsqueeze(-1), w, x)


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
            default; equal to ``torch.nn.Linear`` bit for bit, except that
            compiled for a CPU an MLP with a hidden layer narrower than 16
            computes features first, :func:`features_first`) or
            ``"broadcast"`` (``(x[..., None, :] * w).sum(-1) + b``: no matrix
            multiply kernel, so a compiler can fuse tiny layers with their
            activation and dropout; sums in another order, so results differ
            from ``"matmul"`` in the last bits). Meant for sweeps of tiny
            models; see docs/benchmarks/.

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
    layer_keys: Tensor | None = None
    cols = features_first(x, params, hidden, layer, activation)
    if cols:
        x, layer = x.mT, _linear_features_first
    for i in range(n):
        x = layer(x, params[f"fc{i + 1}.weight"], params.get(f"fc{i + 1}.bias"))
        if i == hidden:
            break
        x = act(x)
        rate = _check_rate(rates[i], "mlp_apply")
        if train and not (isinstance(rate, float) and rate == 0.0):
            if key is None:
                raise ValueError(f"mlp_apply: train=True with dropout needs a random key; {_KEY_HINT}")
            if layer_keys is None:
                # split(key, n)[i] is threefry2x32(key, (0, i)), which is fold_in(key, i): every
                # layer's key from one call (one cipher pass instead of one per layer).
                layer_keys = split(key, hidden)
            x = _dropout(layer_keys[i], x, rate, transposed=cols)
    return out_fn(x.mT if cols else x)


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


def settings_of(model: Model) -> MLPSettings | None:
    """The :class:`MLPSettings` a :func:`mlp` declares on its ``apply``, or ``None`` for any other model.

    Engines that run MLPs their own way (``regfn.sweep(engine="triton")``) read this.

    Examples:
        >>> settings_of(mlp((8, 6, 1))).sizes, settings_of(Model(lambda k: {}, lambda p, x, **kw: x))
        ((8, 6, 1), None)
    """
    settings = getattr(model.apply, "mlp_settings", None)
    return settings if isinstance(settings, MLPSettings) else None


class Model(NamedTuple):
    """A model as two pure functions.

    Attributes:
        init: ``init(key) -> params``.
        apply: ``apply(params, x, *, key=None, p=0.0, train=False) -> output``.

    Examples:
        >>> import torch, regfn.random as rr
        >>> linear = Model(init=lambda key: {"w": rr.normal(key, (3,))},
        ...                apply=lambda params, x, *, key=None, p=0.0, train=False: x @ params["w"])
        >>> linear.apply(linear.init(rr.key(0)), torch.ones(2, 3)).shape
        torch.Size([2])
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
    apply.mlp_settings = MLPSettings(sizes, activation, output, dtype)  # type: ignore[attr-defined]  # a function attribute
    return Model(init, apply)
