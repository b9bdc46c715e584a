"""The command line's value syntax: :func:`parse_values`, :func:`parse_seeds`, :func:`parse_hidden`.

Value lists are comma-separated numbers, ``LOW:HIGH:N`` log ranges and
``lin:LOW:HIGH:N`` evenly spaced ranges; ``log:LOW:HIGH`` and ``lin:LOW:HIGH``
(no count) are search ranges, for ``regfn sweep --search``
(:func:`parse_search_values`). A hyperparameter's values are
checked against its range in the registry (:mod:`regfn._hparams`), the same
check :func:`regfn.sweep` makes. Bad input raises ``ValueError`` with a
message that starts with the option (``--l2: ...``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._hparams import HPARAMS
from ..search._space import Space, check_space, loguniform, uniform

__all__ = ["SearchRange", "parse_hidden", "parse_search_values", "parse_seeds", "parse_values"]


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what}: {text!r} is not a finite number")
    return value


def _count(text: str, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{what}: the number of values {text!r} is not an integer") from None
    if n < 1:
        raise ValueError(f"{what}: empty range ({n} values); N must be >= 1")
    return n


def _tidy(v: float) -> float:
    return float(f"{v:.12g}")  # 1e-3 rather than 0.0010000000000000002


def _range(item: str, what: str) -> list[float]:
    parts = item.split(":")
    linear = parts[0].strip().lower() == "lin"
    if parts[0].strip().lower() in ("lin", "log"):
        parts = parts[1:]
    if len(parts) != 3:
        raise ValueError(f"{what}: bad range {item!r}; use LOW:HIGH:N (log-spaced) or lin:LOW:HIGH:N (evenly spaced)")
    lo, hi = _number(parts[0].strip(), what), _number(parts[1].strip(), what)
    n = _count(parts[2].strip(), what)
    if n == 1:
        return [lo]
    if linear:
        return [_tidy(lo + (hi - lo) * i / (n - 1)) for i in range(n)]
    if lo <= 0 or hi <= 0:
        raise ValueError(
            f"{what}: log range {item!r} needs ends > 0; use lin:{item} or add 0 as its own item, e.g. 0,1e-4:1e-1:4"
        )
    a, b = math.log10(lo), math.log10(hi)
    values = [_tidy(10 ** (a + (b - a) * i / (n - 1))) for i in range(n)]
    values[0], values[-1] = lo, hi
    return values


def parse_values(text: str, name: str = "value") -> list[float]:
    """Parse a value list: comma-separated numbers, ``LOW:HIGH:N`` log ranges and ``lin:LOW:HIGH:N`` ranges.

    Duplicates are dropped (first occurrence kept). When ``name`` is a
    hyperparameter regfn knows (``l1``, ``l2``, ``p``, ...) the values are
    checked against its allowed range.

    Raises:
        ValueError: for bad syntax, an empty list or range, or a value out of range.

    Examples:
        >>> parse_values("0,1e-3:1e-1:3", "l2")
        [0.0, 0.001, 0.01, 0.1]
        >>> parse_values("lin:0:0.5:6", "p")
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    """
    what = f"--{name.replace('_', '-')}"
    items = [s.strip() for s in str(text).split(",")]
    if not any(items):
        raise ValueError(f"{what}: empty list; give values like 1e-3,1e-2 or a range like 1e-4:1e-1:4")
    values: list[float] = []
    for item in items:
        if not item:
            continue
        values.extend(_range(item, what) if ":" in item else [_number(item, what)])
    out = list(dict.fromkeys(values))
    if name in HPARAMS:
        hp = HPARAMS[name]
        for v in out:
            if not hp.contains(v):
                raise ValueError(f"{what}: {v:g} is out of range ({name} is {hp.describe()})")
    return out


@dataclass(frozen=True)
class SearchRange:
    """A search range as typed (``log:1e-6:1e-1``) and its space (``loguniform(1e-06, 0.1)``)."""

    text: str
    space: Space

    def ends(self) -> tuple[float, float]:
        """The ends as typed: LOW and HIGH."""
        lo, hi = self.space.lo, self.space.hi  # type: ignore[attr-defined]
        return lo, hi


def _search_range(text: str, name: str) -> SearchRange | None:
    """``log:LOW:HIGH`` or ``lin:LOW:HIGH`` as a :class:`SearchRange`; ``None`` for anything else."""
    parts = [t.strip() for t in text.split(":")]
    if len(parts) != 3 or parts[0].lower() not in ("log", "lin"):
        return None
    what = f"--{name.replace('_', '-')}"
    lo, hi = _number(parts[1], what), _number(parts[2], what)
    if not lo < hi:
        raise ValueError(f"{what}: search range {text!r} needs LOW < HIGH")
    if parts[0].lower() == "log" and lo <= 0:
        raise ValueError(f"{what}: log range {text!r} needs LOW > 0; use lin:{lo:g}:{hi:g}")
    space = loguniform(lo, hi) if parts[0].lower() == "log" else uniform(lo, hi)
    if name in HPARAMS:
        try:
            check_space({name: space}, what)
        except ValueError:
            hp = HPARAMS[name]
            raise ValueError(f"{what}: {text} reaches out of range ({name} is {hp.describe()})") from None
    return SearchRange(text, space)


def parse_search_values(text: str, name: str = "value") -> list[float] | SearchRange:
    """A value list (:func:`parse_values`) or, for ``log:LOW:HIGH`` / ``lin:LOW:HIGH``, a search range.

    A search range (two ends, no count) is a :class:`SearchRange` holding a
    :func:`~regfn.search.loguniform` or :func:`~regfn.search.uniform` space
    (HIGH excluded); ``regfn sweep`` takes it only with ``--search``. It must
    be the option's only item, and its ends must lie in the hyperparameter's range.

    Examples:
        >>> parse_search_values("log:1e-6:1e-1", "l2").space
        loguniform(1e-06, 0.1)
        >>> parse_search_values("lin:0:0.5", "p").space, parse_search_values("0,0.5", "p")
        (uniform(0.0, 0.5), [0.0, 0.5])
    """
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    ranges = [r for r in (_search_range(item, name) for item in items) if r is not None]
    if ranges and len(items) > 1:
        what = f"--{name.replace('_', '-')}"
        raise ValueError(f"{what}: a search range ({ranges[0].text}) must be the option's only value")
    return ranges[0] if ranges else parse_values(text, name)


def parse_seeds(text: str) -> list[int]:
    """Parse ``--seeds``: ``N`` means seeds ``0..N-1``; ``a,b,c`` lists them; ``A:B`` is ``range(A, B)``.

    Examples:
        >>> parse_seeds("3"), parse_seeds("0,5,9"), parse_seeds("7,"), parse_seeds("10:12")
        ([0, 1, 2], [0, 5, 9], [7], [10, 11])
    """
    text = str(text).strip()

    def as_int(s: str) -> int:
        try:
            return int(s.strip())
        except ValueError:
            raise ValueError(f"--seeds: {s.strip()!r} is not an integer") from None

    if not text:
        raise ValueError("--seeds: empty; give a count (4 = seeds 0..3), a list (0,5,9) or a range (10:14)")
    if "," in text:
        seeds = [as_int(s) for s in text.split(",") if s.strip()]
    elif ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"--seeds: bad range {text!r}; use START:STOP (STOP excluded), e.g. 10:14")
        seeds = list(range(as_int(parts[0]), as_int(parts[1])))
    else:
        n = as_int(text)
        if n < 1:
            raise ValueError(f"--seeds: a count must be >= 1, got {n}; for the single seed {n} write {n},")
        seeds = list(range(n))
    if not seeds:
        raise ValueError(f"--seeds: {text!r} gives no seeds")
    return list(dict.fromkeys(seeds))


def parse_hidden(text: str) -> tuple[int, ...]:
    """Parse ``--hidden``: hidden layer widths ``6,4``; ``none`` (or empty) for a linear model.

    Examples:
        >>> parse_hidden("6,4"), parse_hidden("none")
        ((6, 4), ())
    """
    text = str(text).strip()
    if text.lower() in ("", "none", "0"):
        return ()
    sizes = []
    for s in text.split(","):
        try:
            width = int(s.strip())
        except ValueError:
            raise ValueError(f"--hidden: {s.strip()!r} is not an integer width; use e.g. 6,4") from None
        if width < 1:
            raise ValueError(f"--hidden: widths must be >= 1, got {width}")
        sizes.append(width)
    return tuple(sizes)
