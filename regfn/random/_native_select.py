"""Dropout's masked division, ``where(mask, x / keep, 0)``, in one pass of the C kernel of :mod:`._native`.

:func:`dropout_select` (which :func:`regfn.dropout` calls eagerly) gives torch's
bits and gradients: IEEE division, +0 where dropped, one pass instead of
torch's division and its unvectorised ``where``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._eager import _vmapped_batch
from ._host import tracing
from ._native import _loaded, usable

__all__ = ["SELECT_FROM", "dropout_select"]

SELECT_FROM = 2**18
"""The elements (every vmapped configuration counted) from which dropout's masked division runs in the kernel."""


def _select_run(x: Tensor, mask: Tensor, keep: Tensor) -> Tensor:
    """``where(mask, x / keep, 0)`` by the kernel; ``keep``'s shape is a prefix of ``x``'s, ``mask`` is ``x``'s."""
    x, mask, keep = x.contiguous(), mask.contiguous(), keep.to(torch.float32).contiguous()
    out = torch.empty_like(x)
    outer = keep.numel()
    if out.numel():
        _loaded().regfn_dropout_select(x.data_ptr(), mask.data_ptr(), keep.data_ptr(), outer, x.numel() // outer,
                                 out.data_ptr())  # fmt: skip
    return out


def _against(keep: Tensor, x: Tensor) -> Tensor:
    """``keep`` (a prefix of ``x``'s shape) with trailing ones, to broadcast against ``x``."""
    return keep.reshape(*keep.shape, *[1] * (x.ndim - keep.ndim))


class _Select(torch.autograd.Function):
    """The kernel's masked division with torch's gradients, for autograd and ``torch.func`` (grad, vmap)."""

    @staticmethod
    def forward(x: Tensor, mask: Tensor, keep: Tensor) -> Tensor:
        return _select_run(x, mask, keep)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, mask, keep = inputs
        ctx.save_for_backward(mask, keep, x if ctx.needs_input_grad[2] else None)
        ctx.save_for_forward(x, mask, keep)

    @staticmethod
    def jvp(ctx: Any, x_t: Tensor | None, mask_t: Any, keep_t: Tensor | None) -> Tensor:
        """Forward mode (``jacfwd``, ``hessian``): the same masked division of ``x``'s tangent, plus
        ``where(mask, -x * keep_t / keep**2, 0)`` for a tangent of ``keep``."""
        x, mask, keep = ctx.saved_tensors
        out = _Select.apply(x_t, mask, keep) if x_t is not None else torch.zeros_like(x)
        if keep_t is not None:
            out = out + torch.where(mask, -x * _against(keep_t, x) / _against(keep * keep, x), 0.0)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple:
        """``x``'s gradient is the same masked division of ``grad`` (``where``'s, then ``div``'s backward);
        ``keep``'s, rarely wanted, is ``-grad * x / keep**2`` summed to ``keep``'s shape."""
        mask, keep, x = ctx.saved_tensors
        grad_x = _Select.apply(grad, mask, keep) if ctx.needs_input_grad[0] else None
        grad_keep = None
        if ctx.needs_input_grad[2]:
            shaped = _against(keep, x)
            kept = torch.where(mask, grad, 0.0)
            grad_keep = (-kept * x / (shaped * shaped)).sum(dim=tuple(range(keep.ndim, x.ndim))).to(keep.dtype)
        return grad_x, None, grad_keep

    @staticmethod
    def vmap(info: Any, in_dims: tuple, x: Tensor, mask: Tensor, keep: Tensor) -> tuple:
        """Every argument gets the batch dimension in front (``keep`` stays a prefix of ``x``'s shape)."""

        def front(t: Tensor, dim: int | None) -> Tensor:
            return t.movedim(dim, 0) if dim is not None else t.expand(info.batch_size, *t.shape)

        return _Select.apply(front(x, in_dims[0]), front(mask, in_dims[1]), front(keep, in_dims[2])), 0


def dropout_select(x: Tensor, mask: Tensor, keep: float | Tensor) -> Tensor | None:
    """``torch.where(mask, x / keep, 0.0)``, bit for bit and in gradient, by the kernel; ``None`` where not used.

    Used eagerly (never in traces or compiled code), for float32 ``x`` on CPU, with ``mask`` of ``x``'s shape
    and ``keep`` a Python float or a 0-d float32 tensor, from :data:`SELECT_FROM` elements on (every vmapped
    configuration counted): one pass instead of torch's division and its unvectorised ``where``, forward and
    backward (a million elements: 11.2 -> 5.2 ms under ``vmap(grad)``; below about 150,000 the
    autograd.Function's fixed cost under ``torch.func``, about 1.3 ms, outweighs the pass it saves).
    """
    if tracing():  # compiled code fuses torch's division and where itself
        return None
    if x.dtype != torch.float32 or mask.shape != x.shape or not usable(x):
        return None
    if x.numel() * _vmapped_batch(x) < SELECT_FROM:
        return None
    if isinstance(keep, Tensor):
        if keep.dtype != torch.float32 or keep.ndim != 0:
            return None
    else:
        keep = torch.tensor(keep, dtype=torch.float32)
    return _Select.apply(x, mask, keep)
