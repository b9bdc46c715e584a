"""A cheaper cold compile: inductor's dtype-rule handler set up once, and the CPU steps' compile options.

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
from collections.abc import Iterator
from typing import Any

__all__ = ["cpu_step_options", "rules_set_up_once"]

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


def _vector_probe_redundant() -> bool:
    """Whether inductor's compile-and-load probe of the vector instructions can only succeed here."""
    import torch._inductor.config as inductor_config

    if inductor_config.cpp.vec_isa_ok is not None:  # the user's choice
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
