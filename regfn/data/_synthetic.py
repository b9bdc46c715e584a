"""Synthetic data sets drawn from a key: :func:`quadrants`, :func:`synthetic_diabetes`, :func:`sparse_regression`."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from .. import random as rr
from .._checks import check_int
from ..random import _check_key
from ._dataset import Dataset, _check_float_dtype

__all__ = ["quadrants", "sparse_regression", "synthetic_diabetes"]


def quadrants(key: Tensor, n: int = 200, *, dtype: torch.dtype = torch.float32) -> Dataset:
    """The tutorial's synthetic classification data: same-sign quadrants.

    ``x = regfn.random.normal(key, (n, 2))`` and ``y = 1`` where both
    coordinates have the same sign (quadrants I and III), else 0. Binary task.

    Args:
        key: a :mod:`regfn.random` key.
        n: the number of points (>= 1).
        dtype: floating dtype of ``x`` and ``y``.

    Returns:
        A :class:`Dataset` with ``x`` of shape ``(n, 2)`` and ``y`` of shape ``(n, 1)``.

    Examples:
        >>> import regfn.random as rr
        >>> d = quadrants(rr.key(0), 200)
        >>> d.x.shape, d.y.shape, d.task
        (torch.Size([200, 2]), torch.Size([200, 1]), 'binary')
        >>> bool(((d.x[:, 0] * d.x[:, 1] > 0) == (d.y[:, 0] == 1)).all())
        True
    """
    n = check_int(n, "n", "regfn.data.quadrants", low=1)
    dtype = _check_float_dtype(dtype, "quadrants")
    x = rr.normal(key, (n, 2), dtype)
    same_sign = torch.sign(x[:, 0]) * torch.sign(x[:, 1]) > 0  # no underflow in low precision
    return Dataset(x=x, y=same_sign.to(dtype).reshape(n, 1), feature_names=("x0", "x1"), target_name="y", task="binary")


_PIMA_COLUMNS = (
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
)
_PIMA_SCALES = ((3.8, 3.4), (121, 32), (69, 19), (21, 16), (80, 115), (32, 7.9), (0.47, 0.33), (33, 12))  # ~mean, std
_PIMA_WEIGHTS = (0.4, 1.2, 0.1, 0.1, 0.2, 0.8, 0.4, 0.5)


def synthetic_diabetes(key: Tensor, n: int = 768, *, dtype: torch.dtype = torch.float32) -> Dataset:
    """A stand-in for the tutorial's Pima diabetes table, generated from a key.

    Same shape (``n`` x 8), column names and rough per-column scales as the
    real table, with a noisy logistic label (about 35% positive). It lets the
    examples and benchmarks run anywhere; for the real data pass its CSV to
    :func:`load_csv`.

    Args:
        key: a :mod:`regfn.random` key.
        n: number of rows (>= 2).
        dtype: floating dtype of ``x`` and ``y``.

    Returns:
        A binary :class:`Dataset` whose target is named ``Outcome``.

    Examples:
        >>> import regfn.random as rr
        >>> d = synthetic_diabetes(rr.key(0))
        >>> d.x.shape, d.feature_names[1], d.task
        (torch.Size([768, 8]), 'Glucose', 'binary')
    """
    n = check_int(n, "n", "regfn.data.synthetic_diabetes", low=2)
    kx, kw, kn = rr.split(_check_key(key, "regfn.data.synthetic_diabetes"), 3)
    z = rr.normal(kx, (n, 8))
    w = rr.normal(kw, (8,)) * torch.tensor(_PIMA_WEIGHTS, device=z.device)
    logits = z @ w - 0.7 + 1.2 * rr.normal(kn, (n,))
    mean, std = torch.tensor(_PIMA_SCALES, device=z.device).T
    x = (mean + std * z).to(_check_float_dtype(dtype, "synthetic_diabetes"))
    return Dataset(x=x, y=(logits > 0).to(x.dtype), feature_names=_PIMA_COLUMNS, target_name="Outcome", task="binary")


def sparse_regression(
    key: Tensor,
    n: int = 200,
    d: int = 10,
    *,
    n_informative: int = 3,
    noise: float = 0.1,
    dtype: torch.dtype = torch.float32,
) -> tuple[Dataset, Tensor]:
    """Linear regression data with a sparse true weight vector (the tutorial's ``Linear(10, 1)``).

    ``x ~ N(0, 1)`` of shape ``(n, d)``; the true weights ``w`` (shape
    ``(d,)``, no bias) are zero except at ``n_informative`` positions drawn
    from the key, where they are ``±U[1, 3]`` (random sign, magnitude at
    least 1); ``y = x @ w + noise * N(0, 1)``. An L1 penalty should recover
    the support ``w != 0``.

    Args:
        key: a :mod:`regfn.random` key.
        n: the number of examples (>= 1).
        d: the number of features (>= 1).
        n_informative: how many weights are non-zero (0 to ``d``).
        noise: standard deviation of the additive Gaussian noise (>= 0).
        dtype: floating dtype of ``x``, ``y`` and ``w``.

    Returns:
        ``(data, w)``: a regression :class:`Dataset` (``y`` of shape
        ``(n, 1)``) and the true weights of shape ``(d,)``.

    Examples:
        >>> import regfn.random as rr
        >>> data, w = sparse_regression(rr.key(0), 200, 10, n_informative=3)
        >>> data.x.shape, data.y.shape, w.shape, int((w != 0).sum()), data.task
        (torch.Size([200, 10]), torch.Size([200, 1]), torch.Size([10]), 3, 'regression')
        >>> bool((w[w != 0].abs() >= 1).all())
        True
    """
    n = check_int(n, "n", "regfn.data.sparse_regression", low=1)
    d = check_int(d, "d", "regfn.data.sparse_regression", low=1)
    k = check_int(n_informative, "n_informative", "regfn.data.sparse_regression", low=0)
    if k > d:
        raise ValueError(f"regfn.data.sparse_regression: n_informative must be <= d={d}, got {k}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not (0 <= noise < math.inf):
        raise ValueError(f"regfn.data.sparse_regression: noise must be a finite float >= 0, got {noise!r}")
    dtype = _check_float_dtype(dtype, "sparse_regression")

    k_x, k_pos, k_mag, k_sign, k_noise = rr.split(key, 5)
    x = rr.normal(k_x, (n, d), dtype)
    support = torch.sort(rr.permutation(k_pos, d)[:k]).values
    magnitude = rr.uniform(k_mag, (k,), dtype, 1.0, 3.0)
    sign = torch.where(rr.bernoulli(k_sign, 0.5, (k,)), 1.0, -1.0).to(dtype)
    w = torch.zeros(d, dtype=dtype, device=x.device)
    w[support.to(x.device)] = sign * magnitude
    y = x @ w + float(noise) * rr.normal(k_noise, (n,), dtype)
    data = Dataset(
        x=x,
        y=y.reshape(n, 1),
        feature_names=tuple(f"x{j}" for j in range(d)),
        target_name="y",
        task="regression",
    )
    return data, w
