"""threefry2x32 (20 rounds), JAX's default PRNG, on int32 tensors.

The words are computed in ``int32`` arithmetic that wraps around, which is the
same as uint32 arithmetic bit for bit and runs on every torch backend.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validate import MASK32, _check_int_tensor, _check_key

__all__ = ["threefry2x32"]

_PARITY = 0x1BD11BDA  # threefry's key-schedule constant
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _wrap32(x: Tensor) -> Tensor:
    """uint32 values held in a wider integer tensor -> the same bits as int32."""
    x = x.to(torch.int64) & MASK32
    return torch.where(x >= 2**31, x - 2**32, x).to(torch.int32)


def _unsigned(x: Tensor) -> Tensor:
    """Words (int32, or int64 whose low 32 bits are the word) -> their uint32 values as int64."""
    return x.to(torch.int64) & MASK32


def _threefry(k0: Tensor, k1: Tensor, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """threefry2x32 on int32 tensors (broadcast together); returns two int32 tensors.

    The first mix step makes two fresh tensors of the broadcast shape; every
    later step updates them in place (the caller's tensors are never
    written). Eagerly that saves a fresh output tensor per operation (an
    eager dropout mask of 81 x 3,684 words took 1.3-1.8x less time on a
    2-core CPU, docs/benchmarks/); under ``torch.compile`` the in-place updates
    are functionalized into the same fused kernel. The words are the same
    either way: int32 arithmetic wraps around in both.
    """
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    x0 = x0 + x1  # the first mix step, out of place: both words fresh, broadcast to one shape
    r = _ROTATIONS[0][0]
    x1 = ((x1 << r) | ((x1 >> (32 - r)) & ((1 << r) - 1))) ^ x0
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
        key_: a threefry2x32 key of shape ``(2,)``.
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
    if k.shape != (2,):
        raise ValueError(f"regfn.random.threefry2x32: expected a threefry2x32 key of shape (2,), got {tuple(k.shape)}")
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


def _counter_words(n: int, device: torch.device, start: int = 0) -> tuple[Tensor, Tensor]:
    """JAX's ``iota_2x32_shape``: the flat index of each of elements ``start .. start + n - 1`` as (hi, lo) words."""
    if start + n <= 2**31:
        lo = torch.arange(start, start + n, dtype=torch.int32, device=device)
        hi = torch.zeros((), dtype=torch.int32, device=device)
    else:
        idx = torch.arange(start, start + n, dtype=torch.int64, device=device)
        lo, hi = _wrap32(idx), _wrap32(idx >> 32)
    return hi, lo


def hash_counters(k: Tensor, n: int, start: int = 0, kw: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Both words of ``threefry2x32(key, (0, i))`` for ``start <= i < start + n``, as int32 tensors of shape
    ``(n,)``; ``kw``: the key's words as int32 (``_wrap32(k)``), when the caller has them."""
    kw = _wrap32(k) if kw is None else kw
    hi, lo = _counter_words(n, k.device, start)
    return _threefry(kw[0], kw[1], hi, lo)


def bits32(k: Tensor, n: int, start: int = 0, kw: Tensor | None = None) -> Tensor:
    """Words ``start .. start + n - 1`` of 32 random bits, as int32 (``jax.random.bits``'s: ``y0 ^ y1``)."""
    y0, y1 = hash_counters(k, n, start, kw)
    y0 ^= y1  # y0 is _threefry's fresh tensor
    return y0


def fold_in(k: Tensor, d: Tensor) -> Tensor:
    """``threefry2x32(key, (0, d))`` for an int32 scalar ``d``: JAX's ``fold_in``, as int64 words."""
    kw = _wrap32(k)
    y0, y1 = _threefry(kw[0], kw[1], torch.zeros_like(d), d)
    return _unsigned(torch.stack([y0, y1]))
