"""CPU draws through a small C kernel: the same words as the tensor ciphers, about ten times sooner eagerly.

The same library holds eager dropout's masked division, ``where(mask, x / keep, 0)``
in one pass (:func:`regfn.random._native_select.dropout_select`, which :func:`regfn.dropout` calls): the same bits;
and eager Adam's moments and denominator in one pass (``regfn_adam_moments``, which
:mod:`regfn.optim._fused` calls).

Eagerly, a threefry2x32 word is some 120 tensor operations (20 rounds of
adds, shifts, ORs and XORs), each a pass over memory at about 0.2 ns a word
on one core: a vmapped dropout mask of a million words costs 25-45 ms, most
of an eager training step of issue #22's digits MLP. The same rounds in a
loop of C, compiled once per machine by the system's C compiler, keep each
word in registers.

The kernel is plain C99 (no Python or torch headers), built on first use
with ``cc -O3 -march=native`` into regfn's cache directory
(``REGFN_CACHE_DIR``, else ``$XDG_CACHE_HOME/regfn``, else
``~/.cache/regfn``), under a name that hashes the source, the compiler, the
flags and the CPU's feature flags, and loaded with :mod:`ctypes`. A vmapped
draw, ``split`` or ``fold_in`` passes every configuration's key to one call:
eagerly by taking the batched key words apart (:mod:`regfn._unbatch`), in
traced code through torch custom operators (``regfn::threefry_bits32``,
``regfn::threefry_pairs`` and ``regfn::philox_words``; ``regfn::threefry_fold``
and ``regfn::philox_fold`` for ``fold_in`` of a traced counter, such as a
compiled step's epoch) with vmap rules.

Compiled CPU code calls those operators (inductor keeps them as extern
calls: a smaller graph that compiles sooner) once an eager draw has loaded the
kernel (:func:`usable`). Where the kernel is not used, the tensor ciphers run,
with the same words: on CUDA, in traces made before the kernel was loaded,
without a working C compiler, on a torch without ``torch.library.register_vmap``
(before 2.5), and when ``REGFN_NATIVE=0``. :func:`status` says which.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._unbatch import unbatched_under_grad
from ._host import tracing
from ._philox import _BUMP, _M0, _M1, ROUNDS
from ._threefry import _PARITY, _ROTATIONS
from ._validate import MASK32

__all__ = ["philox_words", "status", "threefry_bits32"]


def _threefry_rounds() -> str:
    """threefry2x32's 20 rounds as C statements on ``x0, x1`` with key words ``ks[0..2]``."""
    lines = []
    for i in range(5):
        mixes = " ".join(f"MIX({r})" for r in _ROTATIONS[i % 2])
        lines.append(f"            {mixes} x0 += ks[{(i + 1) % 3}]; x1 += ks[{(i + 2) % 3}] + {i + 1}u;")
    return "\n".join(lines)


def _threefry_function(name: str, width: int, store: str) -> str:
    """A C function over every counter ``start .. start + n - 1`` of each key: ``width`` int32 out per counter."""
    return f"""
void {name}(const int32_t *kw, int64_t keys, int64_t n, int64_t start, int32_t *out) {{
    for (int64_t b = 0; b < keys; ++b) {{
        const uint32_t ks[3] = {{(uint32_t)kw[2 * b], (uint32_t)kw[2 * b + 1],
                                (uint32_t)kw[2 * b] ^ (uint32_t)kw[2 * b + 1] ^ {_PARITY:#x}u}};
        for (int64_t j = 0; j < n;) {{  /* a stretch of counters with one high word: a 32-bit loop that vectorizes */
            const uint64_t first = (uint64_t)(start + j);
            const uint32_t hi = (uint32_t)(first >> 32), lo = (uint32_t)first;
            const int64_t left = n - j, room = (int64_t)(0x100000000ull - lo);
            const int64_t len = left < room ? left : room;
            int32_t *o = out + {width} * (b * n + j);
            for (int64_t m = 0; m < len; ++m) {{
                uint32_t x0 = hi + ks[0];
                uint32_t x1 = lo + (uint32_t)m + ks[1];
{_threefry_rounds()}
                {store}
            }}
            j += len;
        }}
    }}
}}
"""


_SOURCE = f"""
#include <math.h>
#include <stdint.h>

#define MIX(r) x0 += x1; x1 = (x1 << (r)) | (x1 >> (32 - (r))); x1 ^= x0;

/* threefry2x32 of the counters i = start .. start + n - 1, as (i >> 32, i mod 2**32), for each of `keys` keys
   (two int32 words each); out is row-major. bits32: y0 ^ y1 (jax.random.bits's word i), keys x n int32;
   pairs: (y0, y1) (split's new key i, fold_in's), keys x n x 2 int32. */
{_threefry_function("regfn_threefry_bits32", 1, "o[m] = (int32_t)(x0 ^ x1);")}
{_threefry_function("regfn_threefry_pairs", 2, "o[2 * m] = (int32_t)x0; o[2 * m + 1] = (int32_t)x1;")}
/* bits32's words 0 .. rows * cols - 1 (rows * cols <= 2**32: one 32-bit counter word) of each key stored column
   by column, word r * cols + c at [c][r]: keys x cols x rows int32 (_native_cols.py). */
void regfn_threefry_bits32_cols(const int32_t *kw, int64_t keys, int64_t rows, int64_t cols, int32_t *out) {{
    for (int64_t b = 0; b < keys; ++b) {{
        const uint32_t ks[3] = {{(uint32_t)kw[2 * b], (uint32_t)kw[2 * b + 1],
                                (uint32_t)kw[2 * b] ^ (uint32_t)kw[2 * b + 1] ^ {_PARITY:#x}u}};
        for (int64_t c = 0; c < cols; ++c) {{
            int32_t *o = out + (b * cols + c) * rows;
            for (int64_t r = 0; r < rows; ++r) {{
                uint32_t x0 = ks[0];
                uint32_t x1 = (uint32_t)(r * cols + c) + ks[1];
{_threefry_rounds()}
                o[r] = (int32_t)(x0 ^ x1);
            }}
        }}
    }}
}}
/* Dropout's where(mask, x / keep[o], 0) over `outer` x `inner` float32 elements, one keep per outer index:
   IEEE division (no -ffast-math), +0 where the mask is 0, as torch's CPU div and where give. */
void regfn_dropout_select(const float *x, const uint8_t *mask, const float *keep, int64_t outer, int64_t inner,
                          float *out) {{
    for (int64_t o = 0; o < outer; ++o) {{
        const float k = keep[o];
        const float *xo = x + o * inner;
        const uint8_t *mo = mask + o * inner;
        float *r = out + o * inner;
        for (int64_t i = 0; i < inner; ++i) r[i] = mo[i] ? xo[i] / k : 0.0f;
    }}
}}

/* Adam's moments and denominator in one pass over `outer` x `inner` float32 elements, with the scalars
   s[5 o .. 5 o + 4] = (w1 = 1 - b1, b2, w2 = 1 - b2, k2, eps_bc1) of outer index o:
   m' = lerp(m, g, w1) (torch's vectorised lerp: one fma), v' = fma(w2 g, g, b2 v) (torch's addcmul on this
   build), den = sqrt(v') / k2 + eps_bc1 (IEEE sqrt, which MKL's vsSqrt behind torch.sqrt misses by an ulp at
   times). m_out and v_out may be m and v (each element is read before it is written); restrict on the
   others keeps GCC's alias checks few enough to vectorise. */
void regfn_adam_moments(const float *restrict g, const float *m, const float *v, const float *restrict s,
                        int64_t outer, int64_t inner, float *m_out, float *v_out, float *restrict den) {{
    for (int64_t o = 0; o < outer; ++o) {{
        const float w1 = s[5 * o], b2 = s[5 * o + 1], w2 = s[5 * o + 2], k2 = s[5 * o + 3], e = s[5 * o + 4];
        const int small = fabsf(w1) < 0.5f;
        const float coeff = small ? w1 : w1 - 1.0f;
        const int64_t b = o * inner;
        for (int64_t i = b; i < b + inner; ++i) {{
            const float gi = g[i], mi = m[i];
            const float vi = fmaf(w2 * gi, gi, v[i] * b2);
            m_out[i] = fmaf(coeff, gi - mi, small ? mi : gi);
            v_out[i] = vi;
            den[i] = sqrtf(vi) / k2 + e;
        }}
    }}
}}

/* Words start .. start + n - 1 (start a multiple of 4) of each of `keys` philox4x32 keys (k0, k1, s0, s1):
   word 4 j + m is word m of philox4x32-10((k0, k1), (j mod 2**32, j >> 32, s0, s1)). out: keys x n int64. */
void regfn_philox_words(const int64_t *kw, int64_t keys, int64_t n, int64_t start, int64_t *out) {{
    const int64_t blocks = (n + 3) / 4;
    for (int64_t b = 0; b < keys; ++b) {{
        const uint32_t k0 = (uint32_t)kw[4 * b], k1 = (uint32_t)kw[4 * b + 1];
        const uint32_t s0 = (uint32_t)kw[4 * b + 2], s1 = (uint32_t)kw[4 * b + 3];
        int64_t *o = out + b * n;
        for (int64_t j = 0; j < blocks; ++j) {{
            const uint64_t blk = (uint64_t)(start / 4 + j);
            uint32_t c0 = (uint32_t)blk, c1 = (uint32_t)(blk >> 32), c2 = s0, c3 = s1, ka = k0, kb = k1;
            for (int r = 0; r < {ROUNDS}; ++r) {{
                const uint64_t p0 = (uint64_t){_M0:#x}u * c0, p2 = (uint64_t){_M1:#x}u * c2;
                c0 = (uint32_t)(p2 >> 32) ^ c1 ^ ka;
                c1 = (uint32_t)p2;
                c2 = (uint32_t)(p0 >> 32) ^ c3 ^ kb;
                c3 = (uint32_t)p0;
                ka += {_BUMP[0]:#x}u;
                kb += {_BUMP[1]:#x}u;
            }}
            const uint32_t w[4] = {{c0, c1, c2, c3}};
            for (int m = 0; m < 4 && 4 * j + m < n; ++m) o[4 * j + m] = (int64_t)w[m];
        }}
    }}
}}
"""

# no -ffast-math: IEEE arithmetic; no contraction into fused multiply-adds but the kernel's own fmaf calls;
# sqrtf without errno, so that it vectorises
_FLAGS = ("-O3", "-std=c99", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno")
_NATIVE_FLAGS: tuple[str, ...] = ("-march=native",)  # tried first; the cache name includes the CPU's feature flags
if platform.machine().lower() in ("x86_64", "amd64"):  # AVX-512's rotate: 0.84 against 1.33 ms a million words
    _NATIVE_FLAGS += ("-mprefer-vector-width=512",)


def _cache_dir() -> pathlib.Path:
    explicit = os.environ.get("REGFN_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "regfn"


def _compiler() -> str | None:
    """The C compiler: ``CC``, else Python's own, else ``cc``/``gcc``/``clang`` on the PATH."""
    for candidate in (os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc", "clang"):
        if candidate:
            found = shutil.which(candidate.split()[0])
            if found:
                return found
    return None


def _cpu_flags() -> str:
    """What ``-march=native`` depends on: the CPU's feature flags where Linux lists them, else the machine."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def _build(compiler: str, flags: tuple[str, ...]) -> pathlib.Path | None:
    """The kernel's shared library, compiled now unless the cache has it; ``None`` if the compiler fails."""
    digest = hashlib.sha256("\0".join((_SOURCE, compiler, *flags, _cpu_flags())).encode()).hexdigest()[:20]
    target = _cache_dir() / f"random_kernel_{digest}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = pathlib.Path(tmp) / "kernel.c"
        source.write_text(_SOURCE)
        built = pathlib.Path(tmp) / target.name
        done = subprocess.run(
            [compiler, *flags, str(source), "-o", str(built), "-lm"], capture_output=True, timeout=120
        )
        if done.returncode != 0 or not built.exists():
            return None
        os.replace(built, target)  # atomic: processes building at once each put a whole library there
    return target


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The loaded kernel, or ``None`` (disabled, no compiler, compiling or loading failed)."""
    if os.environ.get("REGFN_NATIVE", "1") == "0":
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    for flags in (_FLAGS + _NATIVE_FLAGS, _FLAGS):
        try:
            path = _build(compiler, flags)
            if path is None:
                continue
            lib = ctypes.CDLL(str(path))
        except (OSError, subprocess.SubprocessError):
            continue
        for name in (
            "regfn_threefry_bits32",
            "regfn_threefry_pairs",
            "regfn_philox_words",
            "regfn_threefry_bits32_cols",
        ):
            function = getattr(lib, name)
            function.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
            function.restype = None
        select = lib.regfn_dropout_select
        select.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 2 + [ctypes.c_void_p]
        select.restype = None
        moments = lib.regfn_adam_moments
        moments.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 3
        moments.restype = None
        return lib
    return None


def _loaded() -> ctypes.CDLL:
    """The kernel, for code reached only where :func:`usable` said it is loaded."""
    lib = _library()
    if lib is None:
        raise RuntimeError("regfn.random: the C kernel is not loaded (see regfn.random.native_status())")
    return lib


@dataclasses.dataclass(frozen=True)
class _Kernel:
    """One C function and the operator that runs it: key words of shape ``(..., key_width)`` in, ``(..., n)``
    words out (``(..., n, 2)`` where ``pairs``)."""

    function: str
    key_width: int
    dtype: torch.dtype
    pairs: bool = False

    def shape(self, kw: Tensor, n: int) -> tuple[int, ...]:
        return (*kw.shape[:-1], n, 2) if self.pairs else (*kw.shape[:-1], n)

    def run(self, kw: Tensor, n: int, start: int) -> Tensor:
        kw = kw.to(self.dtype).contiguous()
        out = torch.empty(self.shape(kw, n), dtype=self.dtype)
        if out.numel():
            getattr(_loaded(), self.function)(kw.data_ptr(), kw.numel() // self.key_width, n, start, out.data_ptr())
        return out


_KERNELS = {
    "threefry_bits32": _Kernel("regfn_threefry_bits32", 2, torch.int32),
    "threefry_pairs": _Kernel("regfn_threefry_pairs", 2, torch.int32, pairs=True),
    "philox_words": _Kernel("regfn_philox_words", 4, torch.int64),
}


@dataclasses.dataclass(frozen=True)
class _Fold:
    """``fold_in`` with a tensor ``data`` (a traced step counter) by the kernel: the block at counter ``data``
    (times ``per_block``) of each key, ``(..., key_width)`` words in and out (``data``: 0-d, or the keys'
    leading shape)."""

    kernel: _Kernel
    per_block: int  # the kernel's counter step per key block: threefry's pair 1, philox's four words 4

    def run(self, kw: Tensor, data: Tensor) -> Tensor:
        k = self.kernel
        kw = kw.to(k.dtype).contiguous()
        lead, width = kw.shape[:-1], k.key_width
        starts = (data.to(torch.int64) & MASK32) * self.per_block
        out = torch.empty(*lead, width, dtype=k.dtype)
        if out.numel() == 0:
            return out
        function, size = getattr(_loaded(), k.function), kw.element_size()
        if starts.ndim == 0:  # one counter for every key: one call
            function(kw.data_ptr(), kw.numel() // width, self.per_block, int(starts), out.data_ptr())
            return out
        for b, start in enumerate(starts.expand(lead).reshape(-1).tolist()):  # a counter per key (data vmapped)
            function(kw.data_ptr() + b * width * size, 1, self.per_block, start, out.data_ptr() + b * width * size)
        return out


_FOLDS = {
    "threefry_fold": _Fold(_KERNELS["threefry_pairs"], 1),
    "philox_fold": _Fold(_KERNELS["philox_words"], 4),
}


def can_define() -> bool:
    """Whether this torch has what :func:`define` needs (``torch.library.custom_op`` and ``register_vmap``)."""
    return hasattr(torch.library, "custom_op") and hasattr(torch.library, "register_vmap")


def define(name: str, fn: Callable[..., Tensor], fake: Callable[..., Tensor], rule: Callable[..., tuple],
           schema: str | None = None) -> Any:  # fmt: skip
    """Custom operator ``regfn::<name>`` running ``fn`` on CPU tensors, with its fake (shapes for tracing) and
    vmap ``rule`` (called as ``rule(op, info, in_dims, *args)``); raises where the name is taken."""
    op = torch.library.custom_op(f"regfn::{name}", fn, mutates_args=(), device_types="cpu", schema=schema)
    op.register_fake(fake)
    torch.library.register_vmap(op, functools.partial(rule, op))
    return op


def _operators() -> dict[str, Any] | None:
    """A custom operator ``regfn::<name>`` per kernel, with its fake and vmap rules; ``None`` on a torch without
    ``torch.library.register_vmap``, or where the names are taken (this module imported a second time)."""
    if not can_define():
        return None
    ops = {}
    try:
        for name, kernel in _KERNELS.items():
            fake = functools.partial(lambda kw, n, start, k: kw.new_empty(k.shape(kw, n), dtype=k.dtype), k=kernel)
            ops[name] = define(name, kernel.run, fake, batched_keys)
        for name, fold in _FOLDS.items():
            fake = functools.partial(lambda kw, data, f: kw.new_empty(kw.shape, dtype=f.kernel.dtype), f=fold)
            ops[name] = define(name, fold.run, fake, _batched_fold)
    except RuntimeError:  # already registered: the tensor ciphers draw (the same words)
        return None
    return ops


def batched_keys(op: Callable[..., Tensor], info: object, in_dims: tuple, kw: Tensor, *sizes: int) -> tuple:
    """vmap's rule of an operator ``op(kw, *sizes)`` that takes leading batch dimensions of keys as they are:
    move vmap's to the front."""
    dim = in_dims[0]
    if dim is None:
        return op(kw, *sizes), None
    return op(kw.movedim(dim, 0), *sizes), 0


def _batched_fold(op: Callable[..., Tensor], info: Any, in_dims: tuple, kw: Tensor, data: Tensor) -> tuple:
    """vmap's rule for a fold: the batch dimension in front of the keys' words and, where batched, of ``data``
    (then shaped as the keys' leading dimensions)."""
    kw_dim, data_dim = in_dims
    kw = kw.movedim(kw_dim, 0) if kw_dim is not None else kw.expand(info.batch_size, *kw.shape)
    if data_dim is not None:
        data = data.movedim(data_dim, 0)
        data = data.reshape(*data.shape, *[1] * (kw.ndim - 1 - data.ndim)).expand(kw.shape[:-1])
    return op(kw, data), 0


_OPERATORS = _operators()


def status() -> str:
    """Whether CPU draws use the C kernel of :mod:`regfn.random._native`: ``"on"``, or why not.

    Examples:
        >>> import regfn.random as rr
        >>> rr.native_status() in ("on", "off: REGFN_NATIVE=0", "off: no C compiler built the kernel",
        ...              "off: torch.library.register_vmap needs torch >= 2.5 (or regfn.random._native was imported twice)")
        True
    """
    if _OPERATORS is None:
        return "off: torch.library.register_vmap needs torch >= 2.5 (or regfn.random._native was imported twice)"
    if os.environ.get("REGFN_NATIVE", "1") == "0":
        return "off: REGFN_NATIVE=0"
    return "on" if _library() is not None else "off: no C compiler built the kernel"


_LOADED = False  # whether the kernel is loaded: set by the first eager CPU draw, read (never built) inside traces


def usable(k: Tensor) -> bool:
    """Whether a draw from key ``k`` runs in the kernel: CPU keys, where the kernel could be built and loaded.

    Eagerly, the first such draw builds or loads the kernel. While torch
    compiles or traces, the answer is whether it is loaded already (nothing is
    built inside a trace): a sweep draws its initial weights eagerly, so its
    compiled step calls the operators, which inductor keeps as extern calls (a
    smaller graph: issue #22's digits MLP compiled cold in 31.9 s instead of
    46.9 s, docs/benchmarks/sweep.md); a function compiled before any eager draw
    traces the tensor cipher instead. The words are the same either way.
    """
    return k.device.type == "cpu" and loaded()


def loaded() -> bool:
    """Whether the kernel is loaded; outside traces the first call builds or loads it (see :func:`usable`)."""
    global _LOADED
    if _OPERATORS is None:
        return False
    if not _LOADED and not tracing():
        _LOADED = _library() is not None
    return _LOADED


def _draw(name: str, k: Tensor, kw: Tensor, n: int, start: int) -> Tensor | None:
    """Kernel ``name``'s words for key words ``kw`` where a draw from ``k`` runs in the kernel, else ``None``.

    Eagerly the kernel runs directly, vmapped key words taken apart by
    :func:`regfn._unbatch.unbatched` (the operator's vmap rule costs about
    150-200 us more a call); traced code calls operator ``regfn::<name>``.
    """
    if _OPERATORS is None or not usable(k):
        return None
    if not tracing():
        kernel = _KERNELS[name]
        out = unbatched_under_grad(lambda w, _dims: kernel.run(w, n, start), (kw,))
        if out is not None:
            return out
    return _OPERATORS[name](kw, n, start)


def threefry_bits32(k: Tensor, kw: Tensor, n: int) -> Tensor | None:
    """``bits32``'s words ``0 .. n - 1`` for threefry key words ``kw`` (int32), by the kernel; ``None`` where not used."""
    return _draw("threefry_bits32", k, kw, n, 0)


def threefry_pairs(k: Tensor, kw: Tensor, n: int, start: int = 0) -> tuple[Tensor, Tensor] | None:
    """``hash_counters``'s two int32 words for counters ``start .. start + n - 1``, by the kernel, or ``None``."""
    pairs = _draw("threefry_pairs", k, kw, n, start)
    return None if pairs is None else (pairs[..., 0], pairs[..., 1])


def philox_words(k: Tensor, kw: Tensor, n: int, start: int = 0) -> Tensor | None:
    """A philox key's words ``start .. start + n - 1`` (``start`` a multiple of 4) for its words ``kw`` (int64),
    by the kernel; ``None`` where not used."""
    return _draw("philox_words", k, kw, n, start)


def fold(k: Tensor, kw: Tensor, data: Tensor) -> Tensor | None:
    """``fold_in(k, data)``'s words for a tensor ``data`` (``_threefry.fold_in``'s pair, int32, or
    ``_philox.fold_in``'s four words, int64) from key words ``kw``, by the kernel; ``None`` where it is not used.

    Traced code (a compiled step folding its epoch and batch counters into its
    key) calls operator ``regfn::threefry_fold`` or ``regfn::philox_fold``: one
    extern call instead of the cipher's unrolled rounds in the graph, which
    took about 7 s of a cold compile (issue #22's digits MLP: 16.6 -> 9.9 s).
    """
    if _OPERATORS is None or not usable(k):
        return None
    return _OPERATORS["philox_fold" if k.shape[-1] == 4 else "threefry_fold"](kw, data)
