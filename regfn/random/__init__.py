"""Explicit random keys: threefry2x32, bit for bit ``jax.random``, or philox4x32, cheaper.

regfn draws every random number from a *key*: a tensor of uint32 words
(stored as ``torch.int64`` values in ``[0, 2**32)``; ``torch.uint32`` keys
are accepted too). Keys are split and folded, never mutated, and the same key
gives the same numbers on CPU and CUDA, eagerly, under ``torch.compile`` and
under ``torch.func.vmap``. Two implementations exist; a key's shape says
which (:func:`key_impl`), so every function takes either kind with no other
argument:

* ``key(seed)``, shape ``(2,)``: JAX's default PRNG, threefry2x32 (20
  rounds), in its "partitionable" mode (``jax_threefry_partitionable=True``,
  the default since jax 0.5) with 64-bit mode off. ``key(seed)`` is
  ``[0, seed mod 2**32]``; ``split(key, n)[i]`` and ``bits(key, shape).flat[i]``
  come from ``threefry2x32(key, (0, i))`` (both output words for a key, their
  XOR for 32 random bits); ``fold_in(key, d)`` is ``threefry2x32(key, (0, d))``.
* ``key(seed, impl="philox4x32")``, shape ``(4,)``: Random123's
  philox4x32-10, four words per cipher call where threefry gives one, and the
  generator of Triton's ``tl.randint``: ``bits(key(seed, impl="philox4x32"),
  (n, 4))[j]`` is ``tl.randint4x(seed, j)``. Keys split and fold as
  threefry's do (see :mod:`regfn.random._philox`).

The samplers (:func:`uniform`, :func:`bernoulli`, :func:`normal`) turn the
words into numbers by JAX's rules for both implementations. CPU draws run in
a small C kernel built on first use (:func:`native_status` says whether;
``REGFN_NATIVE=0`` turns it off): the same words as the tensor code that CUDA
draws use, about ten times sooner eagerly, and compiled steps that contain it
compile sooner.

Examples:
    >>> import regfn.random as rr
    >>> k = rr.key(0)
    >>> k
    tensor([0, 0])
    >>> a, b = rr.split(k)
    >>> rr.uniform(b, (3,))
    tensor([0.0073, 0.0209, 0.5814])
    >>> p = rr.key(0, impl="philox4x32")
    >>> rr.key_impl(p), rr.split(p).shape, rr.uniform(rr.fold_in(p, 1), (3,)).shape
    ('philox4x32', torch.Size([2, 4]), torch.Size([3]))
"""

from __future__ import annotations

from ._keys import fold_in, key, split
from ._native import status as native_status
from ._philox import philox4x32
from ._sample import bernoulli, bits, normal, permutation, uniform
from ._threefry import _unsigned as _unsigned  # private names other modules of regfn and the tests use
from ._threefry import _wrap32 as _wrap32
from ._threefry import threefry2x32
from ._validate import DEFAULT_IMPL, IMPLS, check_impl, key_impl
from ._validate import _check_key as _check_key

__all__ = [
    "DEFAULT_IMPL",
    "IMPLS",
    "bernoulli",
    "bits",
    "check_impl",
    "fold_in",
    "key",
    "key_impl",
    "native_status",
    "normal",
    "permutation",
    "philox4x32",
    "split",
    "threefry2x32",
    "uniform",
]
