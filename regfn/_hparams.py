"""The hyperparameter registry: every name a sweep can vary, declared once.

Each :class:`HParam` says what a configuration may set: its default, its
allowed range, where it goes (an optimizer argument, a penalty, the model,
the run), how the command line spells it and how figures label it. The sweep
(:func:`regfn.sweep`), the ``regfn`` command, the optimizer factories' checks,
the figures and the Triton engine all read this table, so they accept and
reject exactly the same values. The optimizer arguments' entries come from the
optimizers' descriptions (:func:`regfn.optim.optimizers`: names, ranges,
defaults); every other entry is declared here. Adding a sweepable
hyperparameter is one entry here plus the code that uses it.

Examples:
    >>> HPARAMS["p"].check(0.5, "regfn.sweep")
    0.5
    >>> HPARAMS["lr"].describe()
    'the learning rate, >= 0'
    >>> HPARAMS["momentum"].check(-0.1, "regfn.sweep")
    Traceback (most recent call last):
    ...
    ValueError: regfn.sweep: momentum must be >= 0, got -0.1
    >>> optimizer_defaults("adagrad")["eps"], optimizer_defaults("adam")["eps"]
    (1e-10, 1e-08)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ._checks import check_int, check_real, in_interval, interval_text
from .optim import Arg, optimizers
from .optim._describe import ARGS, version

__all__ = [
    "HPARAMS",
    "LAYER_RATE_NAMES",
    "MAX_LAYER_RATES",
    "OPTIMIZER_ARGS",
    "PENALTY_NAMES",
    "HParam",
    "bounds",
    "defaults",
    "optimizer_defaults",
    "user_hparams",
]

Target = Literal["optimizer", "penalty", "model", "loss", "run", "user"]
MAX_LAYER_RATES = 8
"""Per-layer dropout rates ``p1`` .. ``p8`` are sweepable (the i-th dropout call uses ``p<i>``)."""


@dataclass(frozen=True)
class HParam:
    """One sweepable hyperparameter.

    Attributes:
        name: the key in a configuration dict (``"l2"``).
        default: the value a configuration gets when it does not say.
        low, high: the ends of the allowed range (``None``: no end).
        low_open, high_open: whether that end is excluded.
        target: where it goes: ``"optimizer"`` (an argument of the
            optimizer factories), ``"penalty"``, ``"model"`` (dropout
            rates), ``"loss"`` (label smoothing), ``"run"`` (the seed) or
            ``"user"`` (a name a sweep's caller declares, handed to their
            loss and model).
        what: a short description for messages and ``--help``.
        label: how figures label an axis of it.
        integer: whether values are integers (the seed).
        column: always a column of a sweep's results (the others are
            columns only when a configuration sets them).
        default_from: a configuration that does not set this name takes the
            value of that name instead of ``default`` (``p1`` takes ``p``).
    """

    name: str
    default: float | int | None
    low: float | None
    high: float | None
    target: Target
    what: str
    label: str
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    column: bool = False
    default_from: str | None = None

    @property
    def cli(self) -> str:
        """The command-line option: ``--weight-decay``."""
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        """The allowed range in words: ``">= 0"``, ``"in [0, 1)"``."""
        return interval_text(self.low, self.high, self.low_open, self.high_open)

    def describe(self) -> str:
        """What it is and its range: ``"the learning rate, >= 0"``."""
        return f"{self.what}, {self.range_text()}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` is allowed (range only; types are :meth:`check`'s job)."""
        return in_interval(value, self.low, self.high, self.low_open, self.high_open)

    def check(self, value: Any, where: str) -> float | int:
        """``value`` validated and normalised (a float, or an int for the seed).

        One-element tensors are read with ``.item()``.

        Raises:
            TypeError: for a value that is not a number (an int for the seed).
            ValueError: for a value outside the range.
        """
        if hasattr(value, "numel") and hasattr(value, "item") and value.numel() == 1:
            value = value.item()
        if self.integer:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            low = None if self.low is None else int(self.low)
            high = None if self.high is None else int(self.high) - (1 if self.high_open else 0)
            return check_int(value, self.name, where, low=low, high=high)
        return check_real(
            value,
            self.name,
            where,
            low=self.low,
            high=self.high,
            low_open=self.low_open,
            high_open=self.high_open,
        )


def _entries(*params: HParam) -> dict[str, HParam]:
    return {p.name: p for p in params}


_INF = math.inf
_STRENGTH: dict[str, Any] = {"high_open": True, "column": True}
_STATIC: Mapping[str, HParam] = _entries(
    # penalties added to the loss
    # (finite: an infinite strength is refused, as regfn.penalties refuses it)
    HParam("l1", 0.0, 0.0, _INF, "penalty", "an L1 strength (s * sum|w|)", "L1 strength (l1 · Σ|w|)", **_STRENGTH),
    HParam("l2", 0.0, 0.0, _INF, "penalty", "an L2 strength (s/2 * sum w^2)", "L2 strength (l2/2 · Σw²)", **_STRENGTH),
    HParam(
        "norm2", 0.0, 0.0, _INF, "penalty", "the tutorial's s * sum_p ||p||_2", "norm2 strength (Σ‖W‖₂)", **_STRENGTH
    ),
    # the loss
    HParam("label_smoothing", 0.0, 0.0, 1.0, "loss", "cross-entropy label smoothing", "label smoothing"),
    # the model: one rate for every dropout call, or one per call (p1 for the first, ...)
    HParam("p", 0.0, 0.0, 1.0, "model", "a dropout rate", "dropout rate p", column=True),
    *(
        HParam(
            f"p{i}",
            0.0,
            0.0,
            1.0,
            "model",
            f"the dropout rate of dropout call {i}",
            f"dropout rate p{i}",
            default_from="p",
        )
        for i in range(1, MAX_LAYER_RATES + 1)
    ),
    # the run
    HParam("seed", 0, -(2**63), 2**63, "run", "a run seed", "seed", high_open=True, integer=True, column=True),
)
# The optimizer arguments that are always columns of a sweep's results (the others are when set).
_OPTIMIZER_COLUMNS = frozenset({"lr", "momentum", "weight_decay"})


def _optimizer_entry(arg: Arg) -> HParam:
    return HParam(
        arg.name,
        arg.unused,
        arg.low,
        arg.high,
        "optimizer",
        arg.what,
        arg.label,
        low_open=arg.low_open,
        high_open=arg.high_open,
        column=arg.name in _OPTIMIZER_COLUMNS,
    )


class _Registry(Mapping[str, HParam]):
    """The optimizers' arguments (read from :func:`regfn.optim.optimizers`) followed by the other names.

    A view, so that an optimizer registered later (with arguments of its own) is a sweep's too.
    """

    def __init__(self) -> None:
        self._seen = -1
        self._table: dict[str, HParam] = {}

    def _current(self) -> dict[str, HParam]:
        if self._seen != version():
            self._table = {**{n: _optimizer_entry(a) for n, a in ARGS.items()}, **_STATIC}
            self._seen = version()
        return self._table

    def __getitem__(self, name: str) -> HParam:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __contains__(self, name: object) -> bool:
        return name in self._current()


HPARAMS: Mapping[str, HParam] = _Registry()
"""Every sweepable hyperparameter, by name, in the order tables show them."""


class _OptimizerArgs(Mapping[str, tuple[str, ...]]):
    """The optimizers a sweep can use and the registry names each one takes (a view of their descriptions)."""

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return optimizers()[name].arg_names

    def __iter__(self) -> Iterator[str]:
        return iter(optimizers())

    def __len__(self) -> int:
        return len(optimizers())


OPTIMIZER_ARGS: Mapping[str, tuple[str, ...]] = _OptimizerArgs()
PENALTY_NAMES: tuple[str, ...] = tuple(n for n, p in HPARAMS.items() if p.target == "penalty")


LAYER_RATE_NAMES: tuple[str, ...] = tuple(f"p{i}" for i in range(1, MAX_LAYER_RATES + 1))


RESERVED: Mapping[str, str] = {"fold": "a cross-validated sweep's rows read their fold as hp['fold']"}
"""Names the sweep puts in ``hp`` itself, which callers may not declare."""


def user_hparams(declared: Mapping[str, Any] | None) -> dict[str, HParam]:
    """Entries for names a sweep's caller declares: ``{"temperature": (low, high)}`` or ``(low, high, default)``.

    ``None`` at an end means no end; a finite end is included. Without a
    default, every configuration must set the name.

    Raises:
        TypeError, ValueError: for a name that is not an identifier, one the
            registry already has or reserves (:data:`RESERVED`), or a range that is not ``(low, high[, default])``.

    Examples:
        >>> user_hparams({"temperature": (0.0, None, 1.0)})["temperature"].describe()
        'temperature (declared by the caller), >= 0'
    """
    out: dict[str, HParam] = {}
    for name, spec in (declared or {}).items():
        where = "regfn.sweep: hparams"
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{where}: names must be identifiers, got {name!r}")
        if name in HPARAMS:
            raise ValueError(f"{where}: {name!r} is a built-in hyperparameter; declare only names of your own")
        if name in RESERVED:
            raise ValueError(f"{where}: {name!r} is reserved ({RESERVED[name]}); choose another name")
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise TypeError(f"{where}[{name!r}] must be (low, high) or (low, high, default), got {spec!r}")
        low, high = (None if v is None else check_real(v, f"hparams[{name!r}] end", "regfn.sweep") for v in spec[:2])
        if low is not None and high is not None and low > high:
            raise ValueError(f"{where}[{name!r}]: low must be <= high, got ({low}, {high})")
        entry = HParam(name, None, low, high, "user", f"{name} (declared by the caller)", name)
        if len(spec) == 3:
            entry = replace(entry, default=entry.check(spec[2], f"{where}[{name!r}] default"))
        out[name] = entry
    return out


def optimizer_defaults(optimizer: str) -> dict[str, float | int]:
    """Every registry name with the value a configuration gets under ``optimizer``.

    The arguments ``optimizer`` takes get its description's defaults
    (:meth:`regfn.optim.OptimizerSpec.defaults`: torch.optim's, except where a
    sweep starts elsewhere, such as SGD's lr 0.1 and momentum 0.9); the others
    hold the registry's value, which the optimizer never reads.
    """
    out = defaults()
    out.update(optimizers()[optimizer].defaults())
    return out


def defaults() -> dict[str, float | int]:
    """Every registry name with its default (``p1`` .. ``p8`` too: 0, though a sweep gives them ``p``)."""
    return {name: p.default for name, p in HPARAMS.items() if p.default is not None}


def bounds(name: str) -> dict[str, Any]:
    """The range of ``name`` as keyword arguments (``low``, ``high``, ``low_open``, ``high_open``)."""
    p = HPARAMS[name]
    return {"low": p.low, "high": p.high, "low_open": p.low_open, "high_open": p.high_open}
