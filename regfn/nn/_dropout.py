"""Keyed dropout: :func:`dropout`, :func:`flax_dropout_key`, :func:`mc_dropout` and :func:`numpy_dropout`.

:func:`dropout` is Flax's ``nn.Dropout`` rule, bit for bit in the mask, driven
by an explicit :mod:`regfn.random` key; :func:`flax_dropout_key` derives the
key a Flax ``Dropout`` layer draws; :func:`mc_dropout` averages predictions
over many keys; :func:`numpy_dropout` is the tutorial's numpy reference. The
rate check (``_check_rate``) is shared with the MLP and the module bridge.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_real, is_int
from .._hparams import bounds
from ..random import fold_in, split
from ..random import key as _make_key
from ..random._sample import _bernoulli, keep_mask

__all__ = ["dropout", "flax_dropout_key", "mc_dropout", "numpy_dropout"]

Rate = float | Tensor
_KEY_HINT = "pass one, e.g. key=regfn.random.key(0), or use train=False"


def _check_rate(p: object, fn: str) -> Rate:
    if isinstance(p, Tensor):
        if not p.dtype.is_floating_point:
            raise TypeError(f"{fn}: a tensor p must be floating point, got {p.dtype}")
        if p.ndim != 0:
            raise ValueError(
                f"{fn}: p must be a scalar (0-d tensor), got shape {tuple(p.shape)}; "
                "use torch.func.vmap to sweep over several rates"
            )
        return p
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{fn}: p must be a float or a 0-d floating tensor, got {type(p).__name__}")
    return check_real(p, "p", fn, **bounds("p"))


def _mask_shape(shape: torch.Size, broadcast_dims: Sequence[int] | int) -> tuple[int, ...]:
    dims = (broadcast_dims,) if isinstance(broadcast_dims, int) else tuple(broadcast_dims)
    out = list(shape)
    seen: set[int] = set()
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"dropout: broadcast_dims must be ints, got {broadcast_dims!r}")
        if not -len(out) <= d < len(out):
            raise ValueError(f"dropout: broadcast_dims {tuple(dims)} out of range for an input with {len(out)} dims")
        d = int(d) % len(out)
        if d in seen:
            raise ValueError(f"dropout: broadcast_dims {tuple(dims)} repeats dimension {d}")
        seen.add(d)
        out[d] = 1
    return tuple(out)


def dropout(
    key: Tensor | None,
    x: Tensor,
    p: Rate,
    *,
    train: bool = True,
    broadcast_dims: Sequence[int] | int = (),
) -> Tensor:
    """Inverted dropout driven by an explicit key, with ``flax.linen.Dropout``'s rule.

    ``keep = 1 - p``, ``mask = regfn.random.bernoulli(key, keep, mask_shape)``
    and the result is ``where(mask, x / keep, 0)``, where ``mask_shape`` is
    ``x.shape`` with size 1 along ``broadcast_dims`` (those dimensions share
    one mask). Given the key a Flax ``Dropout`` layer draws (see
    :func:`flax_dropout_key`) the mask equals Flax's and the kept values agree
    to 2 ulp (XLA's float32 division is not always correctly rounded).

    A Python float ``p`` is handled like Flax: ``p == 0`` (or ``train=False``)
    returns ``x`` itself, ``p == 1`` returns zeros (with zero, not NaN,
    gradients), and otherwise ``keep = 1.0 - p`` is computed in double
    precision and rounded to float32 for the comparison with float32
    uniforms, exactly as ``jax.random.bernoulli`` does with a Python float.

    A 0-d tensor ``p`` (for example a rate that ``torch.func.vmap`` sweeps
    over) takes no Python branch on its value: ``keep = 1 - p`` is computed in
    ``p``'s dtype (float32 ``p`` matches Flax with a float32 ``jnp`` rate
    exactly), except that a float64 ``keep`` is rounded to float32 (JAX
    without x64 has no float64, and a float64 sweep then reproduces the
    Python-float masks); uniforms are drawn in ``keep``'s dtype and ``x`` is
    divided by ``where(keep > 0, keep, 1)`` (then cast back to ``x.dtype``),
    so ``p == 1`` gives zeros and finite gradients. A tensor ``p`` is not
    range-checked, and it always needs a key when ``train=True``.

    On CPU the kept values are correctly rounded quotients; XLA's (and
    CUDA's division by a scalar) may differ from them by 1 ulp.

    Eagerly on CPU with regfn's C kernel (:func:`regfn.random.native_status`)
    and a float32 ``x``, the mask comes as float32 ones and zeros, drawn and
    compared in one pass, and multiplies ``x / keep`` (then ``+ 0.0``, so that
    a dropped negative gives ``+0.0`` as ``where`` does): the same values,
    several times sooner than torch's ``where`` (docs/benchmarks/sweep.md),
    with three differences in special values: a kept ``-0.0`` comes out
    ``+0.0``, an infinite or NaN element that is dropped gives NaN (not 0),
    and a dropped element's gradient may be ``-0.0``.

    Args:
        key: a key from :func:`regfn.random.key` (may be ``None`` when
            ``train=False`` or ``p == 0.0``). It is moved to ``x``'s device.
        x: a floating tensor.
        p: the drop probability (not the keep probability), a float in
            ``[0, 1]`` or a 0-d floating tensor.
        train: ``False`` turns dropout off (returns ``x``).
        broadcast_dims: dimensions that share the same mask (e.g. ``(-1,)``).

    Returns:
        A tensor like ``x``.

    Raises:
        ValueError: for a float ``p`` outside ``[0, 1]``, a missing key, or
            ``broadcast_dims`` out of range or repeated.
        TypeError: for a non-float ``p`` or non-int ``broadcast_dims``.

    Examples:
        >>> import torch, regfn.random as rr
        >>> x = torch.ones(2, 4)
        >>> y = dropout(rr.key(0), x, 0.5)
        >>> bool(((y == 0) | (y == 2)).all())
        True
        >>> dropout(None, x, 0.5, train=False) is x
        True
        >>> y = dropout(rr.key(0), x, 0.5, broadcast_dims=(0,))
        >>> bool((y[0] == y[1]).all())
        True
    """
    return _dropout(key, x, p, train=train, broadcast_dims=broadcast_dims)


def _mask(key: Tensor, keep: Rate, shape: tuple[int, ...], transposed: bool) -> Tensor:
    """``bernoulli(key, keep, shape)``; ``transposed``: the mask of the transposed shape, transposed back."""
    if not transposed:
        return _bernoulli(key, keep, shape)
    if len(shape) != 2:
        raise ValueError(f"dropout: a transposed input must be 2-d, got shape {shape}")
    return _bernoulli(key, keep, (shape[1], shape[0]), cols=True).mT


def _dropout(
    key: Tensor | None,
    x: Tensor,
    p: Rate,
    *,
    train: bool = True,
    broadcast_dims: Sequence[int] | int = (),
    transposed: bool = False,
) -> Tensor:
    """:func:`dropout`; with ``transposed``, ``x`` is a 2-d ``(features, rows)`` tensor, the transpose of the
    ``(rows, features)`` input whose mask is drawn (a features-first layout, :func:`regfn.nn._mlp.features_first`):
    the mask of ``x.mT`` is applied as its transpose, drawn stored column by column where the C kernel runs
    (:func:`regfn.random._sample._bits32`), so that it is read along memory. The same mask as ``dropout(key,
    x.mT, p).mT``."""
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
        raise TypeError(f"dropout: x must be a floating tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    p = _check_rate(p, "dropout")
    shape = _mask_shape(x.shape, broadcast_dims)
    if not train or (isinstance(p, float) and p == 0.0):
        return x
    if key is None:
        raise ValueError(f"dropout: train=True needs a random key; {_KEY_HINT}")
    if isinstance(p, float) and p == 1.0:
        return torch.zeros_like(x)  # Flax's edge case: no x / 0, so no NaN gradient
    key = key.to(x.device)
    keep: Rate
    divisor: Rate
    if isinstance(p, float):
        keep = divisor = 1.0 - p
    else:
        keep = 1 - p.to(x.device)
        if keep.dtype == torch.float64:
            keep = keep.to(torch.float32)
        divisor = torch.where(keep > 0, keep, torch.ones_like(keep))  # a swept rate of 1 divides by 1, not 0
    kept = _kept(key, keep, shape, x, transposed)
    if kept is not None:
        return _plus_zero((x / divisor).to(x.dtype) * kept)
    return torch.where(_mask(key, keep, shape, transposed), (x / divisor).to(x.dtype), 0.0)


def _plus_zero(y: Tensor) -> Tensor:
    """``y + 0.0`` in place: a dropped negative element, ``-0.0`` after the product with the mask, becomes ``+0.0``
    as with ``where`` (so does a kept ``-0.0``; every other value is unchanged)."""
    return y.add_(0.0)


def _kept(key: Tensor, keep: Rate, shape: tuple[int, ...], x: Tensor, transposed: bool) -> Tensor | None:
    """The mask as float32 ones and zeros from the C kernel (:func:`regfn.random._sample.keep_mask`), for a
    float32 ``x``; ``None`` where not used."""
    if transposed or x.dtype != torch.float32:
        return None
    return keep_mask(key, keep, shape)


def flax_dropout_key(
    rng: Tensor | int,
    path: Sequence[str] | str = ("Dropout_0",),
    count: int = 1,
    *,
    fix_separator: bool = False,
) -> Tensor:
    """The key a ``flax.linen.Dropout`` layer draws from the ``'dropout'`` rng.

    Flax's ``make_rng`` folds into the rng passed as ``rngs={'dropout': rng}``
    one 32-bit hash: the first 4 bytes (big-endian) of the SHA-1 of the
    layer's module path followed by the layer's call count (``LazyRng`` and
    ``_fold_in_static`` in ``flax/core/scope.py``). With this key,
    ``dropout(key, x, rate)`` reproduces the layer's mask.

    Args:
        rng: the ``'dropout'`` rng as a regfn key (``jax.random.key(s)`` is
            ``regfn.random.key(s)``), or an int seed.
        path: module names from the root module to the ``Dropout`` layer,
            root excluded: ``("Dropout_0",)`` for the first ``nn.Dropout`` of a
            compact model, ``("Block_0", "Dropout_1")`` deeper down, ``()`` for
            ``nn.Dropout(r).apply(...)`` at top level. A ``"/"``-separated
            string is accepted too.
        count: how many times this layer has drawn, this draw included (1 for
            a layer called once per ``apply``).
        fix_separator: Flax's ``flax_fix_rng_separator`` config flag (default
            off in flax 0.12), which hashes a NUL byte before each item.

    Returns:
        A key of shape ``(2,)``.

    Examples:
        >>> import regfn.random as rr
        >>> k = flax_dropout_key(rr.key(0), ("Dropout_0",))
        >>> k.shape, bool((k != flax_dropout_key(rr.key(0), ("Dropout_1",))).any())
        (torch.Size([2]), True)
    """
    if isinstance(rng, Tensor):
        key = rng
    elif is_int(rng):
        key = _make_key(int(rng))
    else:
        raise TypeError(f"flax_dropout_key: rng must be a key or an int seed, got {type(rng).__name__} {rng!r}")
    if isinstance(path, str):
        path = tuple(s for s in path.split("/") if s)
    m = hashlib.sha1()
    for item in (*path, count):
        if fix_separator:
            m.update(b"\x00")
        if isinstance(item, str):
            m.update(item.encode("utf-8"))
        elif isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            m.update(item.to_bytes((item.bit_length() + 7) // 8, byteorder="big"))
        else:
            raise TypeError(f"flax_dropout_key: path items must be str and count an int >= 0, got {item!r}")
    return fold_in(key, int.from_bytes(m.digest()[:4], byteorder="big"))


def numpy_dropout(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """The seed tutorial's numpy inverted dropout, kept as a reference.

    Keeps each unit with probability ``retain = 1 - level`` (a binomial mask
    drawn from ``rng``) and scales the kept units by ``1 / retain``. The
    tutorial raised a bare ``Exception`` for a bad level; this raises
    ``ValueError``.

    Args:
        x: an array.
        level: the drop probability, in ``[0, 1)``.
        rng: a seeded ``numpy.random.Generator``, e.g.
            ``numpy.random.default_rng(0)`` (required: no hidden global
            randomness, even in the reference).

    Returns:
        ``x * mask / retain`` as a float array of ``x``'s shape.

    Raises:
        ValueError: for a level outside ``[0, 1)``.
        TypeError: if ``rng`` is not a ``numpy.random.Generator``.

    Examples:
        >>> import numpy as np
        >>> y = numpy_dropout(np.ones((2, 3)), 0.5, np.random.default_rng(0))
        >>> y.shape, set(y.ravel()) <= {0.0, 2.0}
        ((2, 3), True)
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 <= level < 1.0:
        raise ValueError(f"numpy_dropout: level must be a float in [0, 1), got {level!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"numpy_dropout: rng must be a numpy.random.Generator such as numpy.random.default_rng(0), "
            f"got {type(rng).__name__}"
        )
    x = np.asarray(x)
    retain = 1.0 - float(level)
    mask = rng.binomial(1, retain, size=x.shape)
    return x * mask / retain


def mc_dropout(
    apply: Callable[..., Tensor],
    params: Mapping[str, Tensor],
    x: Tensor,
    key: Tensor,
    n: int,
    *,
    chunk_size: int | None = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """Monte Carlo dropout: mean and standard deviation of ``n`` dropout predictions.

    Calls ``apply(params, x, key=k, train=True, **kwargs)`` for the ``n`` keys
    ``split(key, n)`` in one ``torch.func.vmap`` (``chunk_size`` bounds its
    memory).

    Returns:
        ``(mean, std)`` over the ``n`` samples (``std`` with ``correction=0``,
        like ``numpy.std``).

    Examples:
        >>> import torch, regfn.random as rr
        >>> from regfn.nn import mlp
        >>> init, apply = mlp((8, 6, 4, 1))
        >>> mean, std = mc_dropout(apply, init(rr.key(0)), torch.ones(3, 8), rr.key(1), 50, p=0.5)
        >>> mean.shape, bool((std > 0).any())
        (torch.Size([3, 1]), True)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"mc_dropout: n must be an int >= 1, got {n!r}")
    samples = torch.func.vmap(lambda k: apply(params, x, key=k, train=True, **kwargs), chunk_size=chunk_size)(
        split(key, n)
    )
    return samples.mean(0), samples.std(0, correction=0)
