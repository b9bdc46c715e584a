"""Words stored column by column: a draw for a ``(rows, cols)`` shape laid out as ``(cols, rows)`` in memory.

A compiled step that computes an MLP's activations features first (``(features,
rows)`` in memory, :func:`regfn.nn._mlp.features_first`) wants its dropout
masks in the same layout: a mask laid out row by row is read across its rows
there, a gather for every vector of the fused kernel (the tutorial's sweep step
took 1.7x longer). The masks themselves must not change: word ``r * cols + c``
of the key's stream is still the mask of element ``(r, c)``, only its place in
memory moves to ``[c, r]``.

:func:`words_cols` draws them with the C kernel of :mod:`._native` (threefry's
written in place by ``regfn_threefry_bits32_cols``, philox's transposed once), inside custom operators ``regfn::threefry_bits32_cols`` and
``regfn::philox_words_cols`` (with vmap rules and fake shapes, so inductor keeps
them as extern calls); ``None`` where the kernel is not used, and the caller
draws row by row instead (the same values).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._unbatch import unbatched_under_grad
from ._host import tracing
from ._native import _KERNELS, _Kernel, _loaded, batched_keys, can_define, define, loaded, usable

__all__ = ["words_cols"]


def _transposed(kernel: _Kernel, kw: Tensor, rows: int, cols: int) -> Tensor:
    """``kernel``'s words ``0 .. rows * cols - 1`` of each key, drawn row by row, then stored as ``(..., cols,
    rows)``: word ``r * cols + c`` at ``[..., c, r]`` (philox's four words a block)."""
    words = kernel.run(kw, rows * cols, 0)
    return words.unflatten(-1, (rows, cols)).transpose(-1, -2).contiguous()


def _threefry_cols(kw: Tensor, rows: int, cols: int) -> Tensor:
    """:func:`_transposed`'s layout for threefry's ``bits32`` words, written there by the C kernel
    (``regfn_threefry_bits32_cols``: a transpose afterwards cost as much as the draw); past 2**32 words a key
    (the C loop's counters are 32-bit), drawn and transposed."""
    if rows * cols > 2**32:
        return _transposed(_KERNELS["threefry_bits32"], kw, rows, cols)
    kw = kw.to(torch.int64).contiguous()
    out = torch.empty((*kw.shape[:-1], cols, rows), dtype=torch.int32)
    if out.numel():
        _loaded().regfn_threefry_bits32_cols(kw.data_ptr(), kw.numel() // 2, rows, cols, out.data_ptr())
    return out


_SCHEMA = "(Tensor kw, int rows, int cols) -> Tensor"
_RUNS: dict[str, tuple[Callable[[Tensor, int, int], Tensor], torch.dtype]] = {
    "threefry_bits32_cols": (_threefry_cols, torch.int32),
    "philox_words_cols": (functools.partial(_transposed, _KERNELS["philox_words"]), torch.int64),
}


def _operators() -> dict[str, Any] | None:
    """Operator ``regfn::<name>`` per column draw; ``None`` where torch lacks ``register_vmap`` or the names
    are taken (this module imported a second time)."""
    if not can_define():
        return None
    ops = {}
    try:
        for name, (run, dtype) in _RUNS.items():
            fake = functools.partial(
                lambda kw, rows, cols, d: kw.new_empty((*kw.shape[:-1], cols, rows), dtype=d), d=dtype
            )
            ops[name] = define(name, run, fake, batched_keys, schema=_SCHEMA)
    except (RuntimeError, ValueError):  # already registered: words are drawn row by row (the same values)
        return None
    return ops


_OPERATORS = _operators()


def ready() -> bool:
    """Whether column draws run in the C kernel now (the operators exist and the kernel is loaded; inside a
    trace nothing is built, see :func:`regfn.random._native.usable`)."""
    return _OPERATORS is not None and loaded()


def words_cols(k: Tensor, rows: int, cols: int) -> Tensor | None:
    """Key ``k``'s first ``rows * cols`` words (``bits32``'s for threefry, int32; philox's, int64), as
    ``(..., cols, rows)``: ``out.mT`` equals the row-major ``(rows, cols)`` draw; ``None`` where the C kernel is
    not used.

    Examples:
        >>> import torch, regfn.random as rr
        >>> from regfn.random import _sample, _threefry
        >>> k = rr.key(0)
        >>> out = words_cols(k, 3, 2)
        >>> out is None or bool(torch.equal(out.mT, _sample._bits32(k, (3, 2))))
        True
    """
    name = "philox_words_cols" if k.shape[-1] == 4 else "threefry_bits32_cols"
    if _OPERATORS is None or not usable(k):
        return None
    if not tracing():
        run = _RUNS[name][0]
        out = unbatched_under_grad(lambda w, _dims: run(w, rows, cols), (k,))
        if out is not None:
            return out
    return _OPERATORS[name](k, rows, cols)
