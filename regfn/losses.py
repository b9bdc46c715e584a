"""Losses for :func:`regfn.train` and :func:`regfn.sweep`, and how each reads its metric.

A :class:`Loss` pairs a loss function on model outputs with the task it
serves (``"binary"``: accuracy at ``threshold``; ``"multiclass"``: accuracy
by argmax; ``"regression"``: mean squared error), and carries a ``name``
that says what it computes. Engines decide what they can run from that name
(the fused Triton engine runs ``"bce_logits"`` and ``"mse"``), never from the
function object itself; a loss of your own leaves ``name`` as ``None``.

A loss function takes ``(output, target)``, or ``(output, target, hp)`` to
receive the configuration's hyperparameters (a dict of 0-d tensors in a
sweep: every registry name, e.g. ``hp["label_smoothing"]``, and the names
declared with ``regfn.sweep(..., hparams=...)``).

Examples:
    >>> import torch
    >>> get_loss("bce_logits").name, get_loss("bce_logits").threshold
    ('bce_logits', 0.0)
    >>> hinge = Loss(lambda out, y: torch.relu(1 - (2 * y - 1) * out).mean(), threshold=0.0)
    >>> float(hinge.fn(torch.tensor([2.0]), torch.tensor([1.0]))), hinge.resolved_task
    (0.0, 'binary')
    >>> logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> ce = get_loss("cross_entropy")
    >>> bool(torch.isclose(loss_value(ce, logits, labels, {"label_smoothing": torch.tensor(0.1)}),
    ...                    torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)))
    True
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "TASKS", "Loss", "fit_output", "get_loss", "loss_value", "takes_hp"]

TASKS = ("binary", "multiclass", "regression")
"""The kinds of task a dataset and a loss declare (``Dataset.task``, ``Loss.task``)."""


class Loss(NamedTuple):
    """A loss on model outputs, and how to read its metric off those outputs.

    Attributes:
        fn: ``fn(output, target) -> scalar``, a mean over examples, or
            ``fn(output, target, hp)`` to read the configuration's
            hyperparameters (a dict of 0-d tensors).
        threshold: the output value above which a binary prediction is 1
            (0 for logits, 0.5 for probabilities); ``None`` otherwise.
        name: what ``fn`` computes, for engines that run it their own way
            (``"bce"``, ``"bce_logits"``, ``"mse"``, ``"cross_entropy"``);
            ``None`` for any other.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``; ``None``
            infers binary from a threshold, else regression (and, in
            :func:`regfn.sweep` and :func:`regfn.train`, multiclass when the
            targets are integer class labels and there is no threshold).
        hparams: the built-in loss hyperparameters ``fn`` reads from ``hp``
            (``("label_smoothing",)`` for cross-entropy), so a sweep can
            refuse them for a loss that ignores them.
    """

    fn: Callable[..., Tensor]
    threshold: float | None = None
    name: str | None = None
    task: str | None = None
    hparams: tuple[str, ...] = ()

    @property
    def resolved_task(self) -> str:
        """The task: ``task``, or binary when there is a threshold, else regression."""
        if self.task is not None:
            return self.task
        return "binary" if self.threshold is not None else "regression"


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: (output, target)
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
        return 3
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def takes_hp(fn: Callable[..., Any]) -> bool:
    """Whether a loss function (or a model's ``apply``) wants the configuration's hyperparameters.

    A loss function wants them when it has a third required positional
    parameter; a model's ``apply`` when it has an ``hp`` keyword parameter.
    The answer is kept on the function (``_regfn_takes_hp``), so that
    compiled code reads a constant instead of inspecting a signature;
    :func:`regfn.train` and :func:`regfn.sweep` ask before they compile.
    """
    known = getattr(fn, "_regfn_takes_hp", None)
    if known is not None:
        return bool(known)
    try:
        answer = "hp" in inspect.signature(fn).parameters or _positional_arity(fn) >= 3
    except (TypeError, ValueError):
        answer = False
    with contextlib.suppress(AttributeError, TypeError):  # builtins and bound methods take no attributes
        fn._regfn_takes_hp = answer  # type: ignore[attr-defined]
    return answer


def fit_output(output: Tensor, target: Tensor) -> Tensor:
    """A model's ``(n,)`` output as ``(n, 1)`` when the target is one floating column; else ``output`` as it is.

    skorch and many hand-written binary models squeeze their single logit;
    regfn's targets keep their column (``(n, 1)``), so such an output is
    lined up with it instead of broadcasting to ``(n, n)``.

    Examples:
        >>> fit_output(torch.zeros(3), torch.zeros(3, 1)).shape, fit_output(torch.zeros(3, 2), torch.zeros(3)).shape
        (torch.Size([3, 1]), torch.Size([3, 2]))
    """
    if output.ndim == 1 and target.ndim == 2 and target.shape[1] == 1 and target.dtype.is_floating_point:
        return output.unsqueeze(-1)
    return output


def loss_value(loss: Loss, output: Tensor, target: Tensor, hp: Mapping[str, Any] | None = None) -> Tensor:
    """``loss.fn(output, target)``, handing ``hp`` over when the function takes it (``output`` through :func:`fit_output`)."""
    output = fit_output(output, target)
    if takes_hp(loss.fn):
        return loss.fn(output, target, hp if hp is not None else {})
    return loss.fn(output, target)


def _bce_probabilities(prob: Tensor, target: Tensor) -> Tensor:
    # torch.nn.BCELoss, as the tutorial uses after a sigmoid (log clamped at -100).
    return F.binary_cross_entropy(prob, target)


def _bce_logits(logits: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(pred, target)


def _cross_entropy(logits: Tensor, labels: Tensor, hp: Mapping[str, Any]) -> Tensor:
    """``F.cross_entropy(logits, labels, label_smoothing=s)`` with ``s`` a (possibly batched) tensor.

    torch's formula: ``(1 - s) * nll + s * mean_c(-log_softmax)``, averaged
    over examples; ``s`` comes from ``hp["label_smoothing"]`` (0 when absent).
    """
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    smoothing = hp.get("label_smoothing", 0.0)
    if isinstance(smoothing, (int, float)) and smoothing == 0:
        return nll.mean()
    uniform = -logp.mean(dim=-1)
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


LOSSES: dict[str, Loss] = {
    "bce": Loss(_bce_probabilities, 0.5, "bce", "binary"),
    "bce_logits": Loss(_bce_logits, 0.0, "bce_logits", "binary"),
    "mse": Loss(_mse, None, "mse", "regression"),
    "cross_entropy": Loss(_cross_entropy, None, "cross_entropy", "multiclass", ("label_smoothing",)),
}
"""The losses known by name."""


def get_loss(loss: str | Loss) -> Loss:
    """Look up a loss by name (``"bce"``, ``"bce_logits"``, ``"mse"``, ``"cross_entropy"``) or pass a :class:`Loss` through.

    Raises:
        ValueError: for an unknown name.
        TypeError: for anything else.

    Examples:
        >>> get_loss("mse").threshold is None, get_loss("cross_entropy").resolved_task
        (True, 'multiclass')
    """
    if isinstance(loss, Loss):
        if loss.resolved_task not in TASKS:
            raise ValueError(f"loss: task must be one of {TASKS} or None, got {loss.task!r}")
        return loss
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        return LOSSES[loss]
    raise TypeError(f"loss must be a name in {sorted(LOSSES)} or a regfn.losses.Loss, got {type(loss).__name__}")
