"""Adam's moments and denominator in one pass of regfn's C kernel, eagerly on CPU.

Eagerly, :func:`~regfn.optim.scale_by_adam`'s per-leaf arithmetic is six
torch operations (``lerp``, ``mul``, ``addcmul``, ``sqrt``, ``div``, ``add``),
each a pass over a parameter-sized tensor. In a vmapped sweep those tensors
hold every configuration's copy of a parameter, K times one model's, and no
longer stay in cache between passes: for issue #22's 30-512-256-128-2 MLP at
K = 32 the six passes were a fifth of an eager step (docs/benchmarks/sweep.md).
:func:`adam_moments` does them in one pass of the C kernel that
:mod:`regfn.random._native` builds (``regfn_adam_moments``); under ``vmap``
through the custom operator ``regfn::adam_moments``, whose vmap rule hands the
kernel every configuration's scalars at once.

It is used eagerly (never in traces or compiled code: inductor fuses the same
arithmetic itself) for float32 CPU tensors outside autograd, under no functorch
transform other than ``vmap``, where the kernel is loaded. The numbers are
torch's: the same fused multiply-adds as torch's vectorised ``lerp`` and
``addcmul``, and IEEE division and addition; only ``sqrt`` differs, by one unit
in the last place for some elements (torch's float ``sqrt`` on x86 builds goes
through MKL's vector math, which is not always correctly rounded; the kernel's
is). A configuration gets the same bits under ``vmap`` as alone, and in any
chunk.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..random import _native
from ..random._host import tracing
from ._checks import grad_free

__all__ = ["Scalars", "adam_moments", "pack"]


def _run(g: Tensor, m: Tensor, v: Tensor, scalars: Tensor, outs: tuple[Tensor, Tensor] | None = None) -> tuple:
    """``(m', v', den)`` by the kernel; ``scalars`` is ``(*prefix, 5)`` for a prefix of ``g``'s shape.

    ``outs`` (``(m_out, v_out)``, contiguous, ``g``'s shape; may be ``m`` and ``v`` themselves) receive the
    moments; otherwise they are new tensors.
    """
    g, m, v, scalars = g.contiguous(), m.contiguous(), v.contiguous(), scalars.contiguous()
    m_out, v_out = outs if outs is not None else (torch.empty_like(g), torch.empty_like(g))
    den = torch.empty_like(g)
    outer = scalars.numel() // 5
    if g.numel():
        _native._loaded().regfn_adam_moments(g.data_ptr(), m.data_ptr(), v.data_ptr(), scalars.data_ptr(), outer,
                                             g.numel() // outer, m_out.data_ptr(), v_out.data_ptr(), den.data_ptr())  # fmt: skip
    return m_out, v_out, den


def _pure(g: Tensor, m: Tensor, v: Tensor, scalars: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return _run(g, m, v, scalars)


def _batched(op: Any, info: Any, in_dims: tuple, g: Tensor, m: Tensor, v: Tensor, scalars: Tensor) -> tuple:
    """Every argument with the batch dimension in front: one kernel call for all configurations."""

    def front(t: Tensor, dim: int | None) -> Tensor:
        return t.movedim(dim, 0) if dim is not None else t.expand(info.batch_size, *t.shape)

    return op(*(front(t, d) for t, d in zip((g, m, v, scalars), in_dims, strict=True))), (0, 0, 0)


def _operator() -> Any:
    """``regfn::adam_moments`` with its fake and vmap rules; ``None`` on a torch without
    ``torch.library.register_vmap`` or where the name is taken (this module imported a second time)."""
    library = torch.library
    if not hasattr(library, "custom_op") or not hasattr(library, "register_vmap"):
        return None
    try:
        op = library.custom_op("regfn::adam_moments", _pure, mutates_args=(), device_types="cpu")
    except RuntimeError:
        return None
    op.register_fake(lambda g, m, v, scalars: (torch.empty_like(g), torch.empty_like(g), torch.empty_like(g)))
    library.register_vmap(op, functools.partial(_batched, op))
    return op


_OPERATOR = _operator()


def _transforms() -> list:
    """The active functorch transforms, innermost last (empty outside them)."""
    stack = torch._C._functorch.get_interpreter_stack()
    return [] if stack is None else [level.key() for level in stack]


class Scalars(NamedTuple):
    """Adam's five per-step scalars packed for the kernel (:func:`pack`), and whether ``vmap`` is active."""

    packed: Tensor
    vmapped: bool


def pack(w1: Any, b2: Any, w2: Any, k2: Any, eps_bc1: Any) -> Scalars | None:
    """The scalars of one update for :func:`adam_moments`, or ``None`` where the kernel is not used.

    Not used while torch traces or compiles, under a functorch transform other
    than ``vmap``, where autograd records a scalar, for a scalar that is not a
    Python number or a 0-d float32 CPU tensor, or where the kernel is not loaded
    (the first eager call builds or loads it). Called once per update: every
    leaf of one dtype shares the scalars.
    """
    scalars = (w1, b2, w2, k2, eps_bc1)
    if _OPERATOR is None or tracing() or not grad_free(*scalars):
        return None
    for s in scalars:
        if isinstance(s, Tensor) and (s.ndim != 0 or s.dtype != torch.float32 or s.device.type != "cpu"):
            return None
    transforms = _transforms()
    vmap = torch._C._functorch.TransformType.Vmap
    if any(key != vmap for key in transforms) or not _native.loaded():
        return None
    packed = torch.stack([s if isinstance(s, Tensor) else torch.tensor(s, dtype=torch.float32) for s in scalars])
    return Scalars(packed, bool(transforms))


def adam_moments(
    g: Tensor, m: Tensor, v: Tensor, scalars: Scalars | None, donate: bool = False
) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(lerp(m, g, w1), b2 * v + w2 * g * g, sqrt(v') / k2 + eps_bc1)`` in one pass, or ``None`` where not used.

    ``scalars`` comes from :func:`pack` (``None``: not used). The tensors must
    be float32 CPU tensors of one shape, outside autograd. With ``donate``
    (eager, outside transforms: :func:`~regfn.optim.step_`) the moments are
    written into ``m`` and ``v``.

    Examples:
        >>> import torch
        >>> g, m, v = torch.tensor([2.0]), torch.zeros(1), torch.zeros(1)
        >>> out = adam_moments(g, m, v, pack(0.1, 0.999, 0.001, 0.001 ** 0.5 / 0.1, 1e-8 * 0.1))
        >>> out is None or [round(t.item(), 4) for t in out] == [0.2, 0.004, 0.2]  # m, v, sqrt(v) / k2 + eps_bc1
        True
    """
    if scalars is None or g.device.type != "cpu" or not grad_free(g, m, v):
        return None
    if any(t.dtype != torch.float32 or t.shape != g.shape for t in (g, m, v)):
        return None
    if scalars.vmapped:
        return _OPERATOR(g, m, v, scalars.packed)
    outs = (m, v) if donate and m.is_contiguous() and v.is_contiguous() else None
    return _run(g, m, v, scalars.packed, outs)
