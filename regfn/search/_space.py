"""Search spaces: where one hyperparameter's values may fall, and how a unit number picks one.

A space maps a unit number ``u`` in ``[0, 1)`` to a value
(:meth:`Space.from_unit`), so random and Sobol sampling
(:func:`regfn.search.sample`) and the Optuna adapter share one description of
the space. The mapping runs in Python floats (``math.log``/``math.exp`` for
:class:`LogUniform`), element by element, so the same unit numbers give the
same values whatever the number of threads or the vector width of the CPU.

Every upper end is **exclusive**, as in ``torch.randint`` and
``numpy.random.Generator.integers``: ``uniform(0, 1)`` gives values in
``[0, 1)`` and ``randint(0, 4)`` gives 0, 1, 2 or 3.

Examples:
    >>> uniform(0.0, 0.5).from_unit([0.0, 0.5, 0.99])
    [0.0, 0.25, 0.495]
    >>> loguniform(1e-4, 1e-2).from_unit([0.0, 0.5])  # the middle of the log range
    [0.0001, 0.00100...]
    >>> randint(0, 4).from_unit([0.0, 0.3, 0.99]), choice([0.0, 0.25, 0.5]).from_unit([0.1, 0.9])
    ([0, 1, 3], [0.0, 0.5])
    >>> loguniform(0.0, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: regfn.search.loguniform: lo must be > 0, got 0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from torch import Tensor

from .._checks import check_int, is_real
from .._hparams import HPARAMS

__all__ = [
    "Choice",
    "LogUniform",
    "RandInt",
    "Space",
    "Uniform",
    "check_space",
    "choice",
    "loguniform",
    "randint",
    "uniform",
]


def _units(u: Tensor | Sequence[float], where: str) -> list[float]:
    """The unit numbers as Python floats (a tensor is flattened), each checked to lie in [0, 1)."""
    values = u.detach().flatten().tolist() if isinstance(u, Tensor) else [float(x) for x in u]
    for x in values:
        if not 0.0 <= x < 1.0:
            raise ValueError(f"{where}: unit numbers must lie in [0, 1), got {x!r}")
    return values


def _finite(value: Any, name: str, where: str) -> float:
    if not is_real(value):
        raise TypeError(f"{where}: {name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{where}: {name} must be finite, got {value!r}")
    return number


def _below(value: float, hi: float, lo: float) -> float:
    """``value`` kept below the exclusive end ``hi`` (rounding can land on it)."""
    return min(value, math.nextafter(hi, lo)) if value >= hi else value


class Space:
    """A set of values for one hyperparameter (the base of the four spaces).

    Subclasses say which values they take (:meth:`from_unit`) and the smallest
    and largest of them (:meth:`ends`), which :func:`regfn.search.sample`
    checks against the registry's range before drawing anything.
    """

    integer: bool = False
    """Whether every value is an int (the seed needs such a space)."""

    def from_unit(self, u: Tensor | Sequence[float]) -> list[Any]:
        """The value each unit number in ``[0, 1)`` picks, as a list of Python values."""
        raise NotImplementedError

    def ends(self) -> tuple[Any, Any]:
        """The smallest and the largest value the space can give."""
        raise NotImplementedError


@dataclass(frozen=True, repr=False)
class Uniform(Space):
    """Floats uniform in ``[lo, hi)``: ``lo + u * (hi - lo)``. Made by :func:`uniform`."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        where = "regfn.search.uniform"
        lo, hi = _finite(self.lo, "lo", where), _finite(self.hi, "hi", where)
        if not lo < hi:
            raise ValueError(f"{where}: lo must be < hi, got lo={self.lo!r}, hi={self.hi!r}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def __repr__(self) -> str:
        return f"uniform({self.lo!r}, {self.hi!r})"

    def from_unit(self, u: Tensor | Sequence[float]) -> list[Any]:
        """``lo + u * (hi - lo)`` for each unit number, kept below ``hi``."""
        span = self.hi - self.lo
        return [_below(self.lo + x * span, self.hi, self.lo) for x in _units(u, "regfn.search.Uniform.from_unit")]

    def ends(self) -> tuple[Any, Any]:
        """``lo`` and the largest float below ``hi``."""
        return self.lo, math.nextafter(self.hi, self.lo)


@dataclass(frozen=True, repr=False)
class LogUniform(Space):
    """Floats in ``[lo, hi)`` whose logarithm is uniform: ``exp(log lo + u * (log hi - log lo))``.

    Made by :func:`loguniform`; ``lo`` must be > 0.
    """

    lo: float
    hi: float

    def __post_init__(self) -> None:
        where = "regfn.search.loguniform"
        lo, hi = _finite(self.lo, "lo", where), _finite(self.hi, "hi", where)
        if not lo > 0:
            raise ValueError(f"{where}: lo must be > 0, got {self.lo!r}")
        if not lo < hi:
            raise ValueError(f"{where}: lo must be < hi, got lo={self.lo!r}, hi={self.hi!r}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def __repr__(self) -> str:
        return f"loguniform({self.lo!r}, {self.hi!r})"

    def from_unit(self, u: Tensor | Sequence[float]) -> list[Any]:
        """``exp(log lo + u * (log hi - log lo))`` for each unit number, kept in ``[lo, hi)``."""
        a, b = math.log(self.lo), math.log(self.hi)
        out = []
        for x in _units(u, "regfn.search.LogUniform.from_unit"):
            value = max(self.lo, math.exp(a + x * (b - a))) if x > 0 else self.lo
            out.append(_below(value, self.hi, self.lo))
        return out

    def ends(self) -> tuple[Any, Any]:
        """``lo`` and the largest float below ``hi``."""
        return self.lo, math.nextafter(self.hi, self.lo)


@dataclass(frozen=True, repr=False)
class RandInt(Space):
    """Ints uniform in ``lo, lo + 1, ..., hi - 1`` (``hi`` exclusive). Made by :func:`randint`.

    ``u`` picks ``lo + floor(u * (hi - lo))``, computed exactly (in rationals),
    so the ends of ``randint(-2**63, 2**63)`` are as likely as any other int.
    """

    lo: int
    hi: int
    integer = True

    def __post_init__(self) -> None:
        where = "regfn.search.randint"
        lo, hi = check_int(self.lo, "lo", where), check_int(self.hi, "hi", where)
        if not lo < hi:
            raise ValueError(f"{where}: lo must be < hi (hi is exclusive), got lo={lo}, hi={hi}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def __repr__(self) -> str:
        return f"randint({self.lo!r}, {self.hi!r})"

    def from_unit(self, u: Tensor | Sequence[float]) -> list[Any]:
        """``lo + floor(u * (hi - lo))`` for each unit number."""
        span = self.hi - self.lo
        return [self.lo + math.floor(Fraction(x) * span) for x in _units(u, "regfn.search.RandInt.from_unit")]

    def ends(self) -> tuple[Any, Any]:
        """``lo`` and ``hi - 1``."""
        return self.lo, self.hi - 1


@dataclass(frozen=True, repr=False)
class Choice(Space):
    """One of ``values``, each equally likely. Made by :func:`choice`.

    ``u`` picks ``values[floor(u * len(values))]``.
    """

    values: Sequence[Any]

    def __post_init__(self) -> None:
        where = "regfn.search.choice"
        values = self.values
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, range)):
            raise TypeError(
                f"{where}: values must be a list or tuple (an ordered sequence), got {type(values).__name__} {values!r}"
            )
        values = tuple(values)
        if not values:
            raise ValueError(f"{where}: values must not be empty")
        for i, v in enumerate(values):
            if v in values[:i]:
                raise ValueError(f"{where}: values must differ, got {v!r} twice in {list(values)!r}")
        object.__setattr__(self, "values", values)

    @property
    def integer(self) -> bool:  # type: ignore[override]
        """Whether every value is an int (not a bool)."""
        return all(isinstance(v, int) and not isinstance(v, bool) for v in self.values)

    def __repr__(self) -> str:
        return f"choice({list(self.values)!r})"

    def from_unit(self, u: Tensor | Sequence[float]) -> list[Any]:
        """``values[floor(u * len(values))]`` for each unit number."""
        k = len(self.values)
        return [self.values[min(k - 1, math.floor(x * k))] for x in _units(u, "regfn.search.Choice.from_unit")]

    def ends(self) -> tuple[Any, Any]:
        """The first and the last value (every value is checked by :func:`regfn.search.sample`)."""
        return self.values[0], self.values[-1]


def uniform(lo: float, hi: float) -> Uniform:
    """Floats uniform in ``[lo, hi)`` (``hi`` exclusive); ``lo < hi``, both finite.

    Examples:
        >>> uniform(0, 0.5)
        uniform(0.0, 0.5)
        >>> uniform(0.5, 0.5)
        Traceback (most recent call last):
        ...
        ValueError: regfn.search.uniform: lo must be < hi, got lo=0.5, hi=0.5
    """
    return Uniform(lo, hi)


def loguniform(lo: float, hi: float) -> LogUniform:
    """Floats in ``[lo, hi)`` uniform in log space (``hi`` exclusive); ``0 < lo < hi``, both finite.

    Learning rates and penalty strengths usually want this one: each decade
    between ``lo`` and ``hi`` is equally likely.

    Examples:
        >>> loguniform(1e-5, 1e-1)
        loguniform(1e-05, 0.1)
    """
    return LogUniform(lo, hi)


def randint(lo: int, hi: int) -> RandInt:
    """Ints in ``[lo, hi)``: ``lo`` up to ``hi - 1`` (``hi`` exclusive, as ``torch.randint``).

    Examples:
        >>> randint(0, 2**31)
        randint(0, 2147483648)
        >>> randint(0, 1.5)
        Traceback (most recent call last):
        ...
        TypeError: regfn.search.randint: hi must be an int, got float 1.5
    """
    return RandInt(lo, hi)


def choice(values: Sequence[Any]) -> Choice:
    """One of ``values`` (a non-empty list or tuple of distinct values), each equally likely.

    Examples:
        >>> choice([0.0, 0.25, 0.5])
        choice([0.0, 0.25, 0.5])
        >>> choice([])
        Traceback (most recent call last):
        ...
        ValueError: regfn.search.choice: values must not be empty
    """
    return Choice(values)


def check_space(space: Mapping[str, Any], where: str) -> tuple[dict[str, Space], dict[str, Any]]:
    """A space dict checked against the registry: ``(spaces, constants)``, both in registry order.

    Each key must be a registry name (:data:`regfn._hparams.HPARAMS`); each
    value is a :class:`Space`, whose values must all lie in the name's range
    (its ends are checked, and every value of a :class:`Choice`), or a
    constant, checked and normalised as :func:`regfn.sweep` would. An integer
    hyperparameter (the seed) needs a space of ints.

    Raises:
        ValueError: for no names, an unknown name, or a space or constant
            outside the name's range.
        TypeError: for a value of the wrong kind (a float space for the seed,
            a list where a :func:`choice` was meant).
    """
    if not isinstance(space, Mapping):
        raise TypeError(f"{where}: the space must be a dict of name -> space or value, got {type(space).__name__}")
    if not space:
        raise ValueError(f"{where}: give at least one hyperparameter, e.g. lr=regfn.search.loguniform(1e-4, 1e-1)")
    unknown = [name for name in space if name not in HPARAMS]
    if unknown:
        raise ValueError(f"{where}: unknown hyperparameter(s) {unknown}; the sweepable names are {list(HPARAMS)}")
    spaces: dict[str, Space] = {}
    constants: dict[str, Any] = {}
    for name, param in HPARAMS.items():
        if name not in space:
            continue
        value = space[name]
        if isinstance(value, Space):
            if param.integer and not value.integer:
                raise TypeError(f"{where}: {name} takes ints: give randint(lo, hi) or a choice of ints, got {value!r}")
            if isinstance(value, Choice):
                for v in value.values:
                    param.check(v, where)
            elif not all(param.contains(end) for end in value.ends()):
                raise ValueError(f"{where}: {name} must be {param.range_text()}, got {value!r}")
            spaces[name] = value
        elif isinstance(value, (list, tuple, range, set, frozenset)):
            raise TypeError(
                f"{where}: {name} got a {type(value).__name__}; to sample from these values, "
                f"give regfn.search.choice({list(value)!r})"
            )
        else:
            constants[name] = param.check(value, where)
    return spaces, constants
