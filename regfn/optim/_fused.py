"""Adam's moments and denominator, or its whole step, in one pass of regfn's C kernel, eagerly on CPU.

Eagerly, :func:`~regfn.optim.scale_by_adam`'s per-leaf arithmetic is six
torch operations (``lerp``, ``mul``, ``addcmul``, ``sqrt``, ``div``, ``add``),
each a pass over a parameter-sized tensor. In a vmapped sweep those tensors
hold every configuration's copy of a parameter, K times one model's, and no
longer stay in cache between passes: for issue #22's 30-512-256-128-2 MLP at
K = 32 the six passes were a fifth of an eager step (docs/benchmarks/sweep.md).
:func:`adam_moments` does them in one pass of the C kernel that
:mod:`regfn.random._native` builds (``regfn_adam_moments``). Under ``vmap`` the
batched tensors are taken apart by :func:`regfn._unbatch.unbatched`, so that
one call covers every configuration (a custom operator's vmap rule, tried
first, cost about 150 us more a call and lost to torch's six operations on
small models).

:func:`adam_step` goes on to the new parameters in the same pass: ``p + (m' /
den) * f``, ``f`` the learning rate's factor (``regfn_adam_step``), from the
gradient alone or from the gradient plus an L2 penalty's, ``g + c * (p + p)``,
which the pass reads ``p`` for anyway (``regfn_adam_step_l2``). It serves
:func:`~regfn.optim._step.update_and_apply`, the update of regfn's own
training code (sweeps and :func:`regfn.train`), when the optimizer's chain
ends in ``[scale_by_adam, scale_by_learning_rate]`` (Adam, with or without
torch's coupled ``weight_decay`` and ``maximize``, which run before it; not
AMSGrad, not AdamW): four tensors read and three written where the moments'
pass followed by the quotient, the learning rate and the sum read eight and
wrote six (docs/benchmarks/sweep.md).

It is used eagerly (never in traces or compiled code: inductor fuses the same
arithmetic itself) for float32 CPU tensors outside autograd, under no functorch
transform other than ``vmap``, where the kernel is loaded, and for parameters of
at least :data:`FUSE_FROM` elements per configuration (a bound that does not
depend on how many configurations run at once, so a configuration takes the
same path alone, vmapped and in any chunk). The numbers are torch's: the same
fused multiply-adds as torch's vectorised ``lerp`` and ``addcmul``, and IEEE
division and addition; only ``sqrt`` differs, by one unit in the last place
for some elements (torch's float ``sqrt`` on x86 builds goes through MKL's
vector math, which is not always correctly rounded; the kernel's is).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._unbatch import only_vmap_active, unbatched
from ..random import _native
from ..random._host import tracing
from ._checks import configuration_rows, grad_free, is_configuration_column

__all__ = ["FUSE_FROM", "adam_moments", "adam_step", "pack", "transposed_rows"]

FUSE_FROM = 8192
"""Elements of one configuration's parameter from which its moments take the kernel's one pass (below it, the
fixed cost of taking vmapped tensors apart outweighs the passes saved: docs/benchmarks/sweep.md)."""


def pack(*scalars: Any) -> tuple[Any, ...] | None:
    """The scalars of one update, ``(w1, b2, w2, k2, eps_bc1)`` for :func:`adam_moments` (with ``f`` after
    them for :func:`adam_step`), or ``None`` where the kernel is not used.

    Not used while torch traces or compiles, under a functorch transform other
    than ``vmap``, where autograd records a scalar, for a scalar that is not a
    Python number or a 0-d float32 CPU tensor (or a column of the configurations'
    values, :func:`~regfn.optim._checks.is_configuration_column`), or where the kernel
    is not loaded (the first eager call builds or loads it). Called once per
    update: every leaf of one dtype shares the scalars.
    """
    if tracing() or not grad_free(*scalars):
        return None
    for s in scalars:
        if not isinstance(s, Tensor):
            continue
        if (s.ndim and not is_configuration_column(s)) or s.dtype != torch.float32 or s.device.type != "cpu":
            return None
    if not only_vmap_active() or not _native.loaded():
        return None
    return scalars


def adam_moments(
    g: Tensor, m: Tensor, v: Tensor, scalars: tuple[Any, ...] | None, donate: bool = False
) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(lerp(m, g, w1), b2 * v + w2 * g * g, sqrt(v') / k2 + eps_bc1)`` in one pass, or ``None`` where not used.

    ``scalars`` comes from :func:`pack` (``None``: not used). The tensors must
    be float32 CPU tensors of one shape with at least :data:`FUSE_FROM`
    elements, outside autograd. With ``donate`` (eager, outside transforms:
    :func:`~regfn.optim.step_`) the moments are written into ``m`` and ``v``.

    Examples:
        >>> import torch
        >>> g, m, v = torch.full((8192,), 2.0), torch.zeros(8192), torch.zeros(8192)
        >>> out = adam_moments(g, m, v, pack(0.1, 0.999, 0.001, 0.001 ** 0.5 / 0.1, 1e-8 * 0.1))
        >>> out is None or [round(t[0].item(), 4) for t in out] == [0.2, 0.004, 0.2]  # m, v, sqrt(v) / k2 + eps
        True
    """
    return _fused("regfn_adam_moments", (g, m, v), scalars, donate)


def adam_step(
    g: Tensor, m: Tensor, v: Tensor, p: Tensor, scalars: tuple[Any, ...] | None
) -> tuple[Tensor, Tensor, Tensor] | None:
    """Adam's whole step in one pass: ``(m', v', p + (m' / den) * f)``, with :func:`adam_moments`'s ``m'``,
    ``v'`` and ``den``, or ``None`` where not used.

    ``scalars`` comes from :func:`pack` with a sixth scalar, ``f`` (the
    learning rate's factor, ``-lr``), and optionally a seventh, ``c``: the
    moments then take the gradient ``g + c * (p + p)``, an L2 penalty's added
    as :func:`~regfn.optim._base.with_l2_gradient` adds it
    (``regfn_adam_step_l2``). The numbers are those of
    :func:`adam_moments` followed by torch's ``div``, ``mul`` and ``add``
    (what ``scale_by_adam``, ``scale_by_learning_rate`` and
    :func:`~regfn.optim.apply_updates` run): four tensors read and three
    written, against fourteen passes. Same conditions as :func:`adam_moments`;
    nothing is written into its inputs.

    Examples:
        >>> import torch
        >>> g, m, v, p = torch.full((8192,), 2.0), torch.zeros(8192), torch.zeros(8192), torch.ones(8192)
        >>> out = adam_step(g, m, v, p, pack(0.1, 0.999, 0.001, 0.001 ** 0.5 / 0.1, 1e-8 * 0.1, -0.5))
        >>> out is None or round(out[2][0].item(), 4) == 0.5  # 1 - 0.5 * sign(g)
        True
    """
    kernel = "regfn_adam_step_l2" if scalars is not None and len(scalars) == 7 else "regfn_adam_step"
    return _fused(kernel, (g, m, v, p), scalars, False)


_TRANSPOSED = {"regfn_adam_step": "regfn_adam_step_t", "regfn_adam_step_l2": "regfn_adam_step_l2_t"}
"""The whole step's kernels that read a gradient stored transposed per configuration (:func:`transposed_rows`)."""


def transposed_rows(g: Tensor) -> bool:
    """Whether ``g`` is ``(K, a, b)`` stored as ``(K, b, a)``: each configuration's matrix transposed, as autograd
    returns the weight gradient of a vmapped ``x @ w.mT`` (``bmm``'s gradient of its second operand)."""
    if g.ndim != 3 or g.shape[1] < 2 or g.shape[2] < 2:
        return False
    return g.stride() == (g.shape[1] * g.shape[2], 1, g.shape[1])


def _fused(
    kernel: str, tensors: tuple[Tensor, ...], scalars: tuple[Any, ...] | None, donate: bool
) -> tuple[Tensor, Tensor, Tensor] | None:
    """One of the kernels on ``tensors`` (``g, m, v[, p]``), or ``None`` where it is not used (see
    :func:`adam_moments`)."""
    g = tensors[0]
    if scalars is None or g.device.type != "cpu":
        return None
    rows = configuration_rows()
    if g.numel() // (rows or 1) < FUSE_FROM or not grad_free(*tensors):
        return None  # the bound is on one configuration's elements (as rows, g holds every configuration's)
    if any(t.dtype != torch.float32 or t.shape != g.shape for t in tensors):
        return None
    n = len(tensors)
    if rows is not None:  # (K, n) or (K, a, b) rows, each scalar a number or a column
        columns = tuple(s.reshape(rows) if isinstance(s, Tensor) and s.ndim else s for s in scalars)
        if kernel in _TRANSPOSED and transposed_rows(g) and all(t.is_contiguous() for t in tensors[1:]):
            return _run(_TRANSPOSED[kernel], tensors, columns, 1, transposed=True)
        return _run(kernel, tensors, columns, 1)
    m, v = tensors[1:3]
    if donate and m.is_contiguous() and v.is_contiguous():  # eager, outside transforms: into the old state
        return _run(kernel, tensors, scalars, 0, (m, v))
    return unbatched(lambda *args: _run(kernel, args[:n], args[n:-1], args[-1]), (*tensors, *scalars))


def _run(
    kernel: str,
    tensors: tuple[Tensor, ...],
    scalars: tuple[Any, ...],
    batch_dims: int,
    outs: tuple[Tensor, Tensor] | None = None,
    transposed: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(m', v', out)`` by ``kernel``. The first ``batch_dims`` dimensions of ``tensors`` (``g, m, v[, p]``) are
    configurations; each scalar is a number or a tensor of those dimensions. ``outs`` (``(m_out, v_out)``,
    contiguous, ``g``'s shape; may be ``m`` and ``v``) receive the moments; otherwise they are new tensors.
    ``transposed``: ``g`` is ``(K, a, b)`` stored transposed (:func:`transposed_rows`) and read as it is by one of
    the ``_t`` kernels; the others are contiguous."""
    if not transposed:
        tensors = tuple(t.contiguous() for t in tensors)
    g, like = tensors[0], tensors[-1]  # the outputs take the last tensor's layout: row-major whatever g's is
    prefix = g.shape[:batch_dims]
    packed = torch.stack([torch.as_tensor(s, dtype=torch.float32).expand(prefix) for s in scalars], -1).contiguous()
    m_out, v_out = outs if outs is not None else (torch.empty_like(like), torch.empty_like(like))
    out = torch.empty_like(like)
    outer = packed.numel() // len(scalars)
    if g.numel():
        pointers = [t.data_ptr() for t in tensors]
        sizes = (outer, g.shape[1], g.shape[2]) if transposed else (outer, g.numel() // outer)
        getattr(_native._loaded(), kernel)(*pointers, packed.data_ptr(), *sizes,
                                           m_out.data_ptr(), v_out.data_ptr(), out.data_ptr())  # fmt: skip
    return m_out, v_out, out
