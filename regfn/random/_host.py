"""One key derivation on Python integers, for keys whose values the host can read.

Deriving one key (``fold_in``) eagerly is some 150 tiny tensor operations
(20 threefry rounds, or 10 philox rounds, of adds, shifts and XORs on one
or two words), each paying torch's per-operation overhead: about 0.5 ms a
key on a CPU, several a training step. On plain CPU tensors outside
``torch.compile``, ``vmap`` and ``grad`` (:func:`readable`), the same
cipher on Python integers takes microseconds and gives the same words;
everywhere else the tensor code runs (it is what compiles and vmaps).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._philox import _BUMP, _M0, _M1, ROUNDS
from ._threefry import _PARITY, _ROTATIONS
from ._validate import MASK32 as _M32

__all__ = ["philox_fold_in", "readable", "threefry_fold_in", "tracing"]


def _wrapped(t: Tensor) -> bool:
    """Whether functorch wraps ``t`` (a transform is live); True where torch cannot tell (never read then)."""
    check = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)  # private, torch >= 2.0
    return True if check is None else bool(check(t))


def _dispatch_mode_active() -> bool:
    """Whether a tensor dispatch mode is on (``make_fx``'s tracing, fake tensors): values must not be read there."""
    from torch.utils import _python_dispatch  # private; without it, assume one is on (never read)

    current = getattr(_python_dispatch, "_get_current_dispatch_mode", None)
    return current is None or current() is not None


def tracing() -> bool:
    """Whether torch is compiling, tracing or running a dispatch mode: code here is recorded, not just run."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or _dispatch_mode_active()


def readable(*tensors: Tensor) -> bool:
    """Whether every tensor is a plain CPU tensor outside any compile, trace, dispatch mode or functorch transform."""
    if tracing():
        return False
    return all(type(t) is Tensor and t.device.type == "cpu" and not _wrapped(t) for t in tensors)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def threefry_pair(k0: int, k1: int, x0: int, x1: int) -> tuple[int, int]:
    """threefry2x32 (20 rounds) of the counter ``(x0, x1)`` under key ``(k0, k1)``, on uint32 ints."""
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0, x1 = (x0 + ks[0]) & _M32, (x1 + ks[1]) & _M32
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = (x0 + x1) & _M32
            x1 = _rotl(x1, r) ^ x0
        x0 = (x0 + ks[(i + 1) % 3]) & _M32
        x1 = (x1 + ks[(i + 2) % 3] + i + 1) & _M32
    return x0, x1


def philox_block(c: tuple[int, int, int, int], k0: int, k1: int) -> tuple[int, int, int, int]:
    """philox4x32-10 of the counter ``c`` under key ``(k0, k1)``, on uint32 ints."""
    c0, c1, c2, c3 = c
    for _ in range(ROUNDS):
        p0, p2 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = (p2 >> 32) ^ c1 ^ k0, p2 & _M32, (p0 >> 32) ^ c3 ^ k1, p0 & _M32
        k0, k1 = (k0 + _BUMP[0]) & _M32, (k1 + _BUMP[1]) & _M32
    return c0, c1, c2, c3


def threefry_fold_in(k: Tensor, d: int) -> Tensor:
    """``fold_in`` of a threefry2x32 key (CPU, readable) and a uint32 ``d``: ``threefry2x32(key, (0, d))``."""
    k0, k1 = (int(w) & _M32 for w in k.tolist())
    return torch.tensor(threefry_pair(k0, k1, 0, d & _M32), dtype=torch.int64)


def philox_fold_in(k: Tensor, d: int) -> Tensor:
    """``fold_in`` of a philox4x32 key (CPU, readable) and a uint32 ``d``: the key's block ``d``."""
    k0, k1, s0, s1 = (int(w) & _M32 for w in k.tolist())
    return torch.tensor(philox_block((d & _M32, 0, s0, s1), k0, k1), dtype=torch.int64)
