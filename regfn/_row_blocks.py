"""How many bytes a forward holds per row, and evaluation in blocks of rows that stay in cache.

A training forward saves tensors for its backward (a layer's input, a ReLU's
output, a dropout mask, a pooling's indices). :func:`saved_bytes_per_row`
runs the model once on two rows, with dropout on and gradients tracked, and
adds up the storage of every tensor autograd saves, the parameters left out.
For an MLP that is a few floats per unit; for a convolution, per unit and
pixel, which no count of parameters can tell. A sweep's CPU chunks are cut by
it (:func:`regfn._sweep._footprint.cache_limit`), and so are evaluations.

An evaluation runs the model on every row of the data at once. For a CNN that
is many megabytes of feature maps per configuration (the digits CNN of
``benchmarks/sweep_cnn.py``: about 43 KB a row, so 60 MB for its 1,438
training images, times the configurations of a chunk), far beyond a CPU's
caches, where every pass over them runs at the memory's speed. On a CPU,
:func:`block_rows` gives the rows a block of one configuration's evaluation
holds (:data:`EVAL_BYTES` of the training forward's footprint; the same for
every chunk size, so chunks never change a result), and :func:`outputs` runs
the model a block at a time and concatenates the outputs: the metrics are then
computed on them as before. Blocks need a model whose output for a row does
not depend on the other rows: :func:`rows_independent` checks that on four
rows (a batch-statistics layer, such as ``BatchNorm`` without running
statistics, fails it, and its evaluations keep every row at once).

Examples:
    >>> import regfn, torch
    >>> model = regfn.mlp((8, 6, 1), output="logits")
    >>> params = model.init(regfn.random.key(0))
    >>> per_row = saved_bytes_per_row(model, params, torch.zeros(5, 8))  # x, the ReLU's output, the mask, ...
    >>> per_row == 4 * 8 + 4 * 6 + (4 if regfn.random.native_status() == "on" else 1) * 6 + 4 * 6
    True
    >>> block_rows(model, params, torch.zeros(100, 8)) > 10_000  # a small MLP's blocks: 100 rows are one
    True

An eager CPU dropout's mask is float32 where regfn's C kernel draws it (:func:`regfn.random._sample.keep_mask`),
else bool; the probe measures the eager form, which may overstate what a compiled step saves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .nn import Model
from .nn._apply import apply_model
from .random import key as make_key

__all__ = [
    "EVAL_BYTES",
    "MIN_BLOCK_ROWS",
    "block_rows",
    "outputs",
    "predictions",
    "rows_independent",
    "saved_bytes_per_row",
]

PROBE_RATE = 0.5
"""The dropout rate of the probe's forward: any rate above 0, so that dropout layers save their masks."""

EVAL_BYTES = 8 * 2**20
"""One configuration's evaluation block holds rows whose training forward saves about this many bytes:
the digits CNN's eager sweep (K = 16 in chunks of 8, 2 epochs) ran 1.2x faster with its evaluations in
blocks of 128-256 images than whole (docs/benchmarks/sweep.md, "Evaluations in blocks of rows"); the MLPs
of ``benchmarks/sweep_mlp.py`` gained nothing in blocks, and this many bytes keeps them whole."""

MIN_BLOCK_ROWS = 64
"""No block holds fewer rows: each block pays the model's fixed cost per call (Python, dispatch)."""


def saved_bytes_per_row(
    model: Model, params: Mapping[str, Tensor], x: Tensor, hp: Mapping[str, Any] | None = None
) -> int | None:
    """Bytes a training forward of ``model`` saves for its backward, per row of ``x`` (its first two rows
    are run), the parameters not counted; ``None`` when that forward fails (nothing is then assumed)."""
    rows = x[:2].clone()  # its own storage: a slice of the data would count the whole data set
    if len(rows) == 0:
        return None
    leaves = {n: p.detach().requires_grad_() if p.is_floating_point() else p for n, p in params.items()}
    skip = {p.untyped_storage().data_ptr() for p in params.values()}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            apply_model(model, leaves, rows, key=make_key(0), p=PROBE_RATE, train=True, hp=hp)
    except Exception:
        return None
    return sum(saved.values()) // len(rows)


def rows_independent(
    model: Model, params: Mapping[str, Tensor], x: Tensor, hp: Mapping[str, Any] | None = None
) -> bool:
    """Whether ``model``'s evaluation output for a row does not depend on the other rows: its outputs on four
    rows of ``x`` spread over it (the first, the last and two between, so that equal neighbouring rows do not
    hide a batch statistic) at once and in two blocks of two agree (to float tolerance: a product's rounding
    may depend on how many rows it takes). ``False`` where ``x`` has fewer than four rows or the model fails.

    Examples:
        >>> import regfn, torch
        >>> mlp = regfn.mlp((3, 4, 1))
        >>> rows_independent(mlp, mlp.init(regfn.random.key(0)), torch.randn(8, 3))
        True
        >>> norm = regfn.from_module(torch.nn.BatchNorm1d(3, track_running_stats=False))  # batch statistics
        >>> rows_independent(norm, norm.init(regfn.random.key(0)), torch.randn(8, 3))
        False
    """
    if len(x) < 4:
        return False
    four = x[torch.linspace(0, len(x) - 1, 4).round().long()]
    try:
        with torch.no_grad():
            whole = apply_model(model, params, four, train=False, hp=hp)
            halves = [apply_model(model, params, four[i : i + 2], train=False, hp=hp) for i in (0, 2)]
            if not all(
                isinstance(t, Tensor) and t.ndim and len(t) == n for t, n in [(whole, 4), *((h, 2) for h in halves)]
            ):
                return False
            joined = torch.cat(halves)
    except Exception:
        return False
    if joined.shape != whole.shape or joined.dtype != whole.dtype:
        return False
    if not whole.is_floating_point():
        return bool(torch.equal(whole, joined))
    return bool(torch.allclose(whole, joined, rtol=1e-4, atol=1e-6, equal_nan=True))


def block_rows(
    model: Model, params: Mapping[str, Tensor], x: Tensor, hp: Mapping[str, Any] | None = None
) -> int | None:
    """The rows a block of one configuration's evaluation holds on data like ``x`` (module docstring), or
    ``None``: every row at once (off a CPU, where the probe fails, or for a model whose rows are not
    independent). A pure function of the model, one configuration's ``params`` and the kind of data (a few
    of its rows): never of the data's length (data of fewer rows runs in one block anyway), of a chunk's
    size or of a timing, so that chunks never change a result."""
    if x.device.type != "cpu":
        return None
    per_row = saved_bytes_per_row(model, params, x, hp)
    if per_row is None or not rows_independent(model, params, x, hp):
        return None
    return max(MIN_BLOCK_ROWS, EVAL_BYTES // max(1, per_row))


def outputs(
    model: Model, params: Mapping[str, Tensor], x: Tensor, hp: Mapping[str, Any] | None, rows: int | None
) -> Tensor:
    """``model``'s evaluation output (dropout off) on ``x``, ``rows`` rows at a time (``None``: all at once).

    Examples:
        >>> import regfn, torch
        >>> mlp = regfn.mlp((3, 4, 1))
        >>> params, x = mlp.init(regfn.random.key(0)), torch.randn(10, 3)
        >>> torch.allclose(outputs(mlp, params, x, None, 4), outputs(mlp, params, x, None, None))
        True
    """
    if rows is None or len(x) <= rows:
        return apply_model(model, params, x, train=False, hp=hp)
    return torch.cat([apply_model(model, params, x[i : i + rows], train=False, hp=hp) for i in range(0, len(x), rows)])


def predictions(model: Model, params: Mapping[str, Tensor], x: Tensor, hp: Mapping[str, Any] | None = None) -> Tensor:
    """``model``'s output on ``x`` with dropout off and without gradients, in the blocks of :func:`block_rows`
    (a trained model called on new data, a scikit-learn estimator's predictions).

    Examples:
        >>> import regfn, torch
        >>> mlp = regfn.mlp((3, 4, 1))
        >>> params, x = mlp.init(regfn.random.key(0)), torch.randn(10, 3)
        >>> torch.equal(predictions(mlp, params, x), mlp.apply(params, x))  # 10 rows: one block
        True
    """
    with torch.no_grad():
        rows = None if len(x) <= MIN_BLOCK_ROWS else block_rows(model, params, x, hp)  # no probe for a few rows
        return outputs(model, params, x, hp, rows)
