"""argparse ``type=`` converters that several options share.

Each turns the option's text into its value or raises
``argparse.ArgumentTypeError``, which the parser prints as one line
``argument --x: <message>``. Converters for a single option live next to
that option (``--model`` in :mod:`._model`, ``--search`` in :mod:`._search`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["auto_or_positive_int", "fraction", "int_at_least", "nonneg_int", "positive_int", "value_type"]

_T = TypeVar("_T")


def value_type(fn: Callable[..., _T], *args: Any) -> Callable[[str], _T]:
    """An argparse ``type`` calling ``fn(text, *args)``; its ``ValueError`` becomes argparse's one-line error."""

    def convert(text: str) -> _T:
        try:
            return fn(text, *args)
        except ValueError as err:
            # argparse prefixes "argument --l2: "; drop the parser's own "--l2: ".
            message = re.sub(r"^--[\w-]+: ", "", str(err))
            raise argparse.ArgumentTypeError(message) from None

    convert.__name__ = getattr(fn, "__name__", "value")
    return convert


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= low``."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {n}")
        return n

    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def auto_or_positive_int(text: str) -> int | str:
    """``auto``, or an integer ``>= 1`` (``--chunk-size``, ``--threads``)."""
    return "auto" if text == "auto" else positive_int(text)


def fraction(text: str) -> float:
    """A number in ``[0, 1)``."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {v:g}")
    return v
