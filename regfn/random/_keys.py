"""Keys: :func:`key`, :func:`split` and :func:`fold_in`, for either implementation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import _host, _native, _philox, _threefry
from ._validate import (
    INT64_RANGE,
    MASK32,
    UINT32_RANGE,
    _check_int,
    _check_int_tensor,
    _check_key,
    _check_shape,
    _numel,
    check_impl,
)

__all__ = ["fold_in", "key", "split"]


def key(seed: int | Tensor, *, impl: str = "threefry2x32", device: torch.device | str | None = None) -> Tensor:
    """Make a key from an integer seed.

    ``impl="threefry2x32"`` (the default) is
    ``jax.random.key_data(jax.random.key(seed))``: with JAX's 64-bit mode
    off, the seed is taken modulo ``2**32`` and the key is
    ``[0, seed mod 2**32]``. ``impl="philox4x32"`` keeps all 64 bits of the
    seed, as Triton does: the key is ``[seed mod 2**32, (seed >> 32) mod 2**32,
    0, 0]`` (the cipher key, then a zero stream), and its words equal
    ``tl.randint4x(seed, offset)``.

    Args:
        seed: a Python int in ``[-2**63, 2**63)``, or an integer tensor of any
            shape (one key per element, so ``vmap(key)(torch.arange(K))``
            works).
        impl: ``"threefry2x32"`` (bit-equal to ``jax.random``) or
            ``"philox4x32"`` (cheaper; equal to Triton's ``tl.randint``).
        device: where the key lives (default: the seed tensor's device, else CPU).

    Returns:
        An int64 tensor of shape ``seed.shape + (2,)`` (threefry2x32) or
        ``seed.shape + (4,)`` (philox4x32).

    Raises:
        TypeError: for a float, bool or non-integer tensor seed.
        ValueError: for an int outside JAX's seed range, or an unknown ``impl``.

    Examples:
        >>> key(42)
        tensor([ 0, 42])
        >>> key(-1)
        tensor([         0, 4294967295])
        >>> key(torch.arange(2))
        tensor([[0, 0],
                [0, 1]])
        >>> key(2**32 + 7, impl="philox4x32")
        tensor([7, 1, 0, 0])
    """
    philox = check_impl(impl, "regfn.random.key: impl") == "philox4x32"
    if isinstance(seed, Tensor):
        seed = _check_int_tensor(seed, "seed", "key").to(device=device, dtype=torch.int64)
        lo = seed & MASK32
        zero = torch.zeros_like(lo)
        return torch.stack([lo, (seed >> 32) & MASK32, zero, zero] if philox else [zero, lo], dim=-1)
    value = _check_int(seed, "seed", "key", *INT64_RANGE)
    words = [value & MASK32, (value >> 32) & MASK32, 0, 0] if philox else [0, value & MASK32]
    return torch.tensor(words, dtype=torch.int64, device=device)


def split(key_: Tensor, num: int | Sequence[int] = 2) -> Tensor:
    """Split a key into ``num`` new keys of its implementation, as ``jax.random.split``.

    A threefry2x32 key splits as JAX's does; a philox4x32 key's new key ``i``
    is the ``i``-th block of four words of its stream (``bits(key, (n, 4))[i]``).

    Args:
        key_: a key of shape ``(2,)`` or ``(4,)``.
        num: how many keys (an int >= 0), or a shape such as ``(2, 3)``.

    Returns:
        Keys of shape ``(*num, 2)`` (or ``(*num, 4)``), int64.

    Examples:
        >>> split(key(0))
        tensor([[1797259609, 2579123966],
                [ 928981903, 3453687069]])
        >>> split(key(0, impl="philox4x32"), 1)
        tensor([[1713891541, 3781805453, 3159862348, 2600524760]])
    """
    k = _check_key(key_, "split")
    shape = _check_shape(num, "split")
    n = _numel(shape)
    if k.shape[0] == 4:
        return (_philox_words(k, 4 * n) & MASK32).reshape(*shape, 4)
    keys = _native.threefry_keys(k, n)
    if keys is not None:
        return keys.reshape(*shape, 2)
    y0, y1 = _threefry_pairs(k, n)
    return _threefry._unsigned(torch.stack([y0, y1], dim=-1)).reshape(*shape, 2)


def _fold_traced(k: Tensor, data: Tensor) -> Tensor:
    """``fold_in`` for a 0-d tensor ``data`` that cannot be read here: the C kernel's operator where it is used,
    else the tensor cipher (the same words)."""
    words = _native.fold(k, data)
    if words is not None:
        return words & MASK32 if k.shape[0] == 4 else _threefry._unsigned(words).reshape(k.shape)
    d = _threefry._wrap32(data)
    return _philox.fold_in(k, d) if k.shape[0] == 4 else _threefry.fold_in(k, d)


def _philox_words(k: Tensor, n: int, start: int = 0) -> Tensor:
    """Words ``start .. start + n - 1`` of a philox key: the C kernel's where it is used, else the tensor code's."""
    words = _native.philox_words(k, n, start)
    return _philox.words(k, n, start) if words is None else words


def _threefry_pairs(k: Tensor, n: int, start: int = 0) -> tuple[Tensor, Tensor]:
    """Both words of ``threefry2x32(key, (0, i))`` for ``start <= i < start + n``: the C kernel's, or the tensor
    code's."""
    pairs = _native.threefry_pairs(k, n, start)
    return _threefry.hash_counters(k, n, start) if pairs is None else pairs


def fold_in(key_: Tensor, data: int | Tensor) -> Tensor:
    """Fold an integer into a key, as ``jax.random.fold_in``.

    For either implementation, ``fold_in(key, d)`` equals ``split(key, n)[d]``
    (for ``d < n``), as in JAX.

    Args:
        key_: a key of shape ``(2,)`` or ``(4,)``.
        data: an int in ``[-2**31, 2**32)`` (negative ints are taken mod
            ``2**32``), or a 0-d integer tensor (for example a step counter
            inside a compiled or vmapped function).

    Returns:
        A new key of the same shape.

    Examples:
        >>> fold_in(key(0), 1)
        tensor([ 928981903, 3453687069])
    """
    k = _check_key(key_, "fold_in")
    if isinstance(data, Tensor):
        data = _check_int_tensor(data, "data", "fold_in")
        if data.ndim != 0:
            raise ValueError(
                f"regfn.random.fold_in: data must be a scalar (0-d tensor), got shape {tuple(data.shape)}; "
                "use torch.func.vmap to fold in a batch"
            )
        if not _host.readable(data):  # traced, or vmapped over: the kernel's operator, else the tensor cipher
            return _fold_traced(k, data.to(k.device))
        # an eager value (a sweep's epoch counter beside vmapped keys): as an int, taken mod 2**32 as above
        value = int(data) & MASK32
    else:
        value = _check_int(data, "data", "fold_in", *UINT32_RANGE) & MASK32
    if _host.readable(k):
        return _fold_in_host(k, value)
    if _native.usable(k):  # split(key, n)[value]: a philox block, or threefry's pair, by the kernel
        if k.shape[0] == 2:
            keys = _native.threefry_keys(k, 1, value)
            if keys is not None:
                return keys.reshape(k.shape)
        words = _philox_words(k, 4, 4 * value) if k.shape[0] == 4 else torch.stack(_threefry_pairs(k, 1, value))
        return _threefry._unsigned(words).reshape(k.shape)
    d = _threefry._wrap32(torch.tensor(value, dtype=torch.int64, device=k.device))
    return _philox.fold_in(k, d) if k.shape[0] == 4 else _threefry.fold_in(k, d)


def _fold_in_host(k: Tensor, d: int) -> Tensor:
    """:func:`fold_in` on Python integers (the same words; see :mod:`regfn.random._host`)."""
    return _host.philox_fold_in(k, d) if k.shape[0] == 4 else _host.threefry_fold_in(k, d)
