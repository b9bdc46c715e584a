"""Cache-sized pieces for eager draws: the same words, drawn a stretch of counters at a time.

Eagerly, a threefry2x32 draw is some 130 tensor operations (20 rounds of
adds, shifts and XORs), each a pass over every word. Once the words of one
operation outgrow the CPU's caches, every pass goes to memory: under
``vmap`` a dropout mask of 32 configurations x 128 rows x 256 units is a
million words a pass. Drawn in pieces of about 65,536 words (counting every
configuration of the vmap batch), the passes stay in cache: 48 ms -> 21 ms
for that mask on one core of the 2-core CPU (docs/benchmarks/sweep.md). The
words are the same (a piece is the counters ``start .. start + n - 1``), so
nothing but the time depends on it.

Only eager CPU draws are cut: compiled code fuses the rounds into one loop
anyway (and a cut would only lengthen the graph), and on CUDA each piece
would cost kernel launches.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._host import tracing

__all__ = ["PIECE_WORDS", "piece_size"]

PIECE_WORDS = 2**16
"""The words one eager operation of a cut draw covers, every vmapped configuration counted."""

_CUT_FROM = 2**19  # below this many words in all, one piece was as fast (measured down to 2**17)


def _vmapped_batch(t: Tensor) -> int:
    """How many copies ``vmap`` runs of ``t`` at once (the product of its batch sizes; 1 outside ``vmap``)."""
    functorch = torch._C._functorch  # private, present since torch 2.0; without it, 1
    size = 1
    try:
        while functorch.is_functorch_wrapped_tensor(t):
            inner = functorch.get_unwrapped(t)
            if functorch.is_batchedtensor(t):
                size *= int(inner.shape[functorch.maybe_get_bdim(t)])
            t = inner
    except (AttributeError, RuntimeError):  # pragma: no cover - another torch's internals
        return 1
    return size


def piece_size(key: Tensor, n: int, align: int = 1) -> int | None:
    """The words per piece of an eager draw of ``n`` words from ``key``, or ``None`` to draw them at once.

    ``align``: pieces start at multiples of it (4 for philox4x32: a block of four words).
    """
    if key.device.type != "cpu" or tracing():
        return None
    batch = _vmapped_batch(key)
    if batch * n < _CUT_FROM:
        return None
    words = max(1024, PIECE_WORDS // batch)
    return max(align, words - words % align)
