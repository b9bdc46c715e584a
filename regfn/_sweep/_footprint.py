"""The most rows a CPU chunk holds so that its steps stay in cache, from the activations a step saves.

:func:`regfn._row_blocks.saved_bytes_per_row` measures the bytes one
configuration's training forward saves per row (run on two rows);
:func:`cache_limit` turns it into the most rows a CPU chunk holds
(:func:`regfn._sweep._plan.cpu_chunk_limit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from .._row_blocks import saved_bytes_per_row
from ..nn import Model
from . import _auto
from ._plan import amortizing_rows, cpu_chunk_limit

__all__ = ["cache_limit"]


def cache_limit(
    model: Model,
    params: Mapping[str, Tensor],
    x: Tensor,
    hp: Mapping[str, Any] | None,
    w: _auto.Workload,
    compiled: bool,
) -> int | None:
    """The most rows of the sweep ``w`` a CPU chunk holds so that its steps stay in cache (``None``: no limit;
    :func:`~regfn._sweep._plan.cpu_chunk_limit`): ``model`` with one configuration's ``params`` on the data
    ``x``, its step's costs those of :mod:`regfn._sweep._auto` (``compiled`` or eager). Where the step's fixed
    cost alone asks for every row in one chunk (the tutorial's MLP, a scikit-learn search), the model is not run."""
    fixed, per_config = _auto.step_seconds(w, compiled)
    if amortizing_rows(fixed, per_config) >= w.configs:
        return None  # what cpu_chunk_limit gives for any activations
    per_row = saved_bytes_per_row(model, params, x, hp)
    if per_row is None:
        return None
    return cpu_chunk_limit(w.configs, per_row * w.rows_per_step, fixed, per_config)
