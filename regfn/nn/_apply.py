"""A model applied with the arguments it takes: the one place that knows ``apply``'s optional ``hp`` keyword.

Examples:
    >>> import regfn, torch
    >>> model = regfn.nn.mlp((2, 3, 1), output="logits")
    >>> params = model.init(regfn.random.key(0))
    >>> apply_model(model, params, torch.zeros(4, 2)).shape
    torch.Size([4, 1])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..losses import takes_hp
from ._mlp import Model

__all__ = ["apply_model"]


def apply_model(
    model: Model,
    params: Mapping[str, Tensor],
    x: Tensor,
    *,
    key: Tensor | None = None,
    p: Any = 0.0,
    train: bool = False,
    hp: Mapping[str, Any] | None = None,
) -> Tensor:
    """``model.apply``, handing over the configuration's hyperparameters when ``apply`` takes ``hp``."""
    if takes_hp(model.apply):
        return model.apply(params, x, key=key, p=p, train=train, hp=hp if hp is not None else {})
    if train:
        return model.apply(params, x, key=key, p=p, train=True)
    return model.apply(params, x, train=False)
