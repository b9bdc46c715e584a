"""Max pooling of CPU feature maps without torch's plane-by-plane kernel, for eager ``nn.Module`` models.

torch's CPU ``max_pool2d`` walks a contiguous ``(N, C, H, W)`` tensor one
``H x W`` plane at a time, which costs about 7 ns an element on a CNN's small
planes (the digits CNN's 8 x 8 maps), against about 1 ns for the same windows
of a channels-last tensor. Under ``vmap`` it is worse: the batching rule first
copies the configurations' maps into ``(K * N, C, H, W)`` order.

:func:`max_pool2d` (which :func:`regfn.nn.functionalize` and
:func:`regfn.nn.from_module` route ``F.max_pool2d`` to, eagerly on CPU) finds
each window's maximum with the channels-last kernel, on a channels-last copy
of the input (every configuration's channels side by side), and gathers those
elements from the input. A maximum is exact, both kernels pick the same
element (the first of equal ones, or the first NaN), and the gather's
backward adds each output's gradient into zeros at that element, as the
pooling backward does: the same values, the same gradients, the same output
layout (contiguous), for float32 and float64 maps whose windows do not
overlap. Anywhere else (half precision, overlapping or dilated windows,
indices asked for, a channels-last input, another device, ``torch.compile``,
``torch.func.grad``) torch's own function runs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

from .._unbatch import peelable, unbatched
from ..random._host import tracing

__all__ = ["max_pool2d"]

_EXACT = (torch.float32, torch.float64)  # the dtypes whose results are torch's bit for bit, NaNs included


def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """``F.max_pool2d`` with the same results, faster on CPU feature maps of small planes (module docstring).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> x = torch.randn(2, 3, 8, 8)
        >>> bool(torch.equal(max_pool2d(x, 2), F.max_pool2d(x, 2)))
        True
    """
    kernel = list(_pair(kernel_size))
    strides = kernel if stride is None or stride == [] else list(_pair(stride))
    if return_indices or not _fast(input, kernel, strides, dilation):
        torch_s: Any = F.max_pool2d  # typed by overloads on return_indices
        return torch_s(
            input, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=return_indices
        )
    pads = list(_pair(padding))
    return unbatched(lambda t, dims: _pooled(t, dims, kernel, strides, pads, ceil_mode), (input,))


def _fast(input: Any, kernel: list[int], stride: list[int], dilation: Any) -> bool:
    """Whether :func:`_pooled` serves this call: eager (asked first: traced code keeps torch's function, which the
    compiler lowers itself), CPU, 4-d float32 or float64 maps (torch pools half precision in float32 and may give
    another NaN), windows that neither overlap nor dilate."""
    if tracing() or list(_pair(dilation)) != [1, 1] or len(kernel) != 2 or len(stride) != 2:
        return False
    if any(s < k for s, k in zip(stride, kernel, strict=True)):
        return False
    return peelable(input) and input.device.type == "cpu" and input.dtype in _EXACT and input.ndim == 4


def _pooled(t: Tensor, dims: int, kernel: list[int], stride: list[int], padding: list[int], ceil_mode: bool) -> Tensor:
    """Max pooling of the plain ``(*batch, N, C, H, W)`` tensor ``t`` (``dims`` batch dimensions in front)."""
    lead, (n, c, h, w) = t.shape[:dims], t.shape[dims:]
    if t.stride(-1) != 1 or (h > 1 and t.stride(-2) != w):  # not stored plane by plane: torch's kernel is fine
        pooled = F.max_pool2d(t.reshape(-1, c, h, w), kernel, stride, padding, 1, ceil_mode)
        return pooled.view(*lead, n, c, *pooled.shape[-2:])
    front, behind_n = tuple(range(dims)), tuple(range(1, dims + 1))
    with torch.no_grad():
        planes = t.detach().movedim(front, behind_n).reshape(n, -1, h, w)
        planes = planes.contiguous(memory_format=torch.channels_last)
        where = torch.ops.aten.max_pool2d_with_indices(planes, kernel, stride, padding, [1, 1], ceil_mode)[1]
    oh, ow = where.shape[-2:]
    where = where.view(n, *lead, c, oh, ow).movedim(behind_n, front).reshape(*lead, n, c, oh * ow)
    return t.reshape(*lead, n, c, h * w).gather(-1, where).view(*lead, n, c, oh, ow)
