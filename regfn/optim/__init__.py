"""Pure functional optimizers whose hyperparameters can be vmapped.

The optax design on PyTorch: an optimizer is a :class:`Transform`
``(init, update)`` over flat parameter dicts; states are dicts and tuples of
tensors; nothing mutates its inputs (except :func:`step_`, on request). The
named optimizers (:func:`sgd`, :func:`adam`, :func:`adamw`, :func:`rmsprop`,
:func:`adagrad`) take ``torch.optim``'s arguments and reproduce its numbers,
and every hyperparameter may be a 0-d tensor, so ``torch.func.vmap`` can
sweep it.

Examples:
    >>> import torch
    >>> from regfn import optim
    >>> params = {"w": torch.tensor([1.0, -1.0])}
    >>> opt = optim.sgd(lr=0.1, momentum=0.9)
    >>> state = opt.init(params)
    >>> grads = {"w": 2 * params["w"]}
    >>> updates, state = opt.update(grads, state, params)
    >>> optim.apply_updates(params, updates)
    {'w': tensor([ 0.8000, -0.8000])}

:func:`step` does ``update`` and ``apply_updates`` in one call, and
:func:`step_` does it in place, like ``torch.optim`` (for eager loops over
large models, where allocating new tensors every step is what costs).

A learning rate may be a step-size function ``step -> lr``
(:func:`constant_step_size`, :func:`exponential_decay`, :func:`cosine_decay`,
:func:`linear_warmup`, :func:`inverse_time_decay`; optax's schedules).
``constant_schedule`` and ``scale_by_schedule`` are the former names of
:func:`constant_step_size` and :func:`scale_by_step_size`.
"""

from __future__ import annotations

from ._adam import scale_by_adam as scale_by_adam
from ._alias import adagrad as adagrad
from ._alias import adam as adam
from ._alias import adamw as adamw
from ._alias import rmsprop as rmsprop
from ._alias import sgd as sgd
from ._base import Transform as Transform
from ._base import apply_updates as apply_updates
from ._base import chain as chain
from ._base import masked as masked
from ._constraints import add_decayed_weights as add_decayed_weights
from ._constraints import add_l2 as add_l2
from ._constraints import clip_by_global_norm as clip_by_global_norm
from ._constraints import max_norm as max_norm
from ._constraints import prox_l1 as prox_l1
from ._describe import Arg as Arg
from ._describe import OptimizerSpec as OptimizerSpec
from ._describe import optimizers as optimizers
from ._describe import register as register
from ._describe import unregister as unregister
from ._step import step as step
from ._step import step_ as step_
from ._step_sizes import constant_schedule as constant_schedule
from ._step_sizes import constant_step_size as constant_step_size
from ._step_sizes import cosine_decay as cosine_decay
from ._step_sizes import exponential_decay as exponential_decay
from ._step_sizes import inverse_time_decay as inverse_time_decay
from ._step_sizes import linear_warmup as linear_warmup
from ._transforms import scale as scale
from ._transforms import scale_by_adagrad as scale_by_adagrad
from ._transforms import scale_by_learning_rate as scale_by_learning_rate
from ._transforms import scale_by_rms as scale_by_rms
from ._transforms import scale_by_schedule as scale_by_schedule
from ._transforms import scale_by_step_size as scale_by_step_size
from ._transforms import trace as trace

__all__ = [
    "Arg",
    "OptimizerSpec",
    "Transform",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "add_l2",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "constant_schedule",
    "constant_step_size",
    "cosine_decay",
    "exponential_decay",
    "inverse_time_decay",
    "linear_warmup",
    "masked",
    "max_norm",
    "optimizers",
    "prox_l1",
    "register",
    "rmsprop",
    "scale",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_schedule",
    "scale_by_step_size",
    "sgd",
    "step",
    "step_",
    "trace",
    "unregister",
]
