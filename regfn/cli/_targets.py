"""Regression targets at the command line: trained standardized, reported in their own units.

Targets far from unit scale (a disease progression score around 150, house
prices) make the default SGD step overshoot and every configuration
collapse. ``regfn sweep`` and ``regfn train`` therefore train regression
models on standardized targets (the training rows' mean and standard
deviation, ``correction=0``), the way the features already are, without
changing the data: the model's outputs are mapped back, ``z * std + mean``,
and the loss is the mean squared error in standard deviations,
``mean(((output - y) / std) ** 2)``, which has the same gradients as the
MSE on standardized targets. So ``mse``, ``val_mse`` and the predictions are
in the targets' own units, while ``loss`` is the standardized MSE that was
minimized. ``--raw-targets`` trains on the targets as they are (plain MSE).

Examples:
    >>> import torch, regfn
    >>> data = regfn.data.Dataset(torch.zeros(4, 2), torch.tensor([100.0, 150.0, 200.0, 250.0]))
    >>> scale = TargetScale.of(data)
    >>> scale.mean.tolist(), [round(s, 2) for s in scale.std.tolist()]
    ([175.0], [55.9])
    >>> model = scale.model(regfn.mlp((2, 1), output="identity"))
    >>> params = {"fc1.weight": torch.zeros(1, 2), "fc1.bias": torch.zeros(1)}
    >>> model.apply(params, torch.zeros(3, 2)).flatten().tolist()  # z = 0 is the mean
    [175.0, 175.0, 175.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..data import Dataset
    from ..losses import Loss
    from ..nn import Model

__all__ = ["TargetScale"]


@dataclass(frozen=True)
class TargetScale:
    """Each target's training mean and standard deviation (``(m,)``; a zero deviation counts as 1)."""

    mean: Tensor
    std: Tensor

    @classmethod
    def of(cls, train: Dataset) -> TargetScale:
        y = train.y.to(torch.float64)
        std = y.std(0, correction=0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        return cls(y.mean(0).to(train.y.dtype), std.to(train.y.dtype))

    def model(self, inner: Model) -> Model:
        """``inner`` with its outputs mapped from standard deviations to the targets' units."""
        from ..nn import Model

        mean, std, forward = self.mean, self.std, inner.apply

        def apply(params: dict[str, Tensor], x: Tensor, **kwargs: Any) -> Tensor:
            out = forward(params, x, **kwargs)
            return out * std + mean if out.ndim == 2 else out * std[0] + mean[0]

        return Model(inner.init, apply)

    def loss(self) -> Loss:
        """The MSE in standard deviations, a regression :class:`~regfn.losses.Loss`."""
        from ..losses import Loss, fit_output

        std = self.std

        def standardized_mse(output: Tensor, target: Tensor) -> Tensor:
            return (((fit_output(output, target) - target) / std) ** 2).mean()

        return Loss(standardized_mse, task="regression")
