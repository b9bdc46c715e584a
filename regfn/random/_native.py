"""CPU draws through a small C kernel: the same words as the tensor ciphers, about ten times sooner eagerly.

The same library holds eager dropout's keep masks as float32 ones and zeros, drawn and
compared in one pass (:func:`keep`, which :func:`regfn.dropout` calls through
:func:`regfn.random._sample.keep_mask`), and eager Adam's moments and denominator in
one pass (``regfn_adam_moments``, which :mod:`regfn.optim._fused` calls). The C source
is :mod:`regfn.random._native_source`.

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
from ._native_source import FUNCTIONS, SOURCE
from ._validate import MASK32

__all__ = ["keep", "philox_words", "status", "threefry_bits32"]

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
    digest = hashlib.sha256("\0".join((SOURCE, compiler, *flags, _cpu_flags())).encode()).hexdigest()[:20]
    target = _cache_dir() / f"random_kernel_{digest}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = pathlib.Path(tmp) / "kernel.c"
        source.write_text(SOURCE)
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
        for name, args in FUNCTIONS.items():
            function = getattr(lib, name)
            function.argtypes = [ctypes.c_void_p if a == "p" else ctypes.c_int64 for a in args]
            function.restype = None
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
    """One C function and the operator that runs it: keys of shape ``(..., key_width)`` in (as stored: int64
    words; the C code reads each as uint32), ``(..., n)`` words of ``dtype`` out (``(..., n, 2)`` where
    ``pairs``)."""

    function: str
    key_width: int
    dtype: torch.dtype
    pairs: bool = False

    def shape(self, kw: Tensor, n: int) -> tuple[int, ...]:
        return (*kw.shape[:-1], n, 2) if self.pairs else (*kw.shape[:-1], n)

    def run(self, kw: Tensor, n: int, start: int) -> Tensor:
        kw = kw.to(torch.int64).contiguous()
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
        kw = kw.to(torch.int64).contiguous()
        lead, width = kw.shape[:-1], k.key_width
        starts = (data.to(torch.int64) & MASK32) * self.per_block
        out = torch.empty(*lead, width, dtype=k.dtype)
        if out.numel() == 0:
            return out
        function = getattr(_loaded(), k.function)
        if starts.ndim == 0:  # one counter for every key: one call
            function(kw.data_ptr(), kw.numel() // width, self.per_block, int(starts), out.data_ptr())
            return out
        step_in, step_out = width * kw.element_size(), width * out.element_size()
        for b, start in enumerate(starts.expand(lead).reshape(-1).tolist()):  # a counter per key (data vmapped)
            function(kw.data_ptr() + b * step_in, 1, self.per_block, start, out.data_ptr() + b * step_out)
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


def _draw(name: str, k: Tensor, n: int, start: int) -> Tensor | None:
    """Kernel ``name``'s words for keys ``k`` where a draw from ``k`` runs in the kernel, else ``None``.

    Eagerly the kernel runs directly, vmapped key words taken apart by
    :func:`regfn._unbatch.unbatched` (the operator's vmap rule costs about
    150-200 us more a call); traced code calls operator ``regfn::<name>``.
    """
    if _OPERATORS is None or not usable(k):
        return None
    if not tracing():
        kernel = _KERNELS[name]
        out = unbatched_under_grad(lambda w, _dims: kernel.run(w, n, start), (k,))
        if out is not None:
            return out
    return _OPERATORS[name](k, n, start)


def _eager_kernel(k: Tensor) -> bool:
    """Whether a kernel without an operator (keys, keep masks) draws from keys ``k`` here: eagerly, where the
    kernel serves them; traced code does without it."""
    return _OPERATORS is not None and not tracing() and usable(k)


def threefry_bits32(k: Tensor, n: int) -> Tensor | None:
    """``bits32``'s words ``0 .. n - 1`` (int32) of threefry keys ``k``, by the kernel; ``None`` where not used."""
    return _draw("threefry_bits32", k, n, 0)


def threefry_pairs(k: Tensor, n: int, start: int = 0) -> tuple[Tensor, Tensor] | None:
    """``hash_counters``'s two int32 words for counters ``start .. start + n - 1``, by the kernel, or ``None``."""
    pairs = _draw("threefry_pairs", k, n, start)
    return None if pairs is None else (pairs[..., 0], pairs[..., 1])


def threefry_keys(k: Tensor, n: int, start: int = 0) -> Tensor | None:
    """The keys ``split`` and ``fold_in`` make of threefry keys ``k``: counters ``start .. start + n - 1``'s
    pairs as regfn stores keys (``(..., n, 2)`` int64 values in ``[0, 2**32)``), by the kernel eagerly; ``None``
    where not used (traced code calls ``regfn::threefry_pairs``, then widens the words itself)."""
    if not _eager_kernel(k):
        return None
    return unbatched_under_grad(lambda w, _dims: _KEYS.run(w, n, start), (k,))


_KEYS = _Kernel("regfn_threefry_keys", 2, torch.int64, pairs=True)
"""The kernel of :func:`threefry_keys` (eager only: not in :data:`_KERNELS`, which get operators)."""


def keep(k: Tensor, n: int, keep: float | Tensor) -> Tensor | None:
    """Dropout's keep mask from keys ``k`` (threefry's or philox's), by the kernel eagerly; ``None`` where not
    used.

    ``(..., n)`` float32: 1.0 where the key's word ``i`` has its mantissa bits (``word >> 9``) below
    ``ceil(keep * 2**23)`` (``keep``: a Python float, rounded to float32 as torch rounds it, or a float32
    tensor, one per key or 0-d; :func:`regfn.random._sample._threshold`'s arithmetic, done in C), else 0.0.
    No operator: traced code compares the words itself, and the compiler fuses it.
    """
    if not _eager_kernel(k):
        return None
    keep = keep if isinstance(keep, Tensor) else torch.tensor(keep, dtype=torch.float32)
    return unbatched_under_grad(lambda w, p, _dims: _keep_run(w, p, n), (k, keep))


def _keep_run(kw: Tensor, keep: Tensor, n: int) -> Tensor:
    width = kw.shape[-1]
    kw = kw.to(torch.int64).contiguous()
    lead = kw.shape[:-1]
    keep = keep.to(torch.float32).expand(lead).contiguous()
    out = torch.empty((*lead, n), dtype=torch.float32)
    if out.numel():
        function = _loaded().regfn_philox_keep if width == 4 else _loaded().regfn_threefry_keep
        function(kw.data_ptr(), kw.numel() // width, n, 0, keep.data_ptr(), out.data_ptr())
    return out


def philox_words(k: Tensor, n: int, start: int = 0) -> Tensor | None:
    """Philox keys' words ``start .. start + n - 1`` (``start`` a multiple of 4; int64 values in ``[0, 2**32)``),
    by the kernel; ``None`` where not used."""
    return _draw("philox_words", k, n, start)


def fold(k: Tensor, data: Tensor) -> Tensor | None:
    """``fold_in(k, data)``'s words for a tensor ``data`` (``_threefry.fold_in``'s pair, int32, or
    ``_philox.fold_in``'s four words, int64), by the kernel; ``None`` where it is not used.

    Traced code (a compiled step folding its epoch and batch counters into its
    key) calls operator ``regfn::threefry_fold`` or ``regfn::philox_fold``: one
    extern call instead of the cipher's unrolled rounds in the graph, which
    took about 7 s of a cold compile (issue #22's digits MLP: 16.6 -> 9.9 s).
    """
    if _OPERATORS is None or not usable(k):
        return None
    return _OPERATORS["philox_fold" if k.shape[-1] == 4 else "threefry_fold"](k, data)
