"""Argument checks shared by every module: one validator per kind, one message shape.

Every message reads ``"<where>: <name> must be <what>, got <value>"``. A value
of the wrong type raises ``TypeError``; a value of the right type outside its
range raises ``ValueError``. ``where`` names the public function that was
called (``"regfn.train"``, ``"regfn.data.quadrants"``, ...), so the user knows
which call to fix.

Examples:
    >>> check_int(3, "epochs", "regfn.train", low=1)
    3
    >>> check_int(0, "epochs", "regfn.train", low=1)
    Traceback (most recent call last):
    ...
    ValueError: regfn.train: epochs must be an int >= 1, got 0
    >>> check_real(1.5, "p", "regfn.sweep", low=0.0, high=1.0)
    Traceback (most recent call last):
    ...
    ValueError: regfn.sweep: p must be in [0, 1], got 1.5
"""

from __future__ import annotations

import math
import numbers
from typing import Any, TypeGuard

__all__ = ["check_int", "check_real", "in_interval", "interval_text", "is_int", "is_real"]


def is_int(value: Any) -> TypeGuard[numbers.Integral]:
    """True for a Python or NumPy integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for a Python or NumPy real number that is not a bool (ints count)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _num(v: float) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def interval_text(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """The allowed range in words: ``">= 1"``, ``"> 0"``, ``"in [0, 1)"``, ``"any number"``.

    An infinite end counts as no end; an open infinite end means "finite".

    Examples:
        >>> interval_text(0.0, 1.0, high_open=True), interval_text(0.0, None, low_open=True)
        ('in [0, 1)', '> 0')
        >>> interval_text(0.0, math.inf, high_open=True)
        '>= 0 and finite'
    """
    finite = (low == -math.inf and low_open) or (high == math.inf and high_open)
    low = None if low is not None and math.isinf(low) else low
    high = None if high is not None and math.isinf(high) else high
    if finite:
        return interval_text(low, high, low_open, high_open) + " and finite"
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_num(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_num(high)}"
    return "any number"


def in_interval(
    value: float, low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> bool:
    """Whether ``value`` lies in the interval (NaN never does)."""
    if value != value:  # NaN
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def check_int(value: Any, name: str, where: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (Python or NumPy, not a bool) in ``[low, high]``; returns it as an int.

    Raises:
        TypeError: for anything that is not an integer (floats included).
        ValueError: for an integer outside the range.
    """
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if not in_interval(value, low, high):
        raise ValueError(f"{where}: {name} must be an int {interval_text(low, high)}, got {value}")
    return value


def check_real(
    value: Any,
    name: str,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A real number (not a bool) in the given interval; returns it as a float.

    Raises:
        TypeError: for anything that is not a real number.
        ValueError: for NaN or a number outside the interval.
    """
    if not is_real(value):
        raise TypeError(f"{where}: {name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not in_interval(number, low, high, low_open, high_open):
        raise ValueError(f"{where}: {name} must be {interval_text(low, high, low_open, high_open)}, got {value!r}")
    return number
