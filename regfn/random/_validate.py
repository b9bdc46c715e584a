"""Argument checks of :mod:`regfn.random`, and which implementation a key belongs to.

A key's implementation is read from its shape alone: ``(2,)`` is a
threefry2x32 key, ``(4,)`` a philox4x32 key. Shapes are static under
``torch.func.vmap`` (which hides the batch dimension) and under
``torch.compile``, so every function dispatches on the key itself, with no
argument threaded through user code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import is_int

__all__ = ["DEFAULT_IMPL", "IMPLS", "MASK32", "check_impl", "key_impl"]

MASK32 = 0xFFFFFFFF
IMPLS = {"threefry2x32": 2, "philox4x32": 4}
"""The key implementations, with the number of uint32 words of their keys (the default first)."""
DEFAULT_IMPL = "threefry2x32"
"""What ``key(seed)`` makes: threefry2x32, JAX's default, bit for bit."""
_BY_WORDS = {words: name for name, words in IMPLS.items()}
INT64_RANGE = (-(2**63), 2**63)  # seeds JAX accepts (it goes through np.int64)
UINT32_RANGE = (-(2**31), 2**32)  # fold_in data: uint32, or int32 taken mod 2**32
FLOAT_LAYOUT = {  # dtype -> (bits in the format, mantissa bits)
    torch.float16: (16, 10),
    torch.bfloat16: (16, 7),
    torch.float32: (32, 23),
    torch.float64: (64, 52),
}


def check_impl(impl: object, where: str) -> str:
    """A key implementation's name, checked: ``"threefry2x32"`` or ``"philox4x32"``.

    ``where`` names the caller and the argument (``"regfn.sweep: key_impl"``).

    Examples:
        >>> check_impl("philox4x32", "regfn.random.key: impl")
        'philox4x32'
        >>> check_impl("rbg", "regfn.random.key: impl")
        Traceback (most recent call last):
        ...
        ValueError: regfn.random.key: impl must be one of 'threefry2x32', 'philox4x32', got 'rbg'
    """
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    return impl


def key_impl(key_: Tensor) -> str:
    """The implementation of a key: ``"threefry2x32"`` (shape ``(2,)``) or ``"philox4x32"`` (shape ``(4,)``).

    Like ``jax.random.key_impl``. Works on a single key (also inside
    ``torch.func.vmap``) and on a batch of keys (its last dimension).

    Examples:
        >>> import regfn.random as rr
        >>> key_impl(rr.key(0)), key_impl(rr.key(0, impl="philox4x32"))
        ('threefry2x32', 'philox4x32')
    """
    if not isinstance(key_, Tensor) or key_.ndim == 0 or key_.shape[-1] not in _BY_WORDS:
        what = tuple(key_.shape) if isinstance(key_, Tensor) else type(key_).__name__
        raise ValueError(f"regfn.random.key_impl: expected keys of shape (..., 2) or (..., 4), got {what}")
    return _BY_WORDS[key_.shape[-1]]


def _check_key(k: object, fn: str) -> Tensor:
    """Validate a single key and return it: regfn's one key check.

    ``fn`` names the function that was called: a function of this package
    (``"split"``, read as ``regfn.random.split``) or a full name such as
    ``"regfn.data.train_val_split"``. A key that is not a tensor or has the
    wrong dtype raises ``TypeError``; a key of the wrong shape ``ValueError``.
    """
    where = fn if fn.startswith("regfn.") else f"regfn.random.{fn}"
    if not isinstance(k, Tensor):
        raise TypeError(
            f"{where}: expected a key (a tensor of shape (2,), or (4,) for philox4x32, from regfn.random.key), "
            f"got {type(k).__name__}"
        )
    if k.dtype not in (torch.int64, torch.uint32):
        raise TypeError(
            f"{where}: a key holds uint32 words as torch.int64 or torch.uint32, "
            f"got dtype {k.dtype}; create keys with regfn.random.key(seed)"
        )
    if k.ndim != 1 or k.shape[0] not in _BY_WORDS:
        batched = k.ndim >= 2 and k.shape[-1] in _BY_WORDS
        hint = "; for a batch of keys, map over it with torch.func.vmap" if batched else ""
        raise ValueError(
            f"{where}: expected a single key of shape (2,) (threefry2x32) or (4,) (philox4x32), "
            f"got shape {tuple(k.shape)}{hint}"
        )
    return k


def _check_shape(shape: object, fn: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise TypeError(f"regfn.random.{fn}: shape must be a tuple of ints, got {shape!r}")
    if any(d < 0 for d in shape):
        raise ValueError(f"regfn.random.{fn}: shape must have sizes >= 0, got {tuple(shape)}")
    return tuple(shape)


def _check_int(value: object, name: str, fn: str, lo: int, hi: int) -> int:
    if not is_int(value):
        raise TypeError(
            f"regfn.random.{fn}: {name} must be an int or an integer tensor, got {type(value).__name__} {value!r}"
        )
    value = int(value)
    if not lo <= value < hi:
        raise ValueError(f"regfn.random.{fn}: {name} must be in [{lo}, {hi}), got {value}")
    return value


def _check_int_tensor(value: Tensor, name: str, fn: str) -> Tensor:
    if value.dtype == torch.bool or value.dtype.is_floating_point or value.dtype.is_complex:
        raise TypeError(f"regfn.random.{fn}: {name} must be an int or an integer tensor, got a {value.dtype} tensor")
    return value


def _float_dtype(dtype: object, fn: str) -> torch.dtype:
    if dtype not in FLOAT_LAYOUT:
        raise TypeError(f"regfn.random.{fn}: dtype must be one of float16, bfloat16, float32, float64, got {dtype}")
    return dtype


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
