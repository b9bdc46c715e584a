"""How a sweep cuts its rows into chunks: computed once, as a :class:`Plan`.

A chunk is the rows one engine call trains at once. Its size comes from a
memory estimate (``chunk_size="auto"``; on a CPU also the cache, see
:func:`cpu_chunk_limit`), the caller (an int), or all rows (``None``).
Compiled automatic chunks are padded to a few bucket sizes, so
that one compiled program serves sweeps of other sizes; under
torch.distributed automatic chunks hold at most one rank's share, so that
every rank works, while an int gives the same chunks on any number of ranks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data import Dataset

__all__ = [
    "KEEP_BYTES",
    "PRUNE_BYTES",
    "Plan",
    "amortizing_rows",
    "auto_chunk_size",
    "bucket",
    "cpu_chunk_limit",
    "kept_configs",
    "physical_memory",
    "prune_at",
]

KEEP_BYTES = 2**30
"""The most CPU memory the parameters a sweep keeps take under ``keep="auto"``: a fixed 1 GiB, not this
machine's memory, so that the same call keeps the same rows on any machine."""

PRUNE_BYTES = 2**26
"""Parameters held below 64 MiB are not pruned during a sweep (pruning ranks every row; not worth it there)."""

CACHE_BYTES = 6 * 2**20
"""About the most activations (bytes a step's forward saves for its backward) a CPU chunk holds: beyond
that, its steps ran markedly slower per configuration (a 2-core Intel Xeon with 2 MiB of L2 cache a core;
docs/benchmarks/sweep.md, "Chunks that stay in cache")."""

AMORTIZED = 20
"""A CPU chunk holds enough configurations that a step's fixed cost is at most 1/20 of its work."""

BUCKETS = tuple(sorted({s for i in range(63) for s in (2**i, 3 * 2**i)}))
"""The sizes compiled automatic chunks are padded to: powers of two and three times them."""


def _row_bytes(params: Mapping[str, Tensor]) -> int:
    return max(1, sum(p.numel() * p.element_size() for p in params.values()))


def physical_memory() -> int:
    """This machine's memory in bytes (8 GiB where it cannot tell)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def _memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return int(min(physical_memory() * 0.25, 4 * 2**30))


def auto_chunk_size(params: Mapping[str, Tensor], rows_per_step: int, n_features: int, device: torch.device) -> int:
    """How many configurations fit in memory at once (a conservative estimate).

    Per configuration it counts parameters, gradients and optimizer state
    (about 16 copies of the parameters) and activations of one step: about
    12 floats per row per unit, where the units are the input features plus
    the sizes of the 1-D parameters (the biases, i.e. the layer widths).
    """
    n_params = sum(p.numel() for p in params.values())
    width = n_features + sum(p.numel() for p in params.values() if p.ndim == 1)
    per_config = 4 * (16 * n_params + 12 * rows_per_step * width) + 4096
    return max(1, _memory_budget(device) // per_config)


def kept_configs(keep: str | int, params: Mapping[str, Tensor], configs: int, folds: int = 1) -> int | None:
    """How many configurations' final parameters a sweep keeps (the best ones), ``None`` for all.

    ``keep``: ``"all"``, ``"best"`` (one), an int, or ``"auto"``: all when
    every row's parameters (``params``, one row's: the model's) fit in
    :data:`KEEP_BYTES`, else as many of the best as fit (at least one). A
    pure function of the workload, as :mod:`regfn._sweep._auto`'s choices.

    Examples:
        >>> params = {"w": torch.zeros(1000, 1000)}  # 4 MB a row
        >>> kept_configs("auto", params, 100), kept_configs("auto", params, 1000), kept_configs("best", params, 9)
        (None, 268, 1)
        >>> kept_configs("auto", params, 100, folds=5), kept_configs(3, params, 2)
        (53, None)
    """
    n = {"all": configs, "best": 1}.get(keep, keep) if isinstance(keep, str) else keep
    if keep == "auto":
        n = max(1, KEEP_BYTES // (_row_bytes(params) * folds))
    return None if int(n) >= configs else int(n)


def prune_at(n: int, params: Mapping[str, Tensor], folds: int = 1) -> int:
    """The rows a sweep keeping the best ``n`` configurations holds before it prunes: twice ``n``'s, or
    :data:`PRUNE_BYTES` worth of rows if more.

    Examples:
        >>> prune_at(3, {"w": torch.zeros(1000, 1000)}), prune_at(3, {"w": torch.zeros(10)})
        (16, 1677721)
    """
    return max(2 * n * folds, PRUNE_BYTES // _row_bytes(params))


def bucket(limit: int, k: int) -> int:
    """The chunk size for ``k`` configurations under the memory limit ``limit``: a bucket size.

    Buckets are the powers of two and three times the powers of two (1, 2,
    3, 4, 6, 8, 12, 16, 24, ...), so padding wastes at most a third of a chunk.
    The smallest bucket that holds every configuration, if it fits the
    limit; else the largest bucket within the limit.

    Examples:
        >>> bucket(100, 5), bucket(100, 7), bucket(10, 100)
        (6, 8, 8)
    """
    fits = [s for s in BUCKETS if s <= max(limit, 1)]
    whole = next(s for s in BUCKETS if s >= k)
    return whole if whole <= limit else fits[-1]


def amortizing_rows(fixed_s: float, per_row_s: float) -> int:
    """The rows a CPU chunk needs for a step's fixed cost ``fixed_s`` to be at most 1/:data:`AMORTIZED` of its
    work (``per_row_s`` a row); a chunk may always hold this many (:func:`cpu_chunk_limit`).

    Examples:
        >>> amortizing_rows(6.9e-4, 7.2e-4)  # issue #22's digits MLP, compiled
        20
    """
    return math.ceil(AMORTIZED * fixed_s / max(per_row_s, 1e-12))


def cpu_chunk_limit(rows: int, activation_bytes: int, fixed_s: float, per_row_s: float) -> int | None:
    """The most rows a chunk of a CPU sweep holds, so that its steps run in cache (``rows``: the sweep's).

    A vmapped step's activations grow with the chunk; once they outgrow the
    core's caches, each configuration's share of the step costs more (the
    digits CNN of ``benchmarks/sweep_cnn.py``: 1.6x, compiled, in chunks of 64
    against chunks of 2). Smaller chunks pay the step's fixed cost (Python,
    dispatch, guards) more often. So a chunk holds as many rows as fit in
    :data:`CACHE_BYTES` of activations (``activation_bytes``: one row's step,
    :func:`regfn._row_blocks.saved_bytes_per_row` times its rows), or
    as many as make the fixed cost ``fixed_s`` at most 1/:data:`AMORTIZED` of
    the work (``per_row_s``: one row's seconds of a step), whichever is more;
    cut to the bucket size within it that pads the fewest rows (ties: the
    larger); ``None`` where every row fits (no limit from the cache). A pure
    function of the workload: chunks never change a result.

    Examples:
        >>> cpu_chunk_limit(32, 475_000, 6.9e-4, 7.2e-4)  # issue #22's digits MLP, compiled: 2 chunks of 16
        16
        >>> cpu_chunk_limit(32, 475_000, 3.3e-3, 1.5e-3) is None  # the same, eager: one chunk
        True
        >>> cpu_chunk_limit(64, 94_000, 6.9e-4, 2.9e-5) is None  # the tutorial's: in cache
        True
    """
    fits = CACHE_BYTES // max(1, activation_bytes)
    most = max(1, fits, amortizing_rows(fixed_s, per_row_s))
    if most >= rows:
        return None
    return min((s for s in BUCKETS if s <= most), key=lambda s: (math.ceil(rows / s) * s, -s))


def limit_of(
    chunk_size: int | str | None,
    params: Mapping[str, Tensor],
    rows_per_step: int,
    data: Dataset,
    device: torch.device,
) -> int:
    """The most configurations one chunk may hold: the memory estimate (from one row's ``params``), the
    caller's size, or all (``None``)."""
    if chunk_size == "auto":
        return auto_chunk_size(params, rows_per_step, math.prod(data.x.shape[1:]), device)
    if chunk_size is None:
        return 2**62
    if isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1:
        return chunk_size
    raise ValueError(f"regfn.sweep: chunk_size must be 'auto', None or an int >= 1, got {chunk_size!r}")


@dataclass
class Plan:
    """The chunk sizes of one sweep call.

    Attributes:
        limit: the most rows one chunk may hold (after a resume, the chunk
            size the checkpoint was written with; halved after running out
            of memory when ``adaptive``).
        bucketed: chunk sizes are bucket sizes (compiled, automatic chunks).
        fixed: the caller gave an int: the same chunks on any number of ranks.
        adaptive: halve the chunks after running out of GPU memory (automatic
            chunks on one process).
        ranks: the processes sharing the sweep.
    """

    limit: int
    bucketed: bool
    fixed: bool
    adaptive: bool
    ranks: int = 1

    def size(self, n: int, shared: bool = True) -> int:
        """The chunk size for ``n`` rows: shared out among the ranks (``shared``), or one rank's own.

        Examples:
            >>> Plan(limit=100, bucketed=True, fixed=False, adaptive=True, ranks=2).size(9)
            6
            >>> Plan(limit=4, bucketed=False, fixed=True, adaptive=False, ranks=2).size(9)
            4
        """
        share = math.ceil(n / self.ranks) if shared and not self.fixed else n
        return bucket(self.limit, share) if self.bucketed else max(1, min(self.limit, share))

    def shrink(self, chunk: int, left: int) -> int:
        """The smaller chunk size after chunks of ``chunk`` ran out of memory with ``left`` rows to go."""
        self.limit = max(1, min(chunk, left) // 2)
        return self.limit
