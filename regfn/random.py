"""Explicit random keys, bit-for-bit compatible with ``jax.random``.

regfn draws every random number from a *key*: a tensor of shape ``(2,)``
holding two uint32 words (stored as ``torch.int64`` values in ``[0, 2**32)``;
``torch.uint32`` keys are accepted too). Keys are split and folded, never
mutated, and the same key gives the same numbers on CPU and CUDA, eagerly,
under ``torch.compile`` and under ``torch.func.vmap``.

The generator is JAX's default PRNG, threefry2x32 (20 rounds), in its
"partitionable" mode (``jax_threefry_partitionable=True``, the default since
jax 0.5) with 64-bit mode off:

* ``key(seed)`` is ``[0, seed mod 2**32]``;
* ``split(key, n)[i]`` and ``bits(key, shape).flat[i]`` come from
  ``threefry2x32(key, (0, i))`` (both output words for a key, their XOR for
  32 random bits);
* ``fold_in(key, d)`` is ``threefry2x32(key, (0, d))``.

The words are computed in ``int32`` arithmetic that wraps around, which is the
same as uint32 arithmetic bit for bit and runs on every torch backend.

Examples:
    >>> import regfn.random as rr
    >>> k = rr.key(0)
    >>> k
    tensor([0, 0])
    >>> a, b = rr.split(k)
    >>> rr.uniform(b, (3,))
    tensor([0.0073, 0.0209, 0.5814])
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from ._checks import check_int, is_int
from ._erfinv import _erfinv32

__all__ = [
    "bernoulli",
    "bits",
    "fold_in",
    "key",
    "normal",
    "permutation",
    "split",
    "threefry2x32",
    "uniform",
]

_MASK32 = 0xFFFFFFFF
_PARITY = 0x1BD11BDA  # threefry's key-schedule constant
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_INT64_RANGE = (-(2**63), 2**63)  # seeds JAX accepts (it goes through np.int64)
_UINT32_RANGE = (-(2**31), 2**32)  # fold_in data: uint32, or int32 taken mod 2**32
_FLOAT_LAYOUT = {  # dtype -> (bits in the format, mantissa bits)
    torch.float16: (16, 10),
    torch.bfloat16: (16, 7),
    torch.float32: (32, 23),
    torch.float64: (64, 52),
}


# ----------------------------------------------------------------- validation


def _check_key(k: object, fn: str) -> Tensor:
    """Validate a single key and return it: regfn's one key check.

    ``fn`` names the function that was called: a function of this module
    (``"split"``, read as ``regfn.random.split``) or a full name such as
    ``"regfn.data.train_val_split"``. A key that is not a tensor or has the
    wrong dtype raises ``TypeError``; a key of the wrong shape ``ValueError``.
    """
    where = fn if fn.startswith("regfn.") else f"regfn.random.{fn}"
    if not isinstance(k, Tensor):
        raise TypeError(
            f"{where}: expected a key (a tensor of shape (2,) from regfn.random.key), got {type(k).__name__}"
        )
    if k.dtype not in (torch.int64, torch.uint32):
        raise TypeError(
            f"{where}: a key holds two uint32 words as torch.int64 or torch.uint32, "
            f"got dtype {k.dtype}; create keys with regfn.random.key(seed)"
        )
    if k.shape != (2,):
        hint = "; for a batch of keys, map over it with torch.func.vmap" if k.ndim >= 2 and k.shape[-1] == 2 else ""
        raise ValueError(f"{where}: expected a single key of shape (2,), got shape {tuple(k.shape)}{hint}")
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


# ----------------------------------------------------------------- the cipher


def _wrap32(x: Tensor) -> Tensor:
    """uint32 values held in a wider integer tensor -> the same bits as int32."""
    x = x.to(torch.int64) & _MASK32
    return torch.where(x >= 2**31, x - 2**32, x).to(torch.int32)


def _unsigned(x: Tensor) -> Tensor:
    """int32 words -> their uint32 values as int64."""
    return x.to(torch.int64) & _MASK32


def _rotl(x: Tensor, r: int) -> Tensor:
    # Logical right shift on int32: arithmetic shift, then clear the sign copies.
    return (x << r) | ((x >> (32 - r)) & ((1 << r) - 1))


def _threefry(k0: Tensor, k1: Tensor, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """threefry2x32 on int32 tensors (broadcast together); returns two int32 tensors.

    The first mix step makes two fresh tensors of the broadcast shape; every
    later step updates them in place (the caller's tensors are never
    written). Eagerly that saves a fresh output tensor per operation (an
    eager dropout mask of 81 x 3,684 words took 1.3-1.8x less time on a
    2-core CPU, BENCHMARKS.md); under ``torch.compile`` the in-place updates
    are functionalized into the same fused kernel. The words are the same
    either way: int32 arithmetic wraps around in both.
    """
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    x0 = x0 + x1  # the first mix step, out of place: both words fresh, broadcast to one shape
    x1 = _rotl(x1, _ROTATIONS[0][0]) ^ x0
    for i in range(5):
        for r in _ROTATIONS[i % 2][1 if i == 0 else 0 :]:
            x0 += x1
            low = x1 >> (32 - r)  # a logical right shift on int32: arithmetic shift, then clear the sign copies
            low &= (1 << r) - 1
            x1 <<= r
            x1 |= low
            x1 ^= x0
        x0 += ks[(i + 1) % 3]
        x1 += ks[(i + 2) % 3] + (i + 1)
    return x0, x1


def threefry2x32(key_: Tensor, count: Tensor) -> Tensor:
    """The threefry2x32 block cipher, as ``jax.random.threefry_2x32``.

    Args:
        key_: a key of shape ``(2,)``.
        count: uint32 values (int64 or uint32 tensor) of any shape. Like JAX,
            the flattened values are split into two halves (padded with one
            zero when the size is odd) that form the cipher's two input words.

    Returns:
        The encrypted words, int64 in ``[0, 2**32)``, of ``count``'s shape.

    Examples:
        >>> threefry2x32(torch.tensor([0x13198A2E, 0x03707344]),
        ...              torch.tensor([0x243F6A88, 0x85A308D3]))
        tensor([3297917596, 1212020640])
    """
    k = _check_key(key_, "threefry2x32")
    count = _check_int_tensor(torch.as_tensor(count), "count", "threefry2x32")
    flat = _wrap32(count.reshape(-1))
    odd = flat.numel() % 2
    if odd:
        flat = torch.cat([flat, flat.new_zeros(1)])
    half = flat.numel() // 2
    kw = _wrap32(k)
    y0, y1 = _threefry(kw[0], kw[1], flat[:half], flat[half:])
    out = torch.cat([y0, y1])
    return _unsigned(out[: out.numel() - odd]).reshape(count.shape)


def _counter_words(shape: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """JAX's ``iota_2x32_shape``: the flat index of each element as (hi, lo) words."""
    n = 1
    for d in shape:
        n *= d
    if n < 2**31:
        lo = torch.arange(n, dtype=torch.int32, device=device)
        hi = torch.zeros((), dtype=torch.int32, device=device)
    else:
        idx = torch.arange(n, dtype=torch.int64, device=device)
        lo, hi = _wrap32(idx), _wrap32(idx >> 32)
    return hi, lo


def _hash_counters(k: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    kw = _wrap32(k)
    hi, lo = _counter_words(shape, k.device)
    y0, y1 = _threefry(kw[0], kw[1], hi, lo)
    return y0.reshape(shape), y1.reshape(shape)


def _bits32(k: Tensor, shape: tuple[int, ...]) -> Tensor:
    """32 random bits per element, as int32 (the bits of ``jax.random.bits``)."""
    y0, y1 = _hash_counters(k, shape)
    y0 ^= y1  # y0 is _threefry's fresh tensor
    return y0


# ----------------------------------------------------------------- keys


def key(seed: int | Tensor, *, device: torch.device | str | None = None) -> Tensor:
    """Make a key from an integer seed, as ``jax.random.key_data(jax.random.key(seed))``.

    With JAX's 64-bit mode off, a seed is taken modulo ``2**32`` and the key is
    ``[0, seed mod 2**32]``.

    Args:
        seed: a Python int in ``[-2**63, 2**63)``, or an integer tensor of any
            shape (one key per element, so ``vmap(key)(torch.arange(K))``
            works).
        device: where the key lives (default: the seed tensor's device, else CPU).

    Returns:
        An int64 tensor of shape ``seed.shape + (2,)``.

    Raises:
        TypeError: for a float, bool or non-integer tensor seed.
        ValueError: for an int outside JAX's seed range.

    Examples:
        >>> key(42)
        tensor([ 0, 42])
        >>> key(-1)
        tensor([         0, 4294967295])
        >>> key(torch.arange(2))
        tensor([[0, 0],
                [0, 1]])
    """
    if isinstance(seed, Tensor):
        seed = _check_int_tensor(seed, "seed", "key")
        lo = seed.to(device=device, dtype=torch.int64) & _MASK32
        return torch.stack([torch.zeros_like(lo), lo], dim=-1)
    value = _check_int(seed, "seed", "key", *_INT64_RANGE)
    return torch.tensor([0, value & _MASK32], dtype=torch.int64, device=device)


def split(key_: Tensor, num: int | Sequence[int] = 2) -> Tensor:
    """Split a key into ``num`` new keys, as ``jax.random.split``.

    Args:
        key_: a key of shape ``(2,)``.
        num: how many keys (an int >= 0), or a shape such as ``(2, 3)``.

    Returns:
        Keys of shape ``(num, 2)`` (or ``(*num, 2)``), int64.

    Examples:
        >>> split(key(0))
        tensor([[1797259609, 2579123966],
                [ 928981903, 3453687069]])
    """
    k = _check_key(key_, "split")
    shape = _check_shape(num, "split")
    y0, y1 = _hash_counters(k, shape)
    return _unsigned(torch.stack([y0, y1], dim=-1))


def fold_in(key_: Tensor, data: int | Tensor) -> Tensor:
    """Fold an integer into a key, as ``jax.random.fold_in``.

    Args:
        key_: a key of shape ``(2,)``.
        data: an int in ``[-2**31, 2**32)`` (negative ints are taken mod
            ``2**32``), or a 0-d integer tensor (for example a step counter
            inside a compiled or vmapped function).

    Returns:
        A new key of shape ``(2,)``.

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
        d = _wrap32(data.to(k.device))
    else:
        value = _check_int(data, "data", "fold_in", *_UINT32_RANGE)
        d = _wrap32(torch.tensor(value, dtype=torch.int64, device=k.device))
    kw = _wrap32(k)
    y0, y1 = _threefry(kw[0], kw[1], torch.zeros_like(d), d)
    return _unsigned(torch.stack([y0, y1]))


# ----------------------------------------------------------------- sampling


def bits(key_: Tensor, shape: int | Sequence[int] = ()) -> Tensor:
    """Random 32-bit words, as ``jax.random.bits(key, shape)`` (uint32).

    Args:
        key_: a key of shape ``(2,)``.
        shape: output shape.

    Returns:
        int64 tensor of ``shape`` with values in ``[0, 2**32)``.

    Examples:
        >>> bits(key(0), (3,))
        tensor([4070199207, 4202968722, 1427181096])
    """
    k = _check_key(key_, "bits")
    return _unsigned(_bits32(k, _check_shape(shape, "bits")))


def _float_dtype(dtype: object, fn: str) -> torch.dtype:
    if dtype not in _FLOAT_LAYOUT:
        raise TypeError(f"regfn.random.{fn}: dtype must be one of float16, bfloat16, float32, float64, got {dtype}")
    return dtype


def _unit_floats(k: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Floats in [0, 1) from random mantissa bits (JAX's rule).

    JAX puts ``nmant`` random bits under the exponent of 1.0, bitcasts to a
    float in [1, 2) and subtracts 1: exactly ``mant * 2**-nmant``, which is
    computed directly here (``Tensor.view(dtype)`` has no vmap batching rule
    before torch 2.13).
    """
    nbits, nmant = _FLOAT_LAYOUT[dtype]
    if nbits == 32:
        mant = _bits32(k, shape)
        mant >>= 9
        mant &= 0x7FFFFF
    elif nbits == 16:  # JAX draws 16 bits, or only 8 where the mantissa is shorter (bfloat16)
        rng_bits = 16 if nmant >= 8 else 8
        mant = (_bits32(k, shape) & ((1 << rng_bits) - 1)) >> (rng_bits - nmant)
    else:  # 64 random bits: (y0 << 32 | y1) >> 12, JAX's rule with x64 enabled
        y0, y1 = _hash_counters(k, shape)
        mant = (_unsigned(y0) << 20) | (_unsigned(y1) >> 12)
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
        >>> uniform(key(0), (3,))
        tensor([0.9477, 0.9786, 0.3323])
        >>> uniform(key(0), (2,), minval=-1.0, maxval=1.0)
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
        >>> bernoulli(key(0), 0.5, (4,))
        tensor([False, False,  True,  True])
    """
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
    return _unit_floats(k, shape, _float_dtype(dtype, "bernoulli")) < p


def _normal_constants(dtype: torch.dtype) -> tuple[float, float]:
    """(the float after -1 towards 0, sqrt(2)), both rounded to ``dtype``."""
    minus_one = torch.tensor(-1.0, dtype=dtype)
    lo = torch.nextafter(minus_one, torch.zeros_like(minus_one))
    return float(lo), float(torch.tensor(2.0, dtype=torch.float64).sqrt().to(dtype))


_NORMAL_CONSTANTS = {dtype: _normal_constants(dtype) for dtype in _FLOAT_LAYOUT}


def normal(key_: Tensor, shape: int | Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal samples, as ``jax.random.normal``.

    JAX's rule: ``sqrt(2) * erfinv(u)`` with ``u`` uniform in ``(-1, 1)``.
    float32 redoes XLA CPU's float32 ``erf_inv`` operation by operation
    (its log1p and fused multiply-adds included), so it equals CPU jax bit for
    bit on x86-64 with FMA (checked for every possible ``u``); the promise is
    2 ulp. The emulation, in float64, makes float32 ``normal`` slower than a
    plain float32 ``erfinv`` would (see BENCHMARKS.md). Other dtypes use
    ``torch.erfinv``.

    Args:
        key_: a key of shape ``(2,)``.
        shape: output shape.
        dtype: a floating dtype.

    Returns:
        A tensor of ``shape`` and ``dtype``.

    Examples:
        >>> normal(key(0), (3,))
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
        >>> permutation(key(0), 5)
        tensor([2, 3, 4, 0, 1])
    """
    k = _check_key(key_, "permutation")
    n = check_int(n, "n", "regfn.random.permutation", low=0, high=2**62 - 1)
    return torch.sort(bits(k, (n,)), stable=True).indices
