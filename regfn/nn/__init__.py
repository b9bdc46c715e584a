"""Keyed dropout and models as pure functions over parameter dicts.

Everything here is a pure function: parameters are flat dicts named like a
``torch.nn.Module``'s ``state_dict`` (``fc1.weight``, ``fc1.bias``, ...) and
randomness comes from explicit keys (:mod:`regfn.random`), so the functions
work under ``torch.func.grad``, ``torch.func.vmap`` and ``torch.compile``.

* :func:`dropout` is Flax's ``nn.Dropout`` rule, bit for bit in the mask;
  :func:`flax_dropout_key` derives the key a Flax ``Dropout`` layer draws.
* :func:`mlp_init`, :func:`mlp_apply` and :func:`mlp` are the tutorial's MLP
  as ``init(key) -> params`` and ``apply(params, x, *, key, p, train)``.
* :func:`functionalize` turns any ``nn.Module`` into ``(apply, params)`` with
  its dropout driven by a key; :func:`mc_dropout` averages over many keys.
* :func:`from_module` turns any ``nn.Module`` into a :class:`Model` whose
  ``init(key)`` re-draws its parameters like torch's layers and whose
  ``apply`` takes the dropout rate ``p``: a model ``regfn.sweep`` can vary.
* :func:`small_cnn` is a small built-in CNN with dropout (an ``nn.Module``
  for :func:`from_module`), for small images such as the 8x8 digits.
* :func:`numpy_dropout` is the tutorial's numpy reference implementation.

Examples:
    >>> import torch, regfn.random as rr
    >>> model = mlp((8, 6, 4, 1))
    >>> params = model.init(rr.key(0))
    >>> sorted(params)
    ['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight', 'fc3.bias', 'fc3.weight']
    >>> x = torch.ones(5, 8)
    >>> model.apply(params, x, key=rr.key(1), p=0.5, train=True).shape
    torch.Size([5, 1])
"""

from ._dropout import dropout as dropout
from ._dropout import flax_dropout_key as flax_dropout_key
from ._dropout import mc_dropout as mc_dropout
from ._dropout import numpy_dropout as numpy_dropout
from ._from_module import from_module as from_module
from ._mlp import MLPSettings as MLPSettings
from ._mlp import Model as Model
from ._mlp import mlp as mlp
from ._mlp import mlp_apply as mlp_apply
from ._mlp import mlp_init as mlp_init
from ._module import functionalize as functionalize
from ._module import params_from_module as params_from_module
from ._zoo import small_cnn as small_cnn

__all__ = [
    "MLPSettings",
    "Model",
    "dropout",
    "flax_dropout_key",
    "from_module",
    "functionalize",
    "mc_dropout",
    "mlp",
    "mlp_apply",
    "mlp_init",
    "numpy_dropout",
    "params_from_module",
    "small_cnn",
]
