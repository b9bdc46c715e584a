"""Keyed sampling: ``n`` configurations from a space, random or Sobol, the same for the same key.

Examples:
    >>> import regfn
    >>> from regfn.search import choice, loguniform, randint, sample
    >>> configs = sample(regfn.random.key(0), 4, lr=loguniform(1e-3, 1e-1), p=choice([0.0, 0.5]),
    ...                  seed=randint(0, 1000))
    >>> len(configs), sorted(configs[0]), type(configs[0]["seed"]).__name__
    (4, ['lr', 'p', 'seed'], 'int')
    >>> configs == sample(regfn.random.key(0), 4, lr=loguniform(1e-3, 1e-1), p=choice([0.0, 0.5]),
    ...                   seed=randint(0, 1000))
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import check_int
from .._hparams import HPARAMS
from ..random import _check_key, bits, uniform
from ._space import check_space

__all__ = ["METHODS", "sample", "sobol_seed", "unit_numbers"]

METHODS = ("random", "sobol")
"""The sampling methods :func:`sample` takes."""

_WHERE = "regfn.search.sample"


def sobol_seed(key: Tensor) -> int:
    """The seed :func:`sample` scrambles the Sobol sequence with: ``int(regfn.random.bits(key, ()))``.

    Examples:
        >>> import regfn
        >>> sobol_seed(regfn.random.key(0))
        4070199207
    """
    return int(bits(_check_key(key, "regfn.search.sobol_seed"), ()))


def unit_numbers(key: Tensor, n: int, d: int, method: str = "random") -> Tensor:
    """The ``(n, d)`` float64 unit numbers in ``[0, 1)`` behind :func:`sample`.

    ``"random"``: ``regfn.random.uniform(key, (n, d), dtype=torch.float64)``
    (threefry, as ``jax.random.uniform`` with 64-bit floats). ``"sobol"``: the
    first ``n`` points of ``torch.quasirandom.SobolEngine(d, scramble=True,
    seed=sobol_seed(key))``, drawn in float64. Neither touches torch's global
    random state.

    Examples:
        >>> import regfn
        >>> unit_numbers(regfn.random.key(0), 2, 3).shape
        torch.Size([2, 3])
    """
    k = _check_key(key, _WHERE)
    check_int(n, "n", _WHERE, low=1)
    check_int(d, "d", _WHERE, low=0)
    if method not in METHODS:
        raise ValueError(f"{_WHERE}: method must be one of {list(METHODS)}, got {method!r}")
    if d == 0:
        return torch.zeros(n, 0, dtype=torch.float64)
    if method == "random":
        return uniform(k, (n, d), dtype=torch.float64)
    if n > 2**30:
        raise ValueError(f"{_WHERE}: a Sobol sequence has at most 2**30 points, got n={n}")
    engine = torch.quasirandom.SobolEngine(d, scramble=True, seed=sobol_seed(k))
    return engine.draw(n, dtype=torch.float64)


def sample(key: Tensor, n: int, method: str = "random", **space: Any) -> list[dict[str, Any]]:
    """``n`` configurations drawn from ``space``; the same key gives the same list, bit for bit.

    Each keyword is a sweepable hyperparameter (a name of
    :data:`regfn._hparams.HPARAMS`, the seed included) set to a space
    (:func:`~regfn.search.uniform`, :func:`~regfn.search.loguniform`,
    :func:`~regfn.search.choice`, :func:`~regfn.search.randint`) or to a
    constant. The list goes straight into :func:`regfn.sweep`.

    How the numbers are drawn: one column of unit numbers per space, the
    spaces' names taken in **alphabetical order** (so the order of the
    keywords does not matter):

    - ``method="random"``: ``regfn.random.uniform(key, (n, d), dtype=torch.float64)``;
    - ``method="sobol"``: ``torch.quasirandom.SobolEngine(d, scramble=True,
      seed=int(regfn.random.bits(key, ())))``, then ``draw(n,
      dtype=torch.float64)``: a scrambled low-discrepancy sequence, which
      covers the space more evenly than random points (best with ``n`` a
      power of two).

    Each space maps its column to values (:meth:`~regfn.search.Space.from_unit`).
    Constants take no column. Same key, same configurations, on any machine.

    Args:
        key: a key (:func:`regfn.random.key`).
        n: how many configurations (>= 1).
        method: ``"random"`` or ``"sobol"``.
        **space: name -> space or constant.

    Returns:
        ``n`` dicts of plain Python values (floats; ints for the seed), the
        names in registry order, as :func:`regfn.sweep` checks them.

    Raises:
        ValueError: for an unknown name (the message lists the registry's),
            a space or constant outside the name's range (``p=uniform(0, 2)``),
            ``n < 1`` or an unknown method.
        TypeError: for a key that is not a key, a float space for the seed, a
            list where :func:`~regfn.search.choice` was meant.

    Examples:
        >>> import regfn
        >>> from regfn.search import loguniform, uniform
        >>> rows = sample(regfn.random.key(1), 3, method="sobol", l2=loguniform(1e-6, 1e-2), p=uniform(0, 0.5), seed=0)
        >>> [sorted(row) for row in rows] == [["l2", "p", "seed"]] * 3, all(0 <= row["p"] < 0.5 for row in rows)
        (True, True)
        >>> sample(regfn.random.key(1), 3, p=uniform(0, 2))
        Traceback (most recent call last):
        ...
        ValueError: regfn.search.sample: p must be in [0, 1], got uniform(0.0, 2.0)
    """
    k = _check_key(key, _WHERE)
    n = check_int(n, "n", _WHERE, low=1)
    if method not in METHODS:
        raise ValueError(f"{_WHERE}: method must be one of {list(METHODS)}, got {method!r}")
    spaces, constants = check_space(space, _WHERE)
    names = sorted(spaces)
    units = unit_numbers(k, n, len(names), method)
    columns = {name: spaces[name].from_unit(units[:, j]) for j, name in enumerate(names)}
    rows = []
    for i in range(n):
        row: dict[str, Any] = {}
        for name, param in HPARAMS.items():
            if name in constants:
                row[name] = constants[name]
            elif name in columns:
                row[name] = param.check(columns[name][i], _WHERE)
        rows.append(row)
    return rows
