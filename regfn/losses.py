"""Losses for :func:`regfn.train` and :func:`regfn.sweep`, and how each reads accuracy.

A :class:`Loss` pairs a loss function on model outputs with the threshold
that turns an output into a binary prediction, and carries a ``name`` that
says what it computes. Engines decide what they can run from that name (the
fused Triton engine runs ``"bce_logits"`` and ``"mse"``), never from the
function object itself; a loss of your own leaves ``name`` as ``None``.

Examples:
    >>> import torch
    >>> get_loss("bce_logits").name, get_loss("bce_logits").threshold
    ('bce_logits', 0.0)
    >>> hinge = Loss(lambda out, y: torch.relu(1 - (2 * y - 1) * out).mean(), threshold=0.0)
    >>> float(hinge.fn(torch.tensor([2.0]), torch.tensor([1.0])))
    0.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "Loss", "get_loss"]


class Loss(NamedTuple):
    """A loss on model outputs, and how to read accuracy off those outputs.

    Attributes:
        fn: ``fn(output, target) -> scalar``, a mean over examples.
        threshold: the output value above which a binary prediction is 1
            (0 for logits, 0.5 for probabilities), or ``None`` for regression.
        name: what ``fn`` computes, for engines that run it their own way
            (``"bce"``, ``"bce_logits"``, ``"mse"``); ``None`` for any other.

    Examples:
        >>> import torch
        >>> mae = Loss(lambda out, y: (out - y).abs().mean(), threshold=None)  # a regression loss
        >>> mae.fn(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
        tensor(1.5000)
    """

    fn: Callable[[Tensor, Tensor], Tensor]
    threshold: float | None
    name: str | None = None


def _bce_probabilities(prob: Tensor, target: Tensor) -> Tensor:
    # torch.nn.BCELoss, as the tutorial uses after a sigmoid (log clamped at -100).
    return F.binary_cross_entropy(prob, target)


def _bce_logits(logits: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(pred, target)


LOSSES: dict[str, Loss] = {
    "bce": Loss(_bce_probabilities, 0.5, "bce"),
    "bce_logits": Loss(_bce_logits, 0.0, "bce_logits"),
    "mse": Loss(_mse, None, "mse"),
}
"""The losses known by name."""


def get_loss(loss: str | Loss) -> Loss:
    """Look up a loss by name (``"bce"``, ``"bce_logits"``, ``"mse"``) or pass a :class:`Loss` through.

    Raises:
        ValueError: for an unknown name.
        TypeError: for anything else.

    Examples:
        >>> get_loss("mse").threshold is None
        True
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        return LOSSES[loss]
    raise TypeError(f"loss must be a name in {sorted(LOSSES)} or a regfn.losses.Loss, got {type(loss).__name__}")
