"""Any ``torch.nn.Module`` as a sweepable :class:`Model`: :func:`from_module`.

``init(key)`` re-draws every parameter from the key with the distribution
torch's own layer uses (its ``reset_parameters``); ``apply`` runs the module
through ``torch.func.functional_call`` with its dropout calls routed to keyed
:func:`regfn.nn.dropout` (the machinery of :func:`regfn.nn.functionalize`)
and the rate taken from the caller (a sweep's ``p``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch import nn as tnn

from ..random import fold_in, normal, uniform
from ._dropout import Rate, _check_rate
from ._mlp import Model
from ._module import _routed_call

__all__ = ["from_module"]

_WHERE = "from_module"
InitFn = Callable[[Tensor, tuple[int, ...]], Tensor]
# draw(key) -> one parameter's initial value; a layer's rule(module, attribute, parameter) gives it (None: no rule)
_Draw = Callable[[Tensor], Tensor]


def _fan_in_bound(weight: Tensor) -> float:
    """``1/sqrt(fan_in)`` with torch's ``fan_in = weight.size(1) * prod(weight.shape[2:])`` (0 for no inputs).

    This is the bound of ``kaiming_uniform_(a=sqrt(5))`` on the weight and of
    ``uniform_`` on the bias in ``nn.Linear`` and ``nn.Conv*d`` (transposed
    convolutions included: their weight is ``(in, out/groups, *kernel)``).
    """
    fan_in = weight.shape[1] * math.prod(weight.shape[2:]) if weight.ndim >= 2 else 0
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _uniform_rule(bound: float, param: Tensor) -> _Draw:
    shape, dtype, device = tuple(param.shape), param.dtype, param.device
    return lambda k: uniform(k.to(device), shape, dtype, -bound, bound)


def _linear_or_conv(module: tnn.Linear | tnn.modules.conv._ConvNd, attr: str, param: Tensor) -> _Draw | None:
    if attr not in ("weight", "bias"):
        return None
    return _uniform_rule(_fan_in_bound(module.weight), param)


def _bilinear(module: tnn.Bilinear, attr: str, param: Tensor) -> _Draw | None:
    if attr not in ("weight", "bias"):
        return None
    return _uniform_rule(1.0 / math.sqrt(module.weight.size(1)), param)


def _embedding(module: tnn.Embedding | tnn.EmbeddingBag, attr: str, param: Tensor) -> _Draw | None:
    if attr != "weight":
        return None
    shape, dtype, device = tuple(param.shape), param.dtype, param.device
    pad = module.padding_idx

    def draw(k: Tensor) -> Tensor:
        w = normal(k.to(device), shape, dtype)
        if pad is None:
            return w
        return w.index_fill(0, torch.tensor([pad], device=device), 0.0)  # torch zeroes the padding row

    return draw


def _constant_rule(value: float, param: Tensor) -> _Draw:
    shape, dtype, device = tuple(param.shape), param.dtype, param.device
    return lambda k: torch.full(shape, value, dtype=dtype, device=device)


def _affine_norm(module: tnn.Module, attr: str, param: Tensor) -> _Draw | None:
    if attr == "weight":
        return _constant_rule(1.0, param)
    if attr == "bias":
        return _constant_rule(0.0, param)
    return None


def _prelu(module: tnn.PReLU, attr: str, param: Tensor) -> _Draw | None:
    return _constant_rule(float(module.init), param) if attr == "weight" else None


# (layer class, the reset_parameters whose distribution the rule copies, the rule). A subclass that
# overrides reset_parameters has a distribution of its own, so it is not matched.
_RULES: list[tuple[type[tnn.Module], Callable[..., Any], Callable[[Any, str, Tensor], _Draw | None]]] = [
    (tnn.Linear, tnn.Linear.reset_parameters, _linear_or_conv),
    (tnn.modules.conv._ConvNd, tnn.modules.conv._ConvNd.reset_parameters, _linear_or_conv),
    (tnn.Bilinear, tnn.Bilinear.reset_parameters, _bilinear),
    (tnn.Embedding, tnn.Embedding.reset_parameters, _embedding),
    (tnn.EmbeddingBag, tnn.EmbeddingBag.reset_parameters, _embedding),
    (tnn.LayerNorm, tnn.LayerNorm.reset_parameters, _affine_norm),
    (tnn.GroupNorm, tnn.GroupNorm.reset_parameters, _affine_norm),
    (tnn.modules.batchnorm._NormBase, tnn.modules.batchnorm._NormBase.reset_parameters, _affine_norm),
    (tnn.PReLU, tnn.PReLU.reset_parameters, _prelu),
]
if hasattr(tnn, "RMSNorm"):  # torch >= 2.4
    _RULES.append((tnn.RMSNorm, tnn.RMSNorm.reset_parameters, _affine_norm))

_KNOWN = (
    "Linear, Bilinear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, Embedding, EmbeddingBag, LayerNorm, GroupNorm, "
    "RMSNorm, BatchNorm/InstanceNorm (affine, without running statistics), PReLU"
)


def _rule_for(module: tnn.Module, attr: str, param: Tensor) -> _Draw | None:
    for cls, reset, rule in _RULES:
        if isinstance(module, cls) and getattr(type(module), "reset_parameters", None) is reset:
            return rule(module, attr, param)
    return None


def _describe(path: str, module: tnn.Module) -> str:
    return f"module {path!r} ({type(module).__name__})" if path else f"the module ({type(module).__name__})"


def _reinitialising_parent(path: str, modules: Mapping[str, tnn.Module]) -> tuple[str, tnn.Module] | None:
    """The nearest proper ancestor of ``path`` that re-initialises its children (``nn.MultiheadAttention``, ...)."""
    parts = path.split(".") if path else []
    for n in range(len(parts) - 1, -1, -1):
        anc_path = ".".join(parts[:n])
        anc = modules[anc_path]
        if any(hasattr(type(anc), m) for m in ("reset_parameters", "_reset_parameters")):
            return anc_path, anc
    return None


def _refuse_buffers(module: tnn.Module) -> None:
    owners: dict[str, list[str]] = {}
    for name, _ in module.named_buffers():
        path, _, attr = name.rpartition(".")
        owners.setdefault(path, []).append(attr)
    if not owners:
        return
    path, names = next(iter(owners.items()))
    owner = module.get_submodule(path)
    raise ValueError(
        f"{_WHERE}: {_describe(path, owner)} has buffers ({', '.join(names)}); regfn does not carry per-configuration "
        "state such as batch norm's running statistics through a sweep yet: use nn.GroupNorm or nn.LayerNorm "
        "instead (or BatchNorm with track_running_stats=False), and keep a constant as a plain tensor attribute"
    )


def _init_fn_draw(name: str, fn: InitFn, param: Tensor) -> _Draw:
    shape, dtype, device = tuple(param.shape), param.dtype, param.device

    def draw(k: Tensor) -> Tensor:
        out = fn(k, shape)
        if not isinstance(out, Tensor):
            raise TypeError(f"{_WHERE}: init_fns[{name!r}] must return a tensor, got {type(out).__name__}")
        if tuple(out.shape) != shape:
            raise ValueError(
                f"{_WHERE}: init_fns[{name!r}] must return a tensor of shape {shape}, got {tuple(out.shape)}"
            )
        return out.to(dtype=dtype, device=device)

    return draw


def _check_init_fns(init_fns: Mapping[str, InitFn] | None, names: Sequence[str]) -> Mapping[str, InitFn]:
    if init_fns is None:
        return {}
    if not isinstance(init_fns, Mapping):
        raise TypeError(f"{_WHERE}: init_fns must be a dict of parameter name -> fn(key, shape), got {init_fns!r}")
    unknown = [n for n in init_fns if n not in names]
    if unknown:
        raise ValueError(
            f"{_WHERE}: init_fns names {', '.join(map(repr, unknown))}, which the module has no parameter of; "
            f"its parameters are {', '.join(names)}"
        )
    for n, fn in init_fns.items():
        if not callable(fn):
            raise TypeError(f"{_WHERE}: init_fns[{n!r}] must be a function fn(key, shape) -> Tensor, got {fn!r}")
    return init_fns


def _draws(module: tnn.Module, init_fns: Mapping[str, InitFn]) -> dict[str, _Draw]:
    modules = dict(module.named_modules())
    draws: dict[str, _Draw] = {}
    for name, param in module.named_parameters():
        path, _, attr = name.rpartition(".")
        owner = modules[path]
        if isinstance(param, tnn.parameter.UninitializedParameter):
            raise ValueError(
                f"{_WHERE}: parameter {name!r} of {_describe(path, owner)} is not initialised yet (a lazy layer): "
                "run the module on one input first"
            )
        if name in init_fns:
            draws[name] = _init_fn_draw(name, init_fns[name], param)
            continue
        hint = f"pass init_fns={{{name!r}: fn}} with fn(key, shape) -> Tensor"
        parent = _reinitialising_parent(path, modules)
        if parent is not None:
            raise ValueError(
                f"{_WHERE}: parameter {name!r} of {_describe(path, owner)} is re-initialised by "
                f"{_describe(*parent)}, whose initialisation regfn does not know; {hint}"
            )
        draw = _rule_for(owner, attr, param)
        if draw is None:
            raise ValueError(
                f"{_WHERE}: no initialiser for parameter {name!r} of {_describe(path, owner)}; regfn knows torch's "
                f"defaults for {_KNOWN}; {hint}"
            )
        draws[name] = draw
    return draws


def _check_rates(p: object) -> tuple[Any, int | None]:
    """``(rates, count)``: ``count`` is the number of rates of a per-call ``p``, else ``None``."""
    if p is None:
        return None, None
    if isinstance(p, Tensor) and p.ndim == 1:
        if not p.dtype.is_floating_point:
            raise TypeError(f"{_WHERE}: a tensor p must be floating point, got {p.dtype}")
        return p, p.shape[0]
    if isinstance(p, (list, tuple)):
        rates = tuple(_check_rate(r, _WHERE) for r in p)
        return rates, len(rates)
    return _check_rate(p, _WHERE), None


def from_module(module: tnn.Module, *, init_fns: Mapping[str, InitFn] | None = None) -> Model:
    """Any ``torch.nn.Module`` as a :class:`Model` that ``regfn.train`` and ``regfn.sweep`` take.

    ``init(key)`` returns a fresh draw of every parameter of
    ``module.named_parameters()`` (same names and order, the module's dtype
    and device), parameter ``j`` drawn from ``fold_in(key, j)`` with the
    distribution torch's layer gives it (its ``reset_parameters``):

    * ``Linear``, ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``: weight and bias
      uniform in ``[-b, b)``, ``b = 1/sqrt(fan_in)`` (what
      ``kaiming_uniform_(a=sqrt(5))`` gives), ``fan_in = in_features`` or
      ``in_channels/groups * prod(kernel_size)``; ``Bilinear``:
      ``b = 1/sqrt(in1_features)``;
    * ``Embedding``, ``EmbeddingBag``: standard normal, the ``padding_idx``
      row zero;
    * ``LayerNorm``, ``GroupNorm``, ``RMSNorm``, affine batch/instance norm:
      weight 1, bias 0; ``PReLU``: its ``init`` value.

    The module's own weights are not used, so the same key always gives the
    same parameters and K seeds give K independent initialisations. Any other
    parameter (a custom ``nn.Parameter``, a layer regfn does not know, a
    subclass that overrides ``reset_parameters``, a child of a module that
    re-initialises its children such as ``nn.MultiheadAttention``) raises a
    ``ValueError`` naming it, unless ``init_fns`` maps its name to
    ``fn(key, shape) -> Tensor`` (cast to the parameter's dtype and device).
    An ``init_fns`` entry overrides any layer's rule.

    ``apply(params, x, *, key=None, p=None, train=False)`` runs
    ``module(x)`` through ``torch.func.functional_call`` on ``params``, with
    dropout routed as in :func:`regfn.nn.functionalize`: the ``i``-th dropout
    call (``nn.Dropout``, ``F.dropout``, ``nn.Dropout1d/2d/3d``, ...) draws its
    mask from ``fold_in(key, i)`` with :func:`regfn.nn.dropout`, and
    ``train=False`` turns every call off. The rate of each call is the
    module's own for ``p=None``; ``p`` itself for a float or 0-d tensor (a
    sweep's ``p``: no Python branch on its value, so it vmaps and compiles);
    ``p[i]`` for a tuple/list or 1-d tensor of rates, and then a module that
    makes another number of dropout calls raises ``ValueError``.

    Modules with buffers (batch norm's running statistics) are refused: in a
    sweep they would be per-configuration state, which regfn does not carry
    yet. Use ``nn.GroupNorm`` or ``nn.LayerNorm`` (or batch norm with
    ``track_running_stats=False``).

    Args:
        module: an ``nn.Module`` without buffers, whose ``forward`` takes one
            input.
        init_fns: parameter name (as in ``state_dict``) -> ``fn(key, shape)``.

    Returns:
        ``Model(init, apply)``.

    Raises:
        ValueError: for a module with buffers, a parameter without a rule,
            an ``init_fns`` name the module does not have (or, at ``init``,
            a tensor of the wrong shape from an ``init_fns`` function).

    Examples:
        >>> import torch, regfn.random as rr
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        ...                           torch.nn.Linear(8, 1))
        >>> init, apply = from_module(net)
        >>> params = init(rr.key(0))
        >>> list(params) == list(net.state_dict())
        True
        >>> bool(params["0.weight"].abs().max() <= 0.5)  # uniform in [-1/sqrt(4), 1/sqrt(4))
        True
        >>> x = torch.ones(3, 4)
        >>> apply(params, x, key=rr.key(1), p=0.25, train=True).shape
        torch.Size([3, 1])
        >>> bool(torch.equal(apply(params, x), torch.func.functional_call(net.eval(), params, (x,))))
        True
        >>> from_module(torch.nn.BatchNorm1d(3))
        Traceback (most recent call last):
        ...
        ValueError: from_module: the module (BatchNorm1d) has buffers (running_mean, running_var, num_batches_tracked); ...
    """
    if not isinstance(module, tnn.Module):
        raise TypeError(f"{_WHERE}: module must be a torch.nn.Module, got {type(module).__name__}")
    _refuse_buffers(module)
    names = [name for name, _ in module.named_parameters()]
    draws = _draws(module, _check_init_fns(init_fns, names))

    def init(key: Tensor) -> dict[str, Tensor]:
        return {name: draw(fold_in(key, j)) for j, (name, draw) in enumerate(draws.items())}

    def apply(
        params: Mapping[str, Tensor],
        x: Tensor,
        *,
        key: Tensor | None = None,
        p: Rate | Sequence[Rate] | None = None,
        train: bool = False,
    ) -> Tensor:
        rates, count = _check_rates(p)
        out, calls = _routed_call(module, params, (x,), {}, key=key, train=train, where=_WHERE, rates=rates)
        if count is not None and calls != count:
            made = f"{calls} dropout call" + ("" if calls == 1 else "s")
            given = f"{count} rate was" if count == 1 else f"{count} rates were"
            raise ValueError(f"{_WHERE}: the module made {made} but {given} given (one per call, in call order)")
        return out

    return Model(init, apply)
