"""philox4x32-10 (Random123's, and Triton's ``tl.randint``) on int64 tensors.

A philox4x32 key of regfn is four uint32 words ``(k0, k1, s0, s1)``: the
cipher key ``(k0, k1)`` and a stream ``(s0, s1)`` that fills the high half of
the 128-bit counter. Word ``4 j + m`` of a key's stream of random words is
word ``m`` of ``philox4x32((k0, k1), (j mod 2**32, j // 2**32, s0, s1))``,
four words per cipher call. For a key made from a seed, ``(k0, k1)`` are the
seed's two 32-bit halves (low first) and the stream is ``(0, 0)``, so the
words are exactly ``tl.randint4x(seed, j)`` of Triton, and word ``4 j`` is
``tl.randint(seed, j)``; for any key they are
``tl.philox(k0 + 2**32 * k1, j, 0, s0, s1)``.

``split(key, n)[i]`` is the block ``i`` (its four words make the new key),
and ``fold_in(key, d)`` is the block ``d``: the same rule as JAX's threefry,
where ``split(key, n)[d] == fold_in(key, d)`` too.

The words live in int64 tensors. Philox's 32 x 32 -> 64-bit products are
formed from 16-bit halves of the multiplier (:func:`_mulhilo`), so that no
intermediate reaches ``2**63``: a signed 64-bit overflow wraps around in
eager torch's kernels in practice, but it is undefined behaviour in C++, and
the code inductor generated for whole 64-bit products gave other words than
eager for keys with large words (a folded key). The high bits of an
intermediate word may hold garbage; only the low 32 bits count, and a word
is masked before it is multiplied.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validate import MASK32, _check_int_tensor

__all__ = ["philox4x32"]

_M0 = 0xD2511F53  # multiplies counter word 0
_M1 = 0xCD9E8D57  # multiplies counter word 2
_BUMP = (0x9E3779B9, 0xBB67AE85)  # added to the key words after each round
ROUNDS = 10


def _mulhilo(x: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """The high word of ``x * m`` and a tensor whose low 32 bits are its low word (``x`` in ``[0, 2**32)``).

    From 16-bit halves of the constant ``m``: every intermediate stays below
    ``2**49`` (see the module docstring).

    Examples:
        >>> x = torch.tensor(0xFFFFFFFF)
        >>> hi, lo = _mulhilo(x, 0xD2511F53)
        >>> (int(hi), int(lo) & 0xFFFFFFFF) == divmod(0xFFFFFFFF * 0xD2511F53, 2**32)
        True
    """
    a = x * (m & 0xFFFF)  # < 2**48
    b = x * (m >> 16)  # < 2**48
    return (b + (a >> 16)) >> 16, ((b & 0xFFFF) << 16) + a


def _philox(c0: Tensor, c1: Tensor, c2: Tensor, c3: Tensor, k0: Tensor, k1: Tensor) -> tuple[Tensor, ...]:
    """Ten Philox rounds on int64 words (broadcast together); the low 32 bits of the results are the words."""
    for r in range(ROUNDS):
        hi0, lo0 = _mulhilo(c0 & MASK32, _M0)
        hi2, lo2 = _mulhilo(c2 & MASK32, _M1)
        c0, c1, c2, c3 = hi2 ^ c1 ^ (k0 + r * _BUMP[0]), lo2, hi0 ^ c3 ^ (k1 + r * _BUMP[1]), lo0
    return c0, c1, c2, c3


def philox4x32(cipher_key: Tensor, counter: Tensor) -> Tensor:
    """The philox4x32-10 block cipher of Random123: four counter words and two key words in, four words out.

    This is the raw cipher, for checks against Random123's known answers;
    :func:`regfn.random.key` with ``impl="philox4x32"`` makes keys that
    draw from it.

    Args:
        cipher_key: the two key words, an integer tensor of shape ``(2,)``.
        counter: uint32 values (an integer tensor) of shape ``(..., 4)``.

    Returns:
        int64 words in ``[0, 2**32)`` of ``counter``'s shape.

    Examples:
        >>> philox4x32(torch.tensor([0xA4093822, 0x299F31D0]),
        ...            torch.tensor([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344])).tolist() == [
        ...     0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]
        True
    """
    cipher_key = _check_int_tensor(torch.as_tensor(cipher_key), "cipher_key", "philox4x32")
    counter = _check_int_tensor(torch.as_tensor(counter), "counter", "philox4x32")
    if cipher_key.shape != (2,):
        raise ValueError(f"regfn.random.philox4x32: cipher_key must have shape (2,), got {tuple(cipher_key.shape)}")
    if counter.ndim == 0 or counter.shape[-1] != 4:
        raise ValueError(f"regfn.random.philox4x32: counter must have shape (..., 4), got {tuple(counter.shape)}")
    k = cipher_key.to(torch.int64) & MASK32
    c = (counter.to(torch.int64) & MASK32).unbind(-1)
    return torch.stack(_philox(c[0], c[1], c[2], c[3], k[0], k[1]), dim=-1) & MASK32


def words(k: Tensor, n: int, start: int = 0, kw: Tensor | None = None) -> Tensor:
    """Words ``start .. start + n - 1`` of a philox key's stream (int64; only the low 32 bits count);
    ``start`` is a multiple of 4 (a block boundary); ``kw``: :func:`key_words` of ``k``, when the caller has them."""
    kw = key_words(k) if kw is None else kw
    blocks = (n + 3) // 4
    first = start // 4
    j = torch.arange(first, first + blocks, dtype=torch.int64, device=k.device)
    hi = j >> 32 if first + blocks > 2**32 else torch.zeros((), dtype=torch.int64, device=k.device)
    out = torch.stack(_philox(j, hi, kw[2], kw[3], kw[0], kw[1]), dim=-1).reshape(-1)
    return out if blocks * 4 == n else out[:n]


def key_words(k: Tensor) -> Tensor:
    """A philox key's four words as int64 values in ``[0, 2**32)``."""
    return k.to(torch.int64) & MASK32


def fold_in(k: Tensor, d: Tensor) -> Tensor:
    """The block ``d`` (a 0-d int tensor, taken mod ``2**32``) of a philox key: the new key's four words."""
    kw = key_words(k)
    d = d.to(torch.int64) & MASK32
    return torch.stack(_philox(d, torch.zeros_like(d), kw[2], kw[3], kw[0], kw[1])) & MASK32
