"""L1 / L2 penalties as composable loss transformers.

A penalty is a small frozen object. Called on a loss function it returns a
new loss function with the same signature whose value is the loss plus the
penalty of its ``params`` argument (the first positional one, the flat
``{name: tensor}`` dict that :func:`torch.func.grad` differentiates)::

    loss_fn = l2(1e-3)(loss_fn)                # or penalize(loss_fn, l2(1e-3))
    grads = torch.func.grad(loss_fn)(params, x, y)

Conventions (``w`` ranges over the selected parameters, every element):

* :func:`l2`: ``strength / 2 * sum(w ** 2)``. Its gradient is
  ``strength * w``, exactly what ``torch.optim.SGD(weight_decay=strength)``
  adds to the gradient.
* :func:`l1`: ``strength * sum(|w|)``, with subgradient ``sign(w)`` and
  ``sign(0) = 0``.
* :func:`norm`: ``strength * sum_p torch.norm(p, ord)``, one (not squared)
  norm per parameter tensor, of the flattened tensor, summed over tensors,
  as in the popular tutorial loop
  ``lam * sum(torch.norm(p, 1) for p in model.parameters())``. Its
  gradient is 0 (not NaN) at an all-zero tensor.
* :func:`elastic_net`: ``l1(a) + l2(b)``.

Every strength may be a Python number or a 0-d tensor, in particular a
batched one under :func:`torch.func.vmap`, so one call can sweep many
strengths. Nothing branches on a tensor's value, so penalties also work
under :func:`torch.func.grad`, :func:`torch.func.vmap` and
:func:`torch.compile`.

The penalties (:func:`l2`, :func:`l1`, :func:`norm`, :func:`elastic_net`)
live in :mod:`regfn.penalties._kinds`; the base class, the wrapping
(:func:`penalize`) and the reading (:func:`penalty_value`) in
:mod:`regfn.penalties._base`.

Examples:
    >>> import torch
    >>> from regfn.penalties import l1, l2, penalty_value
    >>> penalty_value({"w": torch.tensor([1.0, -2.0])}, l1(0.1), l2(0.2))
    tensor(0.8000)
"""

from __future__ import annotations

from .._tree import weights_only as weights_only
from ._base import Penalty as Penalty
from ._base import penalize as penalize
from ._base import penalty_value as penalty_value
from ._kinds import ElasticNetPenalty as ElasticNetPenalty
from ._kinds import L1Penalty as L1Penalty
from ._kinds import L2Penalty as L2Penalty
from ._kinds import NormPenalty as NormPenalty
from ._kinds import elastic_net as elastic_net
from ._kinds import l1 as l1
from ._kinds import l2 as l2
from ._kinds import norm as norm

__all__ = [
    "ElasticNetPenalty",
    "L1Penalty",
    "L2Penalty",
    "NormPenalty",
    "Penalty",
    "elastic_net",
    "l1",
    "l2",
    "norm",
    "penalize",
    "penalty_value",
    "weights_only",
]
