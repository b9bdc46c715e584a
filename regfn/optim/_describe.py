"""One description per named optimizer: its factory, arguments, ranges and defaults.

An :class:`OptimizerSpec` is everything outside :mod:`regfn.optim` needs to
know about a named optimizer: the factory, the numeric arguments a sweep may
vary (each an :class:`Arg` with its range), the factory's defaults (read from
its signature) and where a sweep starts elsewhere. :func:`register` records
it; the hyperparameter registry (:mod:`regfn._hparams`), :func:`regfn.sweep`,
the ``regfn`` command and the Triton engine all read :func:`optimizers`.
Arguments are named as a sweep names them: a factory's ``betas`` pair is the
two arguments ``beta1`` and ``beta2``.

Examples:
    >>> spec = optimizers()["adam"]
    >>> spec.arg_names
    ('lr', 'beta1', 'beta2', 'eps', 'weight_decay')
    >>> spec.factory_defaults()["beta2"], spec.defaults()["lr"]
    (0.999, 0.01)
    >>> optimizers()["sgd"].defaults()  # the one default of regfn.sweep and the regfn command
    {'lr': 0.1, 'momentum': 0.9, 'dampening': 0.0, 'weight_decay': 0.0}
    >>> ARGS["momentum"].describe()
    'momentum, >= 0'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._checks import interval_text
from ._base import Transform

__all__ = ["ARGS", "PAIRS", "Arg", "OptimizerSpec", "optimizers", "register", "unregister", "version"]


@dataclass(frozen=True)
class Arg:
    """One numeric optimizer argument, as factories check it and sweeps vary it.

    Attributes:
        name: its name in a configuration (``"beta1"``; torch.optim's otherwise).
        what: a short description for messages and ``--help``.
        label: how figures label an axis of it.
        low, high, low_open, high_open: the allowed range (torch.optim's).
        unused: the value a configuration holds when its optimizer does not
            take this argument (``None`` for an argument every optimizer takes).
    """

    name: str
    what: str
    label: str
    low: float | None = 0.0
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    unused: float | None = 0.0

    def bounds(self) -> dict[str, Any]:
        """The range as keyword arguments (``low``, ``high``, ``low_open``, ``high_open``)."""
        return {"low": self.low, "high": self.high, "low_open": self.low_open, "high_open": self.high_open}

    def describe(self) -> str:
        """What it is and its range: ``"momentum, >= 0"``."""
        return f"{self.what}, {interval_text(self.low, self.high, self.low_open, self.high_open)}"


_BETA: dict[str, Any] = {"high": 1.0, "high_open": True}
ARGS: dict[str, Arg] = {
    a.name: a
    for a in (
        Arg("lr", "the learning rate", "learning rate", unused=None),
        Arg("momentum", "momentum", "momentum"),
        Arg("dampening", "momentum dampening", "dampening", high=1.0),
        Arg("weight_decay", "the optimizer's weight decay", "weight decay"),
        Arg("beta1", "Adam's first-moment decay", "beta1", **_BETA, unused=0.9),
        Arg("beta2", "Adam's second-moment decay", "beta2", **_BETA, unused=0.999),
        Arg("eps", "the denominator's epsilon", "eps", unused=1e-8),
        Arg("alpha", "RMSprop's smoothing constant", "alpha", high=1.0, unused=0.99),
        Arg("lr_decay", "Adagrad's learning-rate decay", "lr decay"),
        Arg("initial_accumulator_value", "Adagrad's initial accumulator", "initial accumulator"),
    )
}
"""Every optimizer argument a registered optimizer takes, by name, in the order tables show them.

:func:`register` adds the new arguments of an optimizer (and refuses one whose
range differs from the argument of that name already here).
"""
_BUILT_IN = frozenset(ARGS)

PAIRS: Mapping[str, tuple[str, str]] = MappingProxyType({"betas": ("beta1", "beta2")})
"""Factory arguments that take a tuple of several arguments (``betas=(beta1, beta2)``)."""


@dataclass(frozen=True)
class OptimizerSpec:
    """The description of one named optimizer.

    Attributes:
        name: what ``regfn.sweep(..., optimizer=name)`` and ``--optimizer`` call it.
        factory: builds the :class:`~regfn.optim.Transform` from keyword
            arguments (``betas`` a pair; see :data:`PAIRS`).
        args: the numeric arguments a sweep may vary: names of :data:`ARGS`
            or new :class:`Arg` objects (registered with the optimizer).
        sweep_defaults: where a sweep starts elsewhere than the factory's
            default (torch.optim's): the one default of ``regfn.sweep`` and
            the ``regfn`` command.
        elementwise: whether each parameter element's update depends on that
            element's gradient, state and weight and on the arguments only (no
            norm or sum over a parameter, no parameter-specific treatment; a
            step counter is fine), for tensor arguments of any shape that
            broadcasts: then a sweep's eager step updates every configuration
            at once, each parameter as a matrix of one row per configuration
            and each argument as a column, without ``vmap``'s per-operation
            cost (the same numbers; docs/benchmarks/search.md). ``False``
            (every update vmapped) unless declared.
    """

    name: str
    factory: Callable[..., Transform]
    args: tuple[str | Arg, ...]
    sweep_defaults: Mapping[str, float] = field(default_factory=dict)
    elementwise: bool = False

    @property
    def arg_names(self) -> tuple[str, ...]:
        """The arguments' names, in the description's order."""
        return tuple(a if isinstance(a, str) else a.name for a in self.args)

    def factory_defaults(self) -> dict[str, Any]:
        """The factory's own defaults (its signature's), by argument name (``betas`` split)."""
        out: dict[str, Any] = {}
        for arg, p in inspect.signature(self.factory).parameters.items():
            if p.default is inspect.Parameter.empty:
                continue
            if arg in PAIRS:
                out.update(zip(PAIRS[arg], p.default, strict=True))
            else:
                out[arg] = p.default
        return out

    def defaults(self) -> dict[str, float]:
        """The value of every argument a configuration leaves out: the factory's, or the sweep's own."""
        own = self.factory_defaults()
        return {name: float(self.sweep_defaults.get(name, own[name])) for name in self.arg_names if name in own}

    def build(self, values: Mapping[str, Any]) -> Transform:
        """The optimizer built from argument values; the missing ones keep the factory's default.

        Examples:
            >>> opt = optimizers()["adam"].build({"lr": 1e-3, "beta2": 0.99})  # adam(1e-3, betas=(0.9, 0.99))
            >>> opt.init({})
            ({'step': tensor(0), 'exp_avg': {}, 'exp_avg_sq': {}}, {})
        """
        kwargs = dict(values)
        for arg, names in PAIRS.items():
            if any(n in kwargs for n in names):  # the signature is read only then: a sweep builds every step
                own = self.factory_defaults()
                kwargs[arg] = tuple(kwargs.pop(n, own.get(n)) for n in names)
        return self.factory(**kwargs)


_SPECS: dict[str, OptimizerSpec] = {}
_VERSION = [0]  # bumped by register and unregister, so that readers can cache what they derive


def register(spec: OptimizerSpec) -> OptimizerSpec:
    """Record ``spec`` so that sweeps, the command and the registry know its optimizer; returns it.

    Raises:
        TypeError: for a spec that is not an :class:`OptimizerSpec`.
        ValueError: for a name already registered, an argument that is
            neither in :data:`ARGS` nor an :class:`Arg`, an :class:`Arg` that
            differs from the one of that name in :data:`ARGS`, a sweep default
            for an argument it does not take, or no ``lr``.
    """
    if not isinstance(spec, OptimizerSpec):
        raise TypeError(f"register: spec must be an OptimizerSpec, got {type(spec).__name__}")
    where = f"register({spec.name!r})"
    if spec.name in _SPECS:
        raise ValueError(f"{where}: an optimizer named {spec.name!r} is registered already")
    new: dict[str, Arg] = {}
    for a in spec.args:
        if isinstance(a, Arg):
            if ARGS.get(a.name, a) != a:
                raise ValueError(f"{where}: argument {a.name!r} differs from the registered {ARGS[a.name]}")
            new[a.name] = a
        elif a not in ARGS:
            raise ValueError(f"{where}: unknown argument {a!r}; pass an Arg for a new one (known: {list(ARGS)})")
    if "lr" not in spec.arg_names:
        raise ValueError(f"{where}: an optimizer takes lr")
    extra = set(spec.sweep_defaults) - set(spec.arg_names)
    if extra:
        raise ValueError(f"{where}: sweep_defaults name arguments it does not take: {sorted(extra)}")
    ARGS.update(new)
    _SPECS[spec.name] = spec
    _VERSION[0] += 1
    return spec


def unregister(name: str) -> OptimizerSpec:
    """Forget the optimizer ``name`` (and the arguments only it took); returns its description.

    Raises:
        KeyError: for a name that is not registered.
    """
    spec = _SPECS.pop(name)
    used = {n for other in _SPECS.values() for n in other.arg_names} | _BUILT_IN
    for arg in spec.arg_names:
        if arg not in used:
            del ARGS[arg]
    _VERSION[0] += 1
    return spec


def version() -> int:
    """A number that changes whenever an optimizer is registered or unregistered."""
    return _VERSION[0]


def optimizers() -> Mapping[str, OptimizerSpec]:
    """Every registered optimizer's description, by name (a read-only view)."""
    return MappingProxyType(_SPECS)
