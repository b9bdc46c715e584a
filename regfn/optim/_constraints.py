"""Transforms that involve the weights: L2 and decoupled decay, L1 proximal
step, max-norm constraint, and global-norm clipping.
"""

from __future__ import annotations

from typing import Any

import torch

from .._tree import Mask, resolve_mask
from ._base import Params, State, TaggedUpdate, Transform, UpdateResult, Updates
from ._checks import axpy, caster, hyper, is_number, is_zero, need_params, scalar_dtype, step_zero


def _add_weights(weight_decay: Any, mask: Mask, where: str) -> Transform:
    weight_decay = hyper(weight_decay, "weight_decay", where, low=0.0)

    def init(params: Params) -> dict:
        if mask is not None:
            resolve_mask(mask, params, where=f"{where}: mask")
        return {}

    def coefficients(params: Params | None) -> dict:
        """``{name: weight_decay}`` for the decayed parameters (none when it is a Python 0)."""
        if is_zero(weight_decay):
            return {}
        params = need_params(params, where)
        selected = params.keys() if mask is None else resolve_mask(mask, params, where=f"{where}: mask")
        return {k: weight_decay for k in params if k in selected}

    def update(updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        decayed = coefficients(params)
        if not decayed:
            return dict(updates), state
        params = need_params(params, where)  # coefficients() already required them
        get = caster(weight_decay)
        out = {}
        for k, u in updates.items():
            if k not in decayed:
                out[k] = u
            elif is_number(weight_decay):
                out[k] = axpy(u, params[k], weight_decay)
            else:
                out[k] = u + get(u.dtype)[0] * params[k]
        return out, state

    return Transform(init, TaggedUpdate(update, decay=coefficients))


def add_l2(weight_decay: Any, mask: Mask = None) -> Transform:
    """Coupled L2: ``g + weight_decay * w`` (``torch.optim``'s ``weight_decay``).

    Put it first in a chain: the decay term then goes through the
    optimizer's statistics (momentum, Adam's moments), as in torch.

    Args:
        weight_decay: the L2 coefficient (``>= 0``).
        mask: which parameters to decay (see :func:`~regfn.optim.masked`);
            ``None`` decays all of them, like torch.

    Returns:
        A stateless :class:`~regfn.optim.Transform` that needs ``params``.

    Raises:
        ValueError: for a negative ``weight_decay``, or if called without params.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> t = add_l2(0.1)
        >>> w = {"w": torch.tensor([2.0])}
        >>> t.update({"w": torch.tensor([1.0])}, t.init(w), w)[0]
        {'w': tensor([1.2000])}
    """
    return _add_weights(weight_decay, mask, "add_l2")


def add_decayed_weights(weight_decay: Any, mask: Mask = None) -> Transform:
    """Decoupled weight decay (AdamW): ``u + weight_decay * w``.

    Put it after the optimizer's statistics and before
    :func:`~regfn.optim.scale_by_learning_rate`, so that the final update is
    ``-lr * (direction + weight_decay * w)``: exactly torch's AdamW, which
    multiplies the weights by ``1 - lr * weight_decay`` before its Adam step.

    Args:
        weight_decay: the decay coefficient (``>= 0``).
        mask: which parameters to decay, for example
            :func:`regfn._tree.weights_only`; ``None`` decays all of them.

    Returns:
        A stateless :class:`~regfn.optim.Transform` that needs ``params``.

    Raises:
        ValueError: for a negative ``weight_decay``, or if called without params.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> t = add_decayed_weights(0.5, mask={"w"})
        >>> p = {"w": torch.tensor([2.0]), "b": torch.tensor([2.0])}
        >>> t.update({"w": torch.zeros(1), "b": torch.zeros(1)}, t.init(p), p)[0]
        {'w': tensor([1.]), 'b': tensor([0.])}
    """
    return _add_weights(weight_decay, mask, "add_decayed_weights")


def clip_by_global_norm(max_norm: Any) -> Transform:
    """Rescale all updates together so that their global L2 norm is at most ``max_norm``.

    ``u * max_norm / max(norm, max_norm)`` where ``norm`` is the L2 norm of
    all updates concatenated; updates already inside are unchanged.

    Args:
        max_norm: the largest allowed global norm (``> 0``).

    Returns:
        A stateless :class:`~regfn.optim.Transform`.

    Raises:
        ValueError: for a non-positive ``max_norm``.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> t = clip_by_global_norm(1.0)
        >>> t.update({"a": torch.tensor([3.0]), "b": torch.tensor([4.0])}, t.init({}))[0]
        {'a': tensor([0.6000]), 'b': tensor([0.8000])}
    """
    max_norm = hyper(max_norm, "max_norm", "clip_by_global_norm", low=0.0, low_open=True)

    def init(params: Params) -> dict:
        return {}

    def update(updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        if not updates:
            return dict(updates), state
        first = next(iter(updates.values()))
        sdt = scalar_dtype(first.device)
        norms = [torch.linalg.vector_norm(u).to(sdt) for u in updates.values()]
        norm = torch.linalg.vector_norm(torch.stack(norms))
        factor = max_norm / torch.clamp(norm, min=max_norm)
        get = caster(factor)
        return {k: u * get(u.dtype)[0] for k, u in updates.items()}, state

    return Transform(init, update)


def prox_l1(strength: Any, lr: Any = 1.0, mask: Mask = None) -> Transform:
    """L1 proximal step (soft-thresholding) on the new weights: exact zeros.

    With ``z = w + u`` (the weights the chain so far would produce) the new
    weights are ``sign(z) * max(|z| - lr * strength, 0)``; the transform
    returns the update ``prox(z) - w``, so :func:`apply_updates` lands on
    them (an entry thresholded to 0 comes out exactly 0). This is proximal
    gradient descent on ``loss + strength * ||w||_1`` when ``lr`` is the
    optimizer's learning rate: pass the same ``lr`` (number, tensor or
    step-size function) to both. With adaptive optimizers (Adam, ...) ``lr * strength``
    is simply the threshold per step.

    It must be the last transform of a chain (only :func:`max_norm` may
    follow); :func:`~regfn.optim.chain` enforces this.

    Args:
        strength: the L1 coefficient (``>= 0``).
        lr: the step size the threshold is scaled by: a number (``>= 0``), a
            0-d tensor or a step-size function (then the state counts the steps).
        mask: which parameters to threshold, e.g.
            :func:`regfn._tree.weights_only`; ``None`` means all.

    Returns:
        A post-step :class:`~regfn.optim.Transform` that needs ``params``.

    Raises:
        ValueError: for a negative hyperparameter, or if called without params.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> from regfn.optim import apply_updates
        >>> t = prox_l1(1.0, lr=0.1)
        >>> w = {"w": torch.tensor([0.05, -0.5, 0.3])}
        >>> u, _ = t.update({"w": torch.zeros(3)}, t.init(w), w)
        >>> apply_updates(w, u)
        {'w': tensor([ 0.0000, -0.4000,  0.2000])}
    """
    where = "prox_l1"
    strength = hyper(strength, "strength", where, low=0.0)
    lr = hyper(lr, "lr", where, low=0.0, of_step=True)

    def init(params: Params) -> dict:
        if mask is not None:
            resolve_mask(mask, params, where=f"{where}: mask")
        return {"step": step_zero(params)} if callable(lr) else {}

    def update(updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        params = need_params(params, where)
        if callable(lr):
            threshold = torch.as_tensor(lr(state["step"])) * strength
            state = {"step": state["step"] + 1}
        else:
            threshold = lr * strength
        selected = None if mask is None else resolve_mask(mask, params, where=f"{where}: mask")
        get = caster(threshold)
        out = {}
        for k, u in updates.items():
            if selected is not None and k not in selected:
                out[k] = u
                continue
            w = params[k]
            z = w + u
            thr = get(z.dtype)[0]
            # z - clamp(z, -thr, thr) is sign(z) * max(|z| - thr, 0), exactly 0 inside.
            out[k] = (z - torch.clamp(z, min=-thr, max=thr)) - w
        return out, state

    return Transform(init, TaggedUpdate(update, post_step=where))


def _norm_dims(axis: int | tuple | list | None, ndim: int, where: str) -> tuple:
    if axis is None:
        return tuple(range(1, ndim))
    dims = (axis,) if isinstance(axis, int) else tuple(axis)
    for d in dims:
        if not -ndim <= d < ndim:
            raise ValueError(f"{where}: axis {d} out of range for a parameter with {ndim} dims")
    return tuple(d % ndim for d in dims)


def max_norm(max_value: Any, axis: int | tuple | list | None = None) -> Transform:
    """Max-norm constraint: rescale each unit's incoming weights to norm <= ``max_value``.

    Acts on the new weights ``z = w + u`` of every parameter with ``ndim >= 2``
    (biases pass through): slices whose norm exceeds ``max_value`` are scaled
    down to it, the others keep their update unchanged. The constraint
    Srivastava et al. (2014) pair with dropout. Norms hold up to rounding of
    ``w + (z' - w)``.

    It must come last in a chain (only :func:`prox_l1` may follow).

    Args:
        max_value: the largest allowed norm (``>= 0``).
        axis: the dimension(s) the norm is taken over. ``None`` (default):
            all but the first, i.e. the rows of a ``torch.nn.Linear`` weight
            ``(out, in)`` and the filters of a convolution.

    Returns:
        A post-step :class:`~regfn.optim.Transform` that needs ``params``.

    Raises:
        ValueError: for a negative ``max_value``, a bad axis, or if called
            without params.
        TypeError: for a wrongly typed argument.

    Examples:
        >>> import torch
        >>> from regfn.optim import apply_updates
        >>> t = max_norm(1.0)
        >>> w = {"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]])}
        >>> u, _ = t.update({"w": torch.zeros(2, 2)}, t.init(w), w)
        >>> apply_updates(w, u)
        {'w': tensor([[0.6000, 0.8000],
                [0.3000, 0.4000]])}
    """
    where = "max_norm"
    max_value = hyper(max_value, "max_value", where, low=0.0)
    if axis is not None and not (
        (isinstance(axis, int) and not isinstance(axis, bool))
        or (isinstance(axis, (tuple, list)) and all(isinstance(a, int) for a in axis))
    ):
        raise TypeError(f"{where}: axis must be None, an int or a tuple of ints, got {axis!r}")

    def init(params: Params) -> dict:
        for p in params.values():
            if p.ndim >= 2:
                _norm_dims(axis, p.ndim, where)
        return {}

    def update(updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        params = need_params(params, where)
        get = caster(max_value)
        out = {}
        for k, u in updates.items():
            w = params[k]
            if w.ndim < 2:
                out[k] = u
                continue
            z = w + u
            c = get(z.dtype)[0]
            norm = torch.linalg.vector_norm(z, dim=_norm_dims(axis, z.ndim, where), keepdim=True)
            # c / max(norm, c) is 1 inside the ball; `where` keeps those updates bit-exact.
            shrunk = z * (c / torch.clamp(norm, min=c)) - w
            out[k] = torch.where(norm > c, shrunk, u)
        return out, state

    return Transform(init, TaggedUpdate(update, post_step=where))
