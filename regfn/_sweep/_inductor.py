"""A cheaper cold compile: inductor's dtype-rule handler set up once, not once per use.

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
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

__all__ = ["rules_set_up_once"]

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
