"""Samplers: :func:`bits`, :func:`uniform`, :func:`bernoulli`, :func:`normal` and :func:`permutation`.

Each draws its words from the key's own implementation (:func:`regfn.random.key_impl`)
and turns them into numbers by JAX's rules, so a threefry2x32 key gives
``jax.random``'s numbers and a philox4x32 key the same rules over philox words.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from .._checks import check_int
from .._erfinv import _erfinv32
from . import _native, _native_cols, _philox, _threefry
from ._eager import piece_size
from ._host import tracing
from ._keys import _philox_words, _threefry_pairs
from ._threefry import _unsigned
from ._validate import FLOAT_LAYOUT, _check_key, _check_shape, _float_dtype, _numel

__all__ = ["bernoulli", "bits", "keep_mask", "normal", "permutation", "uniform"]


def bits(key_: Tensor, shape: int | Sequence[int] = ()) -> Tensor:
    """Random 32-bit words, as ``jax.random.bits(key, shape)`` (uint32).

    For a philox4x32 key, ``bits(key, (n, 4))[j]`` is the cipher's block
    ``j`` (Triton's ``tl.randint4x(seed, j)`` for ``key(seed, impl="philox4x32")``).

    Args:
        key_: a key of shape ``(2,)`` or ``(4,)``.
        shape: output shape.

    Returns:
        int64 tensor of ``shape`` with values in ``[0, 2**32)``.

    Examples:
        >>> import regfn.random as rr
        >>> bits(rr.key(0), (3,))
        tensor([4070199207, 4202968722, 1427181096])
    """
    k = _check_key(key_, "bits")
    return _unsigned(_bits32(k, _check_shape(shape, "bits")))


def _bits32(k: Tensor, shape: tuple[int, ...], cols: bool = False) -> Tensor:
    """32 random bits per element: the low 32 bits of an int32 (threefry2x32) or int64 (philox4x32) tensor.

    A CPU draw runs in a C kernel (:mod:`regfn.random._native`) where one was built, else a large eager one is
    made in cache-sized pieces (:mod:`regfn.random._eager`): the same words either way. With ``cols`` a 2-d
    draw comes stored column by column where the kernel runs (:mod:`regfn.random._native_cols`; a transposed
    view, the same values), for code that computes in that layout.
    """
    n = _numel(shape)
    philox = k.shape[0] == 4
    if cols and len(shape) == 2:
        stored = _native_cols.words_cols(k, *shape)
        if stored is not None:
            return stored.mT
    out = _native.philox_words(k, n) if philox else _native.threefry_bits32(k, n)
    if out is None:  # the tensor ciphers, from the key's words as they want them
        kw = _philox.key_words(k) if philox else _threefry._wrap32(k)

        def draw(m: int, start: int) -> Tensor:  # words start .. start + m - 1
            return _philox.words(k, m, start, kw) if philox else _threefry.bits32(k, m, start, kw)

        step = piece_size(k, n, align=4 if philox else 1)
        out = draw(n, 0) if step is None else torch.cat([draw(min(step, n - s), s) for s in range(0, n, step)])
    return out.reshape(shape)


def _bits64(k: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Two words per element, as uint32 values in int64: threefry's two outputs, or philox words ``2i, 2i + 1``."""
    n = _numel(shape)
    if k.shape[0] == 4:
        pairs = _philox_words(k, 2 * n).reshape(*shape, 2)
        return _unsigned(pairs[..., 0]), _unsigned(pairs[..., 1])
    y0, y1 = _threefry_pairs(k, n)
    return _unsigned(y0).reshape(shape), _unsigned(y1).reshape(shape)


def _mantissa32(k: Tensor, shape: tuple[int, ...], cols: bool = False) -> Tensor:
    """JAX's 23 random mantissa bits of a float32 uniform, as int32: the uniform is ``mant * 2**-23``."""
    mant = _bits32(k, shape, cols)
    mant >>= 9
    mant &= 0x7FFFFF
    return mant


def _below32(k: Tensor, shape: tuple[int, ...], p: float | Tensor, cols: bool = False) -> Tensor:
    """``uniform(k, shape) < p`` for float32 ``p``, in integers.

    The uniform is ``mant * 2**-23`` exactly, so it is below ``p`` exactly when
    ``mant < ceil(p * 2**23)`` (:func:`_threshold`). The same booleans as the
    float comparison, without converting and scaling every word (a vmapped mask
    of a million words: 4.5 -> 2.1 ms).
    """
    return _mantissa32(k, shape, cols) < _threshold(p)


def _threshold(p: float | Tensor) -> int | Tensor:
    """``ceil(p * 2**23)`` for float32 ``p``: a mantissa ``mant`` (:func:`_mantissa32`) is below ``p * 2**23``
    exactly when it is below this (``p * 2**23`` is exact in float32).

    A Python ``p`` is rounded to float32 first, as torch's comparison rounds it; NaN is never above, and
    infinities are clamped to just outside ``[0, 2**23]``. A tensor ``p`` gives an int32 tensor.
    """
    if isinstance(p, Tensor):
        scaled = torch.nan_to_num(p * 2.0**23, nan=0.0).clamp(-1.0, 2.0**23 + 1)
        return torch.ceil(scaled).to(torch.int32)
    p32 = torch.tensor(p, dtype=torch.float32).item()
    return 0 if math.isnan(p32) else math.ceil(min(max(p32 * 2.0**23, -1.0), 2.0**23 + 1))


def keep_mask(key_: Tensor, keep: float | Tensor, shape: tuple[int, ...]) -> Tensor | None:
    """``bernoulli(key_, keep, shape)`` as float32 ones and zeros, drawn and compared in one pass of the C kernel;
    ``None`` where that is not used (:func:`regfn.random._native.keep`: eagerly, on CPU, for a Python float or
    float32 ``keep``).

    Dropout multiplies by it: a float mask costs one vectorised product, where torch's ``where`` with a bool
    mask takes an unvectorised loop (docs/benchmarks/sweep.md).

    Examples:
        >>> import torch, regfn.random as rr
        >>> m = keep_mask(rr.key(0), 0.5, (4,))
        >>> m is None or bool(torch.equal(m.bool(), bernoulli(rr.key(0), 0.5, (4,))))
        True
    """
    if isinstance(keep, Tensor) and keep.dtype != torch.float32:
        return None
    out = _native.keep(key_, _numel(shape), keep)
    return None if out is None else out.reshape(shape)


def _unit_floats(k: Tensor, shape: tuple[int, ...], dtype: torch.dtype, cols: bool = False) -> Tensor:
    """Floats in [0, 1) from random mantissa bits (JAX's rule, for either implementation).

    JAX puts ``nmant`` random bits under the exponent of 1.0, bitcasts to a
    float in [1, 2) and subtracts 1: exactly ``mant * 2**-nmant``, which is
    computed directly here (``Tensor.view(dtype)`` has no vmap batching rule
    before torch 2.13).
    """
    nbits, nmant = FLOAT_LAYOUT[dtype]
    if nbits == 32:
        mant = _mantissa32(k, shape, cols)
    elif nbits == 16:  # JAX draws 16 bits, or only 8 where the mantissa is shorter (bfloat16)
        rng_bits = 16 if nmant >= 8 else 8
        mant = (_bits32(k, shape, cols) & ((1 << rng_bits) - 1)) >> (rng_bits - nmant)
    else:  # 64 random bits: (y0 << 32 | y1) >> 12, JAX's rule with x64 enabled
        y0, y1 = _bits64(k, shape)
        mant = (y0 << 20) | (y1 >> 12)
    out = mant.to(dtype)
    out *= 2.0**-nmant
    return out


def uniform(
    key_: Tensor,
    shape: int | Sequence[int] = (),
    dtype: torch.dtype = torch.float32,
    minval: float | Tensor = 0.0,
    maxval: float | Tensor = 1.0,
) -> Tensor:
    """Uniform floats in ``[minval, maxval)``, as ``jax.random.uniform``.

    float32, float16 and bfloat16 match JAX bit for bit; float64 matches JAX
    with ``jax_enable_x64`` for the same key words.

    Args:
        key_: a key of shape ``(2,)``.
        shape: output shape.
        dtype: a floating dtype.
        minval: lower bound (float or tensor broadcastable to ``shape``).
        maxval: upper bound.

    Returns:
        A tensor of ``shape`` and ``dtype`` on the key's device.

    Examples:
        >>> import regfn.random as rr
        >>> uniform(rr.key(0), (3,))
        tensor([0.9477, 0.9786, 0.3323])
        >>> uniform(rr.key(0), (2,), minval=-1.0, maxval=1.0)
        tensor([0.8953, 0.9572])
    """
    k = _check_key(key_, "uniform")
    dtype = _float_dtype(dtype, "uniform")
    shape = _check_shape(shape, "uniform")
    floats = _unit_floats(k, shape, dtype)
    if isinstance(minval, (int, float)) and isinstance(maxval, (int, float)) and (minval, maxval) == (0.0, 1.0):
        return floats
    lo = torch.as_tensor(minval, dtype=dtype, device=k.device)
    hi = torch.as_tensor(maxval, dtype=dtype, device=k.device)
    if dtype == torch.float64:
        return torch.maximum(lo, floats * (hi - lo) + lo)
    # XLA fuses the scaling into one fused multiply-add, rounded once. In float64
    # the product of two narrower floats is exact, so only the sum is rounded
    # before the final rounding to ``dtype``, which reproduces the fused result.
    wide = floats.double() * (hi - lo).double() + lo.double()
    return torch.maximum(lo, wide.to(dtype))


def bernoulli(key_: Tensor, p: float | Tensor = 0.5, shape: int | Sequence[int] | None = None) -> Tensor:
    """Random booleans that are True with probability ``p``, as ``jax.random.bernoulli``.

    The rule is ``uniform(key, shape, dtype) < p`` with ``dtype`` the dtype of
    ``p`` (float32 for a Python float).

    Args:
        key_: a key of shape ``(2,)``.
        p: probability of True, a float or a floating tensor broadcastable to
            ``shape``.
        shape: output shape (default: the shape of ``p``).

    Returns:
        A bool tensor of ``shape``.

    Examples:
        >>> import regfn.random as rr
        >>> bernoulli(rr.key(0), 0.5, (4,))
        tensor([False, False,  True,  True])
    """
    return _bernoulli(key_, p, shape)


def _bernoulli(
    key_: Tensor, p: float | Tensor = 0.5, shape: int | Sequence[int] | None = None, cols: bool = False
) -> Tensor:
    """:func:`bernoulli`; with ``cols`` a 2-d mask may come stored column by column (a transposed view, the
    same values: see :func:`_bits32`), for :func:`regfn.nn.dropout` in a features-first layout."""
    k = _check_key(key_, "bernoulli")
    if isinstance(p, Tensor):
        if not p.dtype.is_floating_point:
            raise TypeError(f"regfn.random.bernoulli: p must be a float or floating tensor, got {p.dtype}")
        dtype = p.dtype
        p = p.to(k.device)
    elif isinstance(p, numbers.Real) and not isinstance(p, bool):
        dtype = torch.float32
        p = float(p)
    else:
        raise TypeError(f"regfn.random.bernoulli: p must be a float or floating tensor, got {type(p).__name__}")
    if shape is None:
        shape = tuple(p.shape) if isinstance(p, Tensor) else ()
    shape = _check_shape(shape, "bernoulli")
    # Eagerly, the integer comparison; traced code keeps the float one: a Python p's float32
    # rounding would need .item(), and inductor compiled the integer form of the tutorial's
    # sweep step about 3x slower (13 against 4.1 ms an epoch; docs/benchmarks/sweep.md).
    if dtype == torch.float32 and not tracing():
        return _below32(k, shape, p, cols)
    return _unit_floats(k, shape, _float_dtype(dtype, "bernoulli"), cols) < p


def _normal_constants(dtype: torch.dtype) -> tuple[float, float]:
    """(the float after -1 towards 0, sqrt(2)), both rounded to ``dtype``."""
    minus_one = torch.tensor(-1.0, dtype=dtype)
    lo = torch.nextafter(minus_one, torch.zeros_like(minus_one))
    return float(lo), float(torch.tensor(2.0, dtype=torch.float64).sqrt().to(dtype))


_NORMAL_CONSTANTS = {dtype: _normal_constants(dtype) for dtype in FLOAT_LAYOUT}


def normal(key_: Tensor, shape: int | Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal samples, as ``jax.random.normal``.

    JAX's rule: ``sqrt(2) * erfinv(u)`` with ``u`` uniform in ``(-1, 1)``.
    float32 redoes XLA CPU's float32 ``erf_inv`` operation by operation
    (its log1p and fused multiply-adds included), so it equals CPU jax bit for
    bit on x86-64 with FMA (checked for every possible ``u``); the promise is
    2 ulp. The emulation, in float64, makes float32 ``normal`` slower than a
    plain float32 ``erfinv`` would (see docs/benchmarks/). Other dtypes use
    ``torch.erfinv``.

    Args:
        key_: a key of shape ``(2,)``.
        shape: output shape.
        dtype: a floating dtype.

    Returns:
        A tensor of ``shape`` and ``dtype``.

    Examples:
        >>> import regfn.random as rr
        >>> normal(rr.key(0), (3,))
        tensor([ 1.6226,  2.0253, -0.4336])
    """
    k = _check_key(key_, "normal")
    dtype = _float_dtype(dtype, "normal")
    lo, sqrt2 = _NORMAL_CONSTANTS[dtype]
    u = uniform(k, shape, dtype, lo, 1.0)
    erfinv = _erfinv32(u) if dtype == torch.float32 else torch.erfinv(u)
    return erfinv * sqrt2


def permutation(key_: Tensor, n: int) -> Tensor:
    """A random permutation of ``range(n)`` (for shuffling mini-batches).

    Sorts ``n`` random 32-bit words (stable sort, so ties keep index order).
    Deterministic for a key on any device, and works under ``vmap``; it does
    not reproduce ``jax.random.permutation``'s numbers.

    Args:
        key_: a key of shape ``(2,)``.
        n: the number of items (int >= 0).

    Returns:
        An int64 tensor of shape ``(n,)``.

    Examples:
        >>> import regfn.random as rr
        >>> permutation(rr.key(0), 5)
        tensor([2, 3, 4, 0, 1])
    """
    k = _check_key(key_, "permutation")
    n = check_int(n, "n", "regfn.random.permutation", low=0, high=2**62 - 1)
    return torch.sort(bits(k, (n,)), stable=True).indices
