"""Warming an engine up for a chunk size: compile on a throwaway chunk, hand over to a fallback on failure.

The loop warms each chunk size once, before its first chunk trains. A
compiled warm-up also runs the shared evaluation (training and validation
metrics) where that is compiled (on CUDA; on a CPU only the steps are), so
that every compilation happens here and is timed as ``compile_s``. Should the engine fail (a compiler error, a Triton kernel
that does not build), the sweep warns and continues with the engine the
failure names. Running out of memory is not a failure of the engine: it
propagates, so that the loop can shrink the chunks.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from .._inductor import cheaper_cold_compile
from ._engine import Engine, EngineFailed, warn

__all__ = ["Warmer", "compiled_graphs"]

_told_nothing_compiled = [False]


def compiled_graphs() -> int:
    """How many graphs dynamo has compiled in this process (``torch._dynamo``'s own counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def warn_if_nothing_compiled() -> None:
    """Warn (once a process) when a compiled warm-up left dynamo with no compiled graph at all.

    Some torch versions cannot trace the vmapped step (torch 2.4's dynamo, for
    one, gives up on it) and run it eagerly without a word; the sweep then
    says so instead of reporting a compiled run.
    """
    if compiled_graphs() == 0 and not _told_nothing_compiled[0]:
        _told_nothing_compiled[0] = True
        warn(
            f"regfn.sweep: torch.compile compiled no graph of the step on torch {torch.__version__} "
            "(dynamo could not trace it), so the sweep runs eagerly; pass compile=False to skip the attempt"
        )


class Warmer:
    """Warms ``engine`` up once per chunk size; :attr:`engine` is the engine that runs (after any fallback)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sizes: set[int] = set()
        self.seconds = 0.0

    def warm(self, hp: dict[str, Tensor]) -> Engine:
        """Warm the engine up for chunks of ``hp``'s size (once a size); the engine to run them with."""
        size = int(next(iter(hp.values())).shape[0])
        if not self.engine.needs_warm_up or size in self.sizes:
            return self.engine
        t0 = time.perf_counter()
        try:
            with cheaper_cold_compile():  # see ._inductor
                self._warm_up(hp)
        finally:
            self.seconds += time.perf_counter() - t0
        self.sizes.add(size)
        return self.engine

    def _warm_up(self, hp: dict[str, Tensor]) -> None:
        while True:
            try:
                params = self.engine.warm_up(hp)
                if self.engine.program.compiles_evaluation:  # else nothing to compile there
                    self._evaluate(params, hp)
                if self.engine.program.compiled:
                    warn_if_nothing_compiled()
                return
            except EngineFailed as failed:
                warn(f"regfn.sweep: {failed.message}")
                self.engine = failed.fallback
                if not self.engine.needs_warm_up:
                    return

    def _evaluate(self, params: dict[str, Tensor], hp: dict[str, Tensor]) -> None:
        job = self.engine.job
        self.engine.compiling(lambda: self.engine.train_metrics(params, hp))
        if job.has_val:
            self.engine.compiling(lambda: self.engine.val_metrics(params, hp))
        if job.device.type == "cuda":
            torch.cuda.synchronize(job.device)
