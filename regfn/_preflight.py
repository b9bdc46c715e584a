"""The checks :func:`regfn.sweep`, :func:`regfn.train` and the ``regfn`` command make before any training.

A mistake in the data, the loss or the model should be one regfn message
before the first step, not torch's error from inside a compiled, vmapped
step. In order:

* :func:`resolve_loss`: the loss (``None``: the one of the data's task,
  :func:`task_loss`); a :class:`~regfn.losses.Loss` that declares no task
  meets integer class labels as a multi-class loss;
* :func:`check_data`: the targets fit the loss's task (``check_targets``),
  no NaN or infinite value (:func:`regfn.data.check_finite`), the data in the
  model's floating dtype (converted, with a warning), and the model run on two
  rows (:func:`check_output`): it must run, give one output per target
  (``(n,)`` is taken for one), or one logit per class covering every label;
* :func:`check_device`: a CUDA device where torch has none.

Examples:
    >>> import regfn, torch
    >>> data = regfn.data.Dataset(torch.zeros(4, 3), torch.tensor([0.5, 1.5, 2.0, 3.0]))
    >>> resolve_loss(None, data, "regfn.sweep").name  # regression data: mean squared error
    'mse'
    >>> check_output(regfn.mlp((2, 4, 1)), data, resolve_loss(None, data, "regfn.sweep"), "regfn.sweep")
    Traceback (most recent call last):
    ...
    ValueError: regfn.sweep: the model fails on two rows of the data (x of shape (2, 3)): RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3 and 2x4)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ._warn import warn
from .data import Dataset
from .data._finite import check_finite
from .losses import Loss, fit_output, get_loss
from .nn import Model
from .nn._apply import apply_model
from .random import key as make_key

__all__ = ["check_data", "check_device", "check_output", "check_targets", "resolve_loss", "run_two_rows", "task_loss"]

_TASK_LOSSES = {"binary": "bce_logits", "multiclass": "cross_entropy", "regression": "mse"}


def task_loss(task: str) -> str:
    """The loss of a data task: ``"bce_logits"`` (binary, logits out), ``"cross_entropy"``, ``"mse"``.

    Examples:
        >>> task_loss("binary"), task_loss("multiclass"), task_loss("regression")
        ('bce_logits', 'cross_entropy', 'mse')
    """
    return _TASK_LOSSES[task]


def resolve_loss(loss: str | Loss | None, data: Dataset, where: str) -> Loss:
    """The loss to train with: ``loss``, or (``None``) the loss of ``data``'s task.

    A :class:`~regfn.losses.Loss` that declares no ``task`` and no
    ``threshold`` is a multi-class loss when the targets are integer class labels.
    """
    if loss is None:
        return get_loss(task_loss(data.task or "regression"))
    loss = get_loss(loss)
    labels = not data.y.dtype.is_floating_point
    if labels and loss.task is None and loss.threshold is None:
        return loss._replace(task="multiclass")
    return loss


def check_device(device: torch.device, where: str) -> None:
    """Refuse a CUDA device when torch finds none, saying how to run on the CPU instead.

    Examples:
        >>> check_device(torch.device("cpu"), "regfn.sweep")
    """
    if device.type != "cuda" or torch.cuda.is_available():
        return
    why = "this torch build has no CUDA" if torch.version.cuda is None else "torch finds no CUDA device"
    raise ValueError(
        f"{where}: device {str(device)!r} asks for a GPU, but there is no CUDA device here ({why}, torch "
        f"{torch.__version__}); run on the CPU with device='cpu' (regfn sweep --device cpu; under torchrun the "
        "ranks then talk over gloo)"
    )


def check_targets(loss: Loss, data: Dataset, where: str) -> None:
    """Refuse data whose targets do not fit the loss's task (before any training).

    Raises:
        TypeError: class labels for a binary or regression loss, or float targets for a multi-class one.
    """
    labels = not data.y.dtype.is_floating_point
    task = loss.resolved_task
    if task == "multiclass" and not labels:
        raise TypeError(
            f"{where}: loss {loss.name or 'of task multiclass'!r} needs integer class labels of shape (n,), "
            f"got {data.y.dtype} targets of shape {tuple(data.y.shape)} (a {data.task} dataset)"
        )
    if task != "multiclass" and labels:
        raise TypeError(
            f"{where}: loss {loss.name or 'of task ' + task!r} needs floating targets, got integer class labels; "
            "use loss='cross_entropy' for multi-class data (Loss(fn, task='multiclass') for a loss of your own)"
        )


def check_data(
    model: Model,
    loss: Loss,
    data: Dataset,
    val: Dataset | None,
    where: str,
    hp: Mapping[str, Any] | None = None,
    params: dict[str, Tensor] | None = None,
) -> tuple[Dataset, Dataset | None]:
    """Refuse data the loss or the model cannot train on; returns ``(data, val)`` in the model's dtype.

    ``params``: the model's parameters from ``regfn.random.key(0)``, when the caller has them.

    Raises:
        TypeError: targets of the wrong kind for the loss's task.
        ValueError: NaN or infinite values, or a model that fails on two rows
            or whose outputs do not fit the targets.
    """
    named = [(data, where, "the data")] + ([(val, f"{where} (val)", "the validation data")] if val is not None else [])
    for d, w, what in named:
        check_targets(loss, d, w)
        check_finite(d, where, what)
    params = model.init(make_key(0)) if params is None else params
    dtype = next((p.dtype for p in params.values() if p.dtype.is_floating_point), data.x.dtype)
    if data.x.dtype != dtype:
        warn(
            f"{where}: the data is {data.x.dtype} and the model's parameters {dtype}: the data is converted "
            f"to {dtype} (convert it yourself, data.to(dtype={dtype}), to silence this)"
        )
        data = data.to(dtype=dtype)
        val = val.to(dtype=dtype) if val is not None else None
    for part in (data, val):
        if part is not None and len(part):
            check_output(model, part, loss, where, params=params, hp=hp)
    return data, val


def _rows(n: int) -> str:
    """How many rows the check ran on, in words ("two rows", or "one row" for a one-row dataset)."""
    return "one row" if n == 1 else "two rows"


def run_two_rows(
    model: Model,
    data: Dataset,
    where: str,
    name: str = "the model",
    *,
    params: dict[str, Tensor] | None = None,
    hp: Mapping[str, Any] | None = None,
) -> Tensor:
    """``model``'s outputs on the first two rows of ``data`` (dropout off, no gradients), or a regfn error.

    Raises:
        ValueError: when the forward raises (naming ``x``'s shape and the error) or returns no tensor.
    """
    params = model.init(make_key(0)) if params is None else params
    device = next((p.device for p in params.values()), data.x.device)
    x = data.x[:2].to(device)
    try:
        with torch.no_grad():
            out = apply_model(model, params, x, train=False, hp=hp)
    except Exception as err:  # the user's forward: any error it raises is bad input
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"{where}: {name} fails on {_rows(len(x))} of the data (x of shape {tuple(x.shape)}): "
            f"{type(err).__name__}: {first}"
        ) from None
    if not isinstance(out, Tensor):
        raise ValueError(f"{where}: {name} returns {type(out).__name__} for {_rows(len(x))}, not a tensor of outputs")
    return out


def check_output(
    model: Model,
    data: Dataset,
    loss: Loss,
    where: str,
    name: str = "the model",
    *,
    params: dict[str, Tensor] | None = None,
    hp: Mapping[str, Any] | None = None,
) -> int:
    """Run ``model`` on two rows of ``data``; refuse it when it fails or its outputs do not fit the targets.

    A built-in loss needs ``(2, m)`` outputs for ``m`` floating targets
    (``(2,)`` for one), and for class labels ``(2, C)`` logits with every
    label of ``data`` below ``C``. A loss of your own is only checked for
    the labels. Returns the output width.

    Raises:
        ValueError: naming the shapes (and the label outside the outputs).
    """
    out = run_two_rows(model, data, where, name, params=params, hp=hp)
    y = data.y
    n = min(2, len(data))  # a one-row dataset gives one row
    task = loss.resolved_task
    if task == "multiclass":
        width = out.shape[-1] if out.ndim == 2 else 0
        if loss.name is not None and (out.ndim != 2 or out.shape[0] != n):
            raise ValueError(
                f"{where}: {name} gives outputs of shape {tuple(out.shape)} for {n} rows; class labels need ({n}, C): "
                f"one logit per class ({loss.name} loss)"
            )
        top = int(y.max()) if y.numel() else -1
        if out.ndim == 2 and top >= width:
            row = int((y == top).nonzero()[0, 0])
            raise ValueError(
                f"{where}: class label {top} (row {row}) is outside the model's {width} outputs: a "
                f"multi-class model needs one logit per class, labels 0 .. {width - 1}"
            )
        return width
    width = y.shape[1] if y.ndim == 2 else 1
    if loss.name is not None and tuple(fit_output(out, y[:n]).shape) != (n, width):
        what = "one logit (binary data)" if task == "binary" else "one output per target"
        raise ValueError(
            f"{where}: {name} gives outputs of shape {tuple(out.shape)} for {n} rows; the data needs shape "
            f"({n}, {width}): {what} ({loss.name} loss)"
        )
    return width
