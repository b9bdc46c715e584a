"""Run a function of plain tensors on vmapped ones: functorch's unwrap and wrap, one vmap level at a time.

regfn's C kernel (:mod:`regfn.random._native`) works on plain CPU tensors. Under
``torch.func.vmap`` a custom operator's vmap rule can hand it the batched
tensors' storage, but that path costs about 150-200 us a call in Python
(``torch.library``'s vmap machinery), more than the kernel saves on a small
model. :func:`unbatched` does the same job directly: it takes each vmap level
apart (the batch dimension moved to the front, tensors not batched at that
level expanded), calls the function once on plain tensors, and wraps the
results back at every level. :func:`unbatched_under_grad` does it for integer
tensors inside ``torch.func.grad`` as well (a sweep draws its dropout masks
inside the differentiated loss).

Only for eager code: while torch traces or compiles, call the custom operator
instead (:func:`peelable` says whether a tensor can be taken apart).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["only_vmap_active", "peelable", "unbatched", "unbatched_under_grad", "without_grad_levels"]

_F = torch._C._functorch  # private, present since torch 2.0


def without_grad_levels(t: Tensor) -> Tensor:
    """An integer tensor without the ``torch.func.grad`` wrappers above its vmap levels.

    Inside a function that ``grad`` differentiates, tensors it computes from
    wrapped inputs are wrapped too, integers included (a key's words). Integers
    carry no gradient, so the wrappers can be dropped: the result is the same
    tensor at the enclosing ``vmap`` levels, which the differentiated function
    may use like any tensor from outside. Floating tensors are returned as
    they are.
    """
    if t.is_floating_point() or t.is_complex():
        return t
    while _F.is_functorch_wrapped_tensor(t) and not _F.is_batchedtensor(t):
        t = _F.get_unwrapped(t)
    return t


def only_vmap_active() -> bool:
    """Whether every functorch transform running now (if any) is a ``vmap``: then vmapped tensors can be taken apart.

    Examples:
        >>> seen = []
        >>> _ = torch.func.vmap(lambda x: seen.append(only_vmap_active()) or x)(torch.zeros(2))
        >>> _ = torch.func.grad(lambda x: seen.append(only_vmap_active()) or x)(torch.tensor(0.0))
        >>> only_vmap_active(), seen
        (True, [True, False])
    """
    return all(level.key() == _F.TransformType.Vmap for level in _F.get_interpreter_stack() or [])


def peelable(t: Any) -> bool:
    """Whether ``t`` is a tensor whose functorch wrappers (if any) are all vmap levels."""
    if not isinstance(t, Tensor):
        return False
    while _F.is_functorch_wrapped_tensor(t):
        if not _F.is_batchedtensor(t):
            return False
        t = _F.get_unwrapped(t)
    return True


def unbatched_under_grad(fn: Callable[..., Any], args: tuple[Tensor, ...]) -> Any:
    """:func:`unbatched` for integer tensors that may sit inside ``torch.func.grad`` levels, or ``None``.

    Integers carry no gradient: their grad wrappers are dropped
    (:func:`without_grad_levels`), the grad levels above the vmap levels are
    taken off the interpreter stack while ``fn`` runs on the plain tensors
    (else those would be lifted into them), and the result is lifted back into
    those levels, so that the differentiated function may update it in place.
    ``None`` where the tensors cannot be taken apart (a grad level between two
    vmap levels, another transform).
    """
    args = tuple(without_grad_levels(t) for t in args)
    if not all(peelable(t) for t in args):
        return None
    stack = _F.get_interpreter_stack() or []
    vmap = _F.TransformType.Vmap
    top = len(stack)
    while top and stack[top - 1].key() != vmap:
        top -= 1
    if any(level.key() != vmap for level in stack[:top]):
        return None
    grad = _F.TransformType.Grad
    if any(level.key() != grad for level in stack[top:]):
        return None
    lifted = [level.level() for level in stack[top:]]
    popped = [_F.pop_dynamic_layer_stack() for _ in lifted]
    try:
        out = unbatched(fn, args)
    finally:
        for layer in reversed(popped):
            _F.push_dynamic_layer_stack(layer)
    for level in lifted:
        out = (
            tuple(_F._wrap_for_grad(o, level) for o in out) if isinstance(out, tuple) else _F._wrap_for_grad(out, level)
        )
    return out


def unbatched(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """``fn(*plain_args, batch_dims)`` for vmapped ``args``, its result(s) batched back.

    Every tensor in ``args`` must be :func:`peelable`; other arguments pass
    through. ``fn`` receives plain tensors whose first ``batch_dims``
    dimensions are the vmap levels' batch dimensions (outermost first), and
    returns a tensor or a tuple of tensors with those dimensions in front.

    Examples:
        >>> import torch
        >>> x = torch.arange(6.0).reshape(2, 3)
        >>> torch.func.vmap(lambda r: unbatched(lambda t, dims: t * 10 + dims, (r,)))(x)
        tensor([[ 1., 11., 21.],
                [31., 41., 51.]])
    """
    return _peel(fn, args, 0)


def _peel(fn: Callable[..., Any], args: tuple[Any, ...], batch_dims: int) -> Any:
    here = [isinstance(t, Tensor) and _F.is_batchedtensor(t) for t in args]
    if not any(here):
        return fn(*args, batch_dims)
    level = max(_F.maybe_get_level(t) for t, h in zip(args, here, strict=True) if h)
    here = [h and _F.maybe_get_level(t) == level for t, h in zip(args, here, strict=True)]
    peeled = [_F.get_unwrapped(t).movedim(_F.maybe_get_bdim(t), 0) if h else t for t, h in zip(args, here, strict=True)]
    size = next(t.shape[0] for t, h in zip(peeled, here, strict=True) if h)
    peeled = [
        t.expand(size, *t.shape) if isinstance(t, Tensor) and not h else t for t, h in zip(peeled, here, strict=True)
    ]
    out = _peel(fn, tuple(peeled), batch_dims + 1)
    if isinstance(out, tuple):
        return tuple(_F._add_batch_dim(o, 0, level) for o in out)
    return _F._add_batch_dim(out, 0, level)
