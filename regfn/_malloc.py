"""Step buffers from the heap: glibc's mmap threshold raised once per process, before CPU training.

glibc's ``malloc`` serves a block above its mmap threshold (128 KiB when a
process starts) with pages of its own, mapped for it and returned to the
system when it is freed; the first time a larger mapped block is freed, it
raises the threshold to that block's size (up to 32 MiB), and later blocks up
to that size come from the heap, reused from step to step. Which of the two a
process is in depends on what it happened to allocate and free before. A
training step allocates buffers of a few hundred KiB to a few MiB (a sweep's
activations, times its configurations), so in a process whose threshold is
still low, every step maps, faults in and unmaps them again.

Measured (the tutorial's compiled sweep, K = 64, 200 epochs, one pinned core
of a 2-core Intel Xeon; docs/benchmarks/sweep.md): about one process in four
ran 1.5x slower throughout (0.73-0.83 s against 0.45-0.55 s, 5 of 19
processes); with one block of just under 32 MiB allocated and freed first,
none of 16 did. :func:`heap_for_step_buffers` does that once per process: an
untouched block (one ``mmap`` and ``munmap``, microseconds), the same effect
as any program freeing a large tensor. Nothing a run computes changes; where
the C library is not glibc the block is allocated and freed, and nothing else
happens.
"""

from __future__ import annotations

import torch

__all__ = ["BLOCK_BYTES", "heap_for_step_buffers"]

BLOCK_BYTES = (32 << 20) - (64 << 10)
"""The block freed: under glibc's 32 MiB ceiling on the threshold, with room for its header and alignment."""

_DONE = False


def heap_for_step_buffers() -> None:
    """Raise glibc's mmap threshold towards 32 MiB once per process (see the module docstring).

    Examples:
        >>> heap_for_step_buffers()  # once; later calls return at once
        >>> heap_for_step_buffers()
    """
    global _DONE
    if _DONE:
        return
    _DONE = True
    block = torch.empty(BLOCK_BYTES, dtype=torch.uint8)  # never touched: no page is faulted in
    del block
