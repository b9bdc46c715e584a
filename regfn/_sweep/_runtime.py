"""What a sweep sets in the process while it runs, and restores: torch's CPU threads, dynamo's recompile limit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .._malloc import heap_for_step_buffers

__all__ = ["cpu_threads", "room_to_recompile"]


@contextlib.contextmanager
def room_to_recompile(compiled: bool) -> Iterator[None]:
    """Lift dynamo's per-function recompile limit for the length of a compiled sweep.

    Every program compiles the same functions (``step``, ``evaluate_config``,
    ...) for its spec and chunk size; past dynamo's default of 8 versions a
    process that runs many sweeps would silently fall back to eager code. An
    eager sweep leaves dynamo unimported (about a second in a fresh process).
    """
    if not compiled:
        yield
        return
    import torch._dynamo.config as dynamo_config

    names = [n for n in ("recompile_limit", "cache_size_limit") if hasattr(dynamo_config, n)]
    with dynamo_config.patch(dict.fromkeys(names, 1024)):
        yield


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run on ``n`` CPU threads (``None``: torch's setting), step buffers from the heap; restore the count after.

    Examples:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> with cpu_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
        heap_for_step_buffers()  # CPU steps' buffers reused from the heap (regfn/_malloc.py)
    try:
        yield
    finally:
        torch.set_num_threads(old)
