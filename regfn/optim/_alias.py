"""Named optimizers with ``torch.optim``'s signatures, defaults and numbers.

Each is a :func:`~regfn.optim.chain` of primitives. Every hyperparameter may
be a Python number (validated like torch), a 0-d tensor (for example a vmapped
sweep value) and ``lr`` may also be a step-size function ``step -> lr``. A Python 0 for
an optional term (``weight_decay``, ``momentum``, ...) leaves that transform
out of the chain; a tensor never does (its value is not looked at).
"""

from __future__ import annotations

from typing import Any

from ._adam import scale_by_adam
from ._base import Transform, chain
from ._checks import betas_pair, flag, hyper, is_zero
from ._constraints import add_decayed_weights, add_l2
from ._describe import ARGS, OptimizerSpec, register
from ._step_sizes import inverse_time_decay
from ._transforms import (
    check_nesterov,
    scale,
    scale_by_adagrad,
    scale_by_learning_rate,
    scale_by_rms,
    trace,
)


def _lr(lr: Any, where: str) -> Any:
    return hyper(lr, "lr", where, **ARGS["lr"].bounds(), of_step=True)


def _wd(weight_decay: Any, where: str) -> Any:
    return hyper(weight_decay, "weight_decay", where, **ARGS["weight_decay"].bounds())


def sgd(
    lr: Any = 1e-3,
    momentum: Any = 0,
    dampening: Any = 0,
    weight_decay: Any = 0,
    nesterov: bool = False,
    maximize: bool = False,
) -> Transform:
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    ``chain([scale(-1)], [add_l2(weight_decay)], [trace(momentum, dampening,
    nesterov)], scale_by_learning_rate(lr))``.

    Args:
        lr: learning rate (``>= 0``), a 0-d tensor or a step-size function.
        momentum: momentum factor (``>= 0``).
        dampening: dampening for momentum (``0 <= dampening <= 1``).
        weight_decay: coupled L2 coefficient (``>= 0``).
        nesterov: Nesterov momentum (needs ``momentum > 0``, ``dampening == 0``).
        maximize: maximize the objective instead of minimizing.

    Returns:
        The optimizer, a :class:`~regfn.optim.Transform`.

    Raises:
        ValueError: for a hyperparameter out of range (the message names it).
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> from regfn.optim import apply_updates, sgd
        >>> params = {"w": torch.tensor([1.0, 2.0])}
        >>> opt = sgd(lr=0.1, momentum=0.9)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -1.0])}, state, params)
        >>> apply_updates(params, updates)
        {'w': tensor([0.9000, 2.1000])}
    """
    where = "sgd"
    lr = _lr(lr, where)
    momentum = hyper(momentum, "momentum", where, **ARGS["momentum"].bounds())
    dampening = hyper(dampening, "dampening", where, **ARGS["dampening"].bounds())
    weight_decay = _wd(weight_decay, where)
    nesterov = flag(nesterov, "nesterov", where)
    maximize = flag(maximize, "maximize", where)
    check_nesterov(momentum, dampening, nesterov, where)
    parts = [scale(-1)] if maximize else []
    if not is_zero(weight_decay):
        parts.append(add_l2(weight_decay))
    if not is_zero(momentum):
        parts.append(trace(momentum, dampening, nesterov))
    parts.append(scale_by_learning_rate(lr))
    return chain(*parts)


def _adam(
    where: str,
    lr: Any,
    betas: Any,
    eps: Any,
    weight_decay: Any,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
) -> Transform:
    lr = _lr(lr, where)
    b1, b2 = betas_pair(betas, where)
    eps = hyper(eps, "eps", where, **ARGS["eps"].bounds())
    weight_decay = _wd(weight_decay, where)
    amsgrad = flag(amsgrad, "amsgrad", where)
    maximize = flag(maximize, "maximize", where)
    parts = [scale(-1)] if maximize else []
    if not decoupled and not is_zero(weight_decay):
        parts.append(add_l2(weight_decay))
    parts.append(scale_by_adam(b1, b2, eps, amsgrad))
    if decoupled and not is_zero(weight_decay):
        parts.append(add_decayed_weights(weight_decay))
    parts.append(scale_by_learning_rate(lr))
    return chain(*parts)


def adam(
    lr: Any = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0,
    amsgrad: bool = False,
    maximize: bool = False,
) -> Transform:
    """Adam, as ``torch.optim.Adam`` (coupled L2 ``weight_decay``).

    ``chain([scale(-1)], [add_l2(weight_decay)], scale_by_adam(*betas, eps,
    amsgrad), scale_by_learning_rate(lr))``.

    Args:
        lr: learning rate (``>= 0``), a 0-d tensor or a step-size function.
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: term added to the denominator (``>= 0``).
        weight_decay: coupled L2 coefficient (``>= 0``).
        amsgrad: use the AMSGrad variant.
        maximize: maximize the objective instead of minimizing.

    Returns:
        The optimizer, a :class:`~regfn.optim.Transform`.

    Raises:
        ValueError: for a hyperparameter out of range (the message names it).
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> from regfn.optim import adam, apply_updates
        >>> params = {"w": torch.tensor([1.0, 2.0])}
        >>> opt = adam(lr=0.1)
        >>> updates, state = opt.update({"w": torch.tensor([3.0, -0.5])}, opt.init(params), params)
        >>> apply_updates(params, updates)
        {'w': tensor([0.9000, 2.1000])}
    """
    return _adam("adam", lr, betas, eps, weight_decay, amsgrad, maximize, decoupled=False)


def adamw(
    lr: Any = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> Transform:
    """AdamW, as ``torch.optim.AdamW`` (decoupled weight decay).

    ``chain([scale(-1)], scale_by_adam(*betas, eps, amsgrad),
    add_decayed_weights(weight_decay), scale_by_learning_rate(lr))``: the
    update is ``-lr * (adam_direction + weight_decay * w)``, the same as
    torch's ``w *= 1 - lr * weight_decay`` followed by the Adam step.

    Args:
        lr: learning rate (``>= 0``), a 0-d tensor or a step-size function.
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: term added to the denominator (``>= 0``).
        weight_decay: decoupled decay coefficient (``>= 0``).
        amsgrad: use the AMSGrad variant.
        maximize: maximize the objective instead of minimizing.

    Returns:
        The optimizer, a :class:`~regfn.optim.Transform`.

    Raises:
        ValueError: for a hyperparameter out of range (the message names it).
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> from regfn.optim import adamw, apply_updates
        >>> params = {"w": torch.tensor([1.0])}
        >>> opt = adamw(lr=0.1, weight_decay=0.5)
        >>> updates, state = opt.update({"w": torch.tensor([0.0])}, opt.init(params), params)
        >>> apply_updates(params, updates)  # only the decay: 1 * (1 - 0.1 * 0.5)
        {'w': tensor([0.9500])}
    """
    return _adam("adamw", lr, betas, eps, weight_decay, amsgrad, maximize, decoupled=True)


def rmsprop(
    lr: Any = 1e-2,
    alpha: Any = 0.99,
    eps: Any = 1e-8,
    weight_decay: Any = 0,
    momentum: Any = 0,
    centered: bool = False,
    maximize: bool = False,
) -> Transform:
    """RMSprop, as ``torch.optim.RMSprop``.

    ``chain([scale(-1)], [add_l2(weight_decay)], scale_by_rms(alpha, eps,
    centered), [trace(momentum)], scale_by_learning_rate(lr))``.

    Args:
        lr: learning rate (``>= 0``), a 0-d tensor or a step-size function.
        alpha: smoothing constant (``0 <= alpha <= 1``).
        eps: term added to the denominator (``>= 0``).
        weight_decay: coupled L2 coefficient (``>= 0``).
        momentum: momentum factor (``>= 0``).
        centered: normalise by the estimated variance of the gradient.
        maximize: maximize the objective instead of minimizing.

    Returns:
        The optimizer, a :class:`~regfn.optim.Transform`.

    Raises:
        ValueError: for a hyperparameter out of range (the message names it).
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> from regfn.optim import apply_updates, rmsprop
        >>> params = {"w": torch.tensor([1.0])}
        >>> opt = rmsprop(lr=0.01, alpha=0.75, eps=0.0)
        >>> updates, state = opt.update({"w": torch.tensor([2.0])}, opt.init(params), params)
        >>> apply_updates(params, updates)  # 1 - 0.01 * 2 / sqrt(0.25 * 4)
        {'w': tensor([0.9800])}
    """
    where = "rmsprop"
    lr = _lr(lr, where)
    alpha = hyper(alpha, "alpha", where, **ARGS["alpha"].bounds())
    eps = hyper(eps, "eps", where, **ARGS["eps"].bounds())
    weight_decay = _wd(weight_decay, where)
    momentum = hyper(momentum, "momentum", where, **ARGS["momentum"].bounds())
    centered = flag(centered, "centered", where)
    maximize = flag(maximize, "maximize", where)
    parts = [scale(-1)] if maximize else []
    if not is_zero(weight_decay):
        parts.append(add_l2(weight_decay))
    parts.append(scale_by_rms(alpha, eps, centered))
    if not is_zero(momentum):
        parts.append(trace(momentum))
    parts.append(scale_by_learning_rate(lr))
    return chain(*parts)


def adagrad(
    lr: Any = 1e-2,
    lr_decay: Any = 0,
    weight_decay: Any = 0,
    initial_accumulator_value: Any = 0,
    eps: Any = 1e-10,
    maximize: bool = False,
) -> Transform:
    """Adagrad, as ``torch.optim.Adagrad``.

    ``chain([scale(-1)], [add_l2(weight_decay)],
    scale_by_adagrad(initial_accumulator_value, eps),
    scale_by_learning_rate(lr / (1 + step * lr_decay)))``.

    Args:
        lr: learning rate (``>= 0``), a 0-d tensor or a step-size function.
        lr_decay: learning-rate decay (``>= 0``), see
            :func:`~regfn.optim.inverse_time_decay`.
        weight_decay: coupled L2 coefficient (``>= 0``).
        initial_accumulator_value: starting value of the squared-gradient sum (``>= 0``).
        eps: term added to the denominator (``>= 0``).
        maximize: maximize the objective instead of minimizing.

    Returns:
        The optimizer, a :class:`~regfn.optim.Transform`.

    Raises:
        ValueError: for a hyperparameter out of range (the message names it).
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> from regfn.optim import adagrad, apply_updates
        >>> params = {"w": torch.tensor([1.0])}
        >>> opt = adagrad(lr=0.1)
        >>> updates, state = opt.update({"w": torch.tensor([3.0])}, opt.init(params), params)
        >>> apply_updates(params, updates)
        {'w': tensor([0.9000])}
    """
    where = "adagrad"
    lr = _lr(lr, where)
    lr_decay = hyper(lr_decay, "lr_decay", where, **ARGS["lr_decay"].bounds())
    weight_decay = _wd(weight_decay, where)
    initial_accumulator_value = hyper(
        initial_accumulator_value, "initial_accumulator_value", where, **ARGS["initial_accumulator_value"].bounds()
    )
    eps = hyper(eps, "eps", where, **ARGS["eps"].bounds())
    maximize = flag(maximize, "maximize", where)
    parts = [scale(-1)] if maximize else []
    if not is_zero(weight_decay):
        parts.append(add_l2(weight_decay))
    parts.append(scale_by_adagrad(initial_accumulator_value, eps))
    parts.append(scale_by_learning_rate(lr if is_zero(lr_decay) else inverse_time_decay(lr, lr_decay)))
    return chain(*parts)


# The descriptions the sweep, the command and the registry read (regfn.optim.optimizers()).
# A sweep's SGD starts at lr 0.1 with momentum 0.9, which train the tutorial's small tables
# (docs/benchmarks/, "First contact"); Adam and AdamW at lr 0.01; AdamW without weight decay, as
# every optimizer of a sweep: the weight decay is a hyperparameter to sweep, not a default.
register(
    OptimizerSpec(
        "sgd", sgd, ("lr", "momentum", "dampening", "weight_decay"), {"lr": 0.1, "momentum": 0.9}, elementwise=True
    )
)
register(OptimizerSpec("adam", adam, ("lr", "beta1", "beta2", "eps", "weight_decay"), {"lr": 0.01}, elementwise=True))
register(
    OptimizerSpec(
        "adamw",
        adamw,
        ("lr", "beta1", "beta2", "eps", "weight_decay"),
        {"lr": 0.01, "weight_decay": 0.0},
        elementwise=True,
    )
)
register(OptimizerSpec("rmsprop", rmsprop, ("lr", "alpha", "eps", "weight_decay", "momentum"), elementwise=True))
register(
    OptimizerSpec(
        "adagrad",
        adagrad,
        ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
        elementwise=True,
    )
)
