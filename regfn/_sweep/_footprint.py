"""How many bytes of activations one configuration's training step holds: measured, not guessed.

A training forward saves tensors for its backward (a layer's input, a ReLU's
output, a dropout mask, a pooling's indices). :func:`saved_bytes_per_row`
runs the model once on two rows, with dropout on and gradients tracked, and
adds up the storage of every tensor autograd saves, the parameters left out.
For an MLP that is a few floats per unit; for a convolution, per unit and
pixel, which no count of parameters can tell. :func:`cache_limit` turns it
into the most rows a CPU chunk holds (:func:`regfn._sweep._plan.cpu_chunk_limit`).

Examples:
    >>> import regfn, torch
    >>> model = regfn.mlp((8, 6, 1), output="logits")
    >>> params = model.init(regfn.random.key(0))
    >>> per_row = saved_bytes_per_row(model, params, torch.zeros(5, 8))  # x, the ReLU's output, the mask, ...
    >>> per_row == 4 * 8 + 4 * 6 + (4 if regfn.random.native_status() == "on" else 1) * 6 + 4 * 6
    True

An eager CPU dropout's mask is float32 where regfn's C kernel draws it (:func:`regfn.random._sample.keep_mask`),
else bool; the probe measures the eager form, which may overstate what a compiled step saves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..nn import Model
from ..nn._apply import apply_model
from ..random import key as make_key
from . import _auto
from ._plan import amortizing_rows, cpu_chunk_limit

__all__ = ["cache_limit", "saved_bytes_per_row"]

PROBE_RATE = 0.5
"""The dropout rate of the probe's forward: any rate above 0, so that dropout layers save their masks."""


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
