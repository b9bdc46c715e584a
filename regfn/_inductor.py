"""A cheaper cold compile: inductor's dtype-rule handler set up once, its small instruction probes answered, and the
CPU steps' compile options.

torch's inductor builds a ``DtypePropagationOpsHandler`` for every value it
generates code for. The class is a singleton (``__new__`` returns one
instance), but its ``__init__`` still runs on every construction: it sets
some 300 rules with ``setattr`` and checks them against ``dir(self)``. A
compiled sweep's step constructs it about 160,000 times, 15-18% of a cold
compile on a CPU (issue #22's digits MLP: 86 s, 71 s with the rules set up
once; docs/benchmarks/sweep.md). pytorch/pytorch#192820 (August 2026) makes
the set-up run once upstream; torch 2.13.0 does not have it.

:func:`rules_set_up_once` does the same for the duration of a sweep's
compile: the first construction sets the rules on the singleton as before,
later ones keep them. It changes nothing where the class is not such a
singleton (a torch with the fix, or without the class), and it restores the
original ``__init__`` afterwards.

:func:`known_probes_answered` answers, for the duration of a sweep's compile,
inductor's three small instruction probes (does the compiler build and the
loader load one AVX-512 BF16, one AVX-512 VNNI and one AMX intrinsic: six
compiler runs of about 0.35 s each, some probes asked twice, 2.1 s of the
digits CNN's 14.3 s cold compile; then six child processes that load the
results, 0.03 s each in every later process). It answers only where the
full probe of the vector instructions is redundant too (below: GCC 11+ or
clang 12+ on x86-64 Linux, which build and link each of them), and only
after inductor has asked the CPU (it probes only what the CPU reports), so
the answer is the one the compiler run would give. Any other probe (AMX's
FP16 needs GCC 13) still compiles. :func:`cheaper_cold_compile` enters both
contexts (around a sweep's warm-up), :func:`first_call_cheaper` around the first
call of ``regfn.train``'s compiled step.

:func:`cpu_step_options` are the ``torch.compile`` options of a sweep's
steps on a CPU (and of ``regfn.train(compile=True)``'s step there), two more
cuts of a cold compile that leave the kernels and their bits as they are
(the digits MLP of issue #22: 30.7 -> 19 s cold, 4.8 -> 3.4 s in a second
process; docs/benchmarks/sweep.md):

- ``cpp_wrapper``: the step's kernels and its wrapper in one C++ file, one
  compiler run instead of one per kernel (each pays about 0.5 s to load
  ATen's vectorised headers, precompiled or not);
- ``cpp.vec_isa_ok``: inductor decides which vector instructions it may use
  (AVX2, AVX-512, ...) by compiling ATen's vector headers once per
  candidate and loading the result in a child process: about 7 s per new
  cache directory and 1.2 s in every later process on an AVX-512 machine.
  Where the CPU reports the instructions (inductor still asks it) and the
  compiler knows every flag inductor passes (GCC 11 or clang 12 on x86-64
  Linux), that probe can only succeed, so it is skipped; inductor's smaller
  probes (bf16, VNNI, AMX) still run. A value set by the user
  (``TORCHINDUCTOR_VEC_ISA_OK``) is left alone.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "cheaper_cold_compile",
    "cpu_step_options",
    "first_call_cheaper",
    "known_probes_answered",
    "rules_set_up_once",
]

_KNOWS_INDUCTOR_X86_FLAGS = {"gcc": 11, "clang": 12}
"""The first major version of each compiler that accepts every x86 flag inductor passes (AMX's: GCC 11, clang 12)."""

_DONE = "_regfn_rules_set_up"


def _handler_class() -> Any:
    """inductor's ``DtypePropagationOpsHandler`` where it is the singleton described above, else ``None``."""
    try:
        module = importlib.import_module("torch._inductor.dtype_propagation")
    except ImportError:  # pragma: no cover - a torch without inductor's module
        return None
    cls = getattr(module, "DtypePropagationOpsHandler", None)
    if cls is None or "_instance" not in vars(cls) or "__new__" not in vars(cls):
        return None
    return cls


@contextlib.contextmanager
def rules_set_up_once() -> Iterator[None]:
    """Within the block, inductor's dtype-rule singleton runs its set-up once (see the module docstring)."""
    cls = _handler_class()
    if cls is None:
        yield
        return
    original = cls.__init__

    def set_up_once(self: Any) -> None:
        if not self.__dict__.get(_DONE):
            original(self)
            self.__dict__[_DONE] = True

    cls.__init__ = set_up_once
    try:
        yield
    finally:
        cls.__init__ = original


_KNOWN_PROBES = (
    ("VecAVX512", "_avx512_bf16_code"),
    ("VecAVX512VNNI", "_avx512_vnni_code"),
    ("VecAMX", "_amx_code"),
)
"""inductor's small probes (class, attribute holding the probe's C++ source) that :func:`known_probes_answered`
answers: intrinsics every compiler of :data:`_KNOWS_INDUCTOR_X86_FLAGS` builds."""


def _known_probe_sources(module: Any) -> frozenset[str]:
    """The sources of :data:`_KNOWN_PROBES` that ``module`` (inductor's ``cpu_vec_isa``) defines."""
    sources = (getattr(getattr(module, cls, None), attr, None) for cls, attr in _KNOWN_PROBES)
    return frozenset(s for s in sources if isinstance(s, str))


@contextlib.contextmanager
def known_probes_answered() -> Iterator[None]:
    """Within the block, inductor's small instruction probes that can only succeed here succeed without a compiler
    run (see the module docstring); every other probe runs as before, and the original is restored after."""
    try:
        module: Any = importlib.import_module("torch._inductor.cpu_vec_isa")
    except ImportError:  # pragma: no cover - a torch without inductor's module
        module = None
    vec_isa: Any = getattr(module, "VecISA", None)
    original = getattr(vec_isa, "check_build", None)
    known = _known_probe_sources(module)
    if original is None or not known or not _vector_probe_redundant(respect_user=False):
        yield
        return

    def check_build(self: Any, code: str) -> bool:
        return True if code in known else original(self, code)

    vec_isa.check_build = check_build
    try:
        yield
    finally:
        vec_isa.check_build = original


@contextlib.contextmanager
def cheaper_cold_compile() -> Iterator[None]:
    """:func:`rules_set_up_once` and :func:`known_probes_answered` together: what a sweep's compile runs within."""
    with rules_set_up_once(), known_probes_answered():
        yield


def first_call_cheaper(compiled: Callable[..., Any]) -> Callable[..., Any]:
    """``compiled`` (a ``torch.compile`` result, which compiles on its first call) with that first call inside
    :func:`cheaper_cold_compile`; later calls go straight through.

    Examples:
        >>> calls = []
        >>> fn = first_call_cheaper(lambda x: calls.append(x) or x)
        >>> fn(1), fn(2), calls
        (1, 2, [1, 2])
    """
    done = [False]

    def call(*args: Any, **kwargs: Any) -> Any:
        if done[0]:
            return compiled(*args, **kwargs)
        with cheaper_cold_compile():
            out = compiled(*args, **kwargs)
        done[0] = True
        return out

    return call


def cpu_step_options() -> dict[str, Any]:
    """``torch.compile`` options for a sweep's steps on a CPU (see the module docstring).

    Examples:
        >>> cpu_step_options()["cpp_wrapper"]
        True
    """
    options: dict[str, Any] = {"cpp_wrapper": True}
    if _vector_probe_redundant():
        options["cpp.vec_isa_ok"] = True
    known = _inductor_options()  # torch.compile rejects an option its torch does not have
    return {name: value for name, value in options.items() if name in known}


def _inductor_options() -> set[str]:
    """The names of this torch's inductor options (nested ones dotted: ``"cpp.vec_isa_ok"``)."""
    import torch._inductor.config as inductor_config

    return set(inductor_config.get_config_copy())


def _vector_probe_redundant(respect_user: bool = True) -> bool:
    """Whether inductor's compile-and-load probe of the vector instructions can only succeed here (with
    ``respect_user``, not where the user set ``cpp.vec_isa_ok``)."""
    import torch._inductor.config as inductor_config

    if respect_user and inductor_config.cpp.vec_isa_ok is not None:  # the user's choice
        return False
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    return _compiler_knows_x86_flags()


@functools.cache
def _compiler_knows_x86_flags() -> bool:
    """Whether the C++ compiler inductor uses is GCC 11+ or clang 12+ (one ``--version`` run a process)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        text = subprocess.run(
            [get_cpp_compiler(), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except Exception:  # no compiler, or a torch without this helper: inductor's own probe decides
        return False
    return _knows_x86_flags(text)


def _knows_x86_flags(version_text: str) -> bool:
    """From the first line of a compiler's ``--version``: GCC 11+ or clang 12+.

    Examples:
        >>> _knows_x86_flags("g++ (Debian 12.2.0-14+deb12u1) 12.2.0")
        True
        >>> _knows_x86_flags("g++ (GCC) 11.2.1 20210728 (Red Hat 11.2.1-1)")
        True
        >>> _knows_x86_flags("Ubuntu clang version 11.1.0-6")
        False
        >>> _knows_x86_flags("icpx (Intel(R) oneAPI DPC++/C++ Compiler) 2024.0.0")
        False
    """
    lines = version_text.strip().splitlines()
    first = lines[0] if lines else ""
    for kind, pattern in (("clang", r"clang version (\d+)\."), ("gcc", r"^\S*(?:g\+\+|gcc|c\+\+)\S*\s.*?\)\s+(\d+)\.")):
        match = re.search(pattern, first)
        if match:
            return int(match.group(1)) >= _KNOWS_INDUCTOR_X86_FLAGS[kind]
    return False
