"""Validation and small numeric helpers shared by the optimizer modules.

Hyperparameters are Python numbers or one-element tensors (a 0-d tensor,
possibly being vmapped over). Python numbers are range-checked like
``torch.optim`` does; tensors cannot be (that would need ``.item()``, which
breaks ``torch.compile`` and ``vmap``), so only their shape is checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from .._checks import check_real
from ._describe import ARGS

Hyper = float | Tensor
StepSizeFn = Callable[[Tensor], Any]
"""A step-size function ``step -> value`` (see :mod:`regfn.optim._step_sizes`)."""


def is_number(value: Any) -> bool:
    """True for a plain Python (or NumPy) real number, not a bool or a tensor."""
    kind = type(value)
    if kind is float or kind is int:  # the common case, without the ABC check
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_zero(value: Any) -> bool:
    """True only for a Python number equal to 0 (never looks at a tensor's value)."""
    return is_number(value) and value == 0


_ROWS: contextvars.ContextVar[int | None] = contextvars.ContextVar("regfn_optim_rows", default=None)


@contextlib.contextmanager
def rows_of_configurations(k: int) -> Iterator[None]:
    """Within it, :func:`hyper` also takes a ``(k, 1)`` tensor: ``k`` configurations' values of an argument,
    one per row of ``(k, n)`` parameters (or a ``(k, 1, 1)`` one against ``(k, a, b)`` parameters).

    For an elementwise optimizer (:attr:`regfn.optim.OptimizerSpec.elementwise`)
    that updates every configuration of a sweep at once, without ``vmap``
    (:func:`regfn._sweep._program.update_rows`).

    Examples:
        >>> with rows_of_configurations(3):
        ...     hyper(torch.ones(3, 1), "lr", "sgd").shape
        torch.Size([3, 1])
    """
    token = _ROWS.set(k)
    try:
        yield
    finally:
        _ROWS.reset(token)


def configuration_rows() -> int | None:
    """K inside :func:`rows_of_configurations` (``k``), else ``None`` (always while torch compiles: dynamo
    cannot trace a context variable, and a compiled sweep's updates are vmapped)."""
    if torch.compiler.is_compiling():
        return None
    return _ROWS.get()


def is_configuration_column(value: Tensor) -> bool:
    """Whether ``value`` is a column of the configurations' values inside :func:`rows_of_configurations`:
    ``(K, 1)`` against ``(K, n)`` rows, or ``(K, 1, 1)`` against ``(K, a, b)`` ones (a configuration's matrix
    kept whole, as :func:`regfn._sweep._program.update_rows` keeps a weight whose gradient comes transposed)."""
    rows = configuration_rows()
    return rows is not None and tuple(value.shape) in ((rows, 1), (rows, 1, 1))


def dense_in_rows(t: Tensor) -> Tensor:
    """``t`` in row-major order inside :func:`rows_of_configurations` (where a gradient may come transposed, a
    layout only the C kernel's whole Adam step reads; everything else is computed on row-major rows, as it always
    was), else ``t`` itself."""
    return t.contiguous() if configuration_rows() is not None else t


def hyper(
    value: Any,
    name: str,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    of_step: bool = False,
) -> Any:
    """Validate one hyperparameter and return it normalised.

    Returns the Python number unchanged, a one-element tensor reshaped to 0-d,
    or the step-size function (callable) unchanged when ``of_step`` is true.

    Raises:
        TypeError: for a bool, a string, a complex or bool tensor, or any other type.
        ValueError: for a number outside the range, NaN, or a tensor with more
            than one element.
    """
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{where}: {name} must be a real tensor, got dtype {value.dtype}")
        if value.numel() != 1:
            if is_configuration_column(value):
                return value  # a column of per-configuration values: see rows_of_configurations
            raise ValueError(
                f"{where}: {name} must be a single value (a 0-d tensor), got a tensor of shape "
                f"{tuple(value.shape)}; to sweep several values, call the optimizer inside "
                "torch.func.vmap"
            )
        return value.reshape(()) if value.ndim else value
    if is_number(value):
        check_real(value, name, where, low=low, high=high, low_open=low_open, high_open=high_open)
        return value
    if of_step and callable(value):
        return value
    expected = "a number or a 0-d tensor" + (", or a step-size function step -> value" if of_step else "")
    raise TypeError(f"{where}: {name} must be {expected}, got {type(value).__name__} {value!r}")


def flag(value: Any, name: str, where: str) -> bool:
    """Validate a structural boolean option (``nesterov``, ``amsgrad``, ...)."""
    if not isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def betas_pair(betas: Any, where: str) -> tuple[Any, Any]:
    """Validate Adam's ``betas`` (two values, each in ``[0, 1)``)."""
    if isinstance(betas, (str, bytes, Tensor)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise TypeError(f"{where}: betas must be a pair (beta1, beta2), got {type(betas).__name__} {betas!r}")
    b1, b2 = betas
    return (
        hyper(b1, "betas[0]", where, **ARGS["beta1"].bounds()),
        hyper(b2, "betas[1]", where, **ARGS["beta2"].bounds()),
    )


def need_params(params: Mapping[str, Tensor] | None, where: str) -> Mapping[str, Tensor]:
    """Raise a clear error when a transform that reads the weights got none."""
    if params is None:
        raise ValueError(f"{where} needs the current parameters: call update(updates, state, params)")
    return params


def scalar_dtype(device: torch.device) -> torch.dtype:
    """dtype for step-dependent scalars (bias corrections, step sizes).

    float64, like the Python floats ``torch.optim`` computes them in, except on
    devices without float64 (MPS), where float32 is used.
    """
    return torch.float32 if device.type == "mps" else torch.float64


def step_zero(params: Mapping[str, Tensor]) -> Tensor:
    """A fresh step counter (an int64 0-d tensor on the parameters' device)."""
    device = next(iter(params.values())).device if params else None
    return torch.zeros((), dtype=torch.int64, device=device)


def caster(*values: Any) -> Callable[[torch.dtype], tuple]:
    """Return ``get(dtype)`` giving ``values`` with every tensor cast to ``dtype``.

    Tensor hyperparameters and step-dependent scalars are cast once per leaf
    dtype per update, so that a float64 scalar never promotes a float32 update
    (under ``vmap`` a batched 0-d tensor takes part in type promotion like a
    full tensor) and so that ops such as ``lerp`` see matching dtypes.
    """
    cache: dict[torch.dtype, tuple] = {}

    def get(dtype: torch.dtype) -> tuple:
        out = cache.get(dtype)
        if out is None:
            out = tuple(v.to(dtype) if isinstance(v, Tensor) and v.dtype != dtype else v for v in values)
            cache[dtype] = out
        return out

    return get


def axpy(a: Tensor, b: Tensor, alpha: float, out: Tensor | None = None) -> Tensor:
    """``a + alpha * b`` for a Python-number ``alpha`` (written into ``out`` if given).

    Eager mode uses the single fused kernel ``torch.add(a, b, alpha=alpha)``
    (torch.optim's own op). Under ``torch.compile`` it spells the product out:
    inductor fuses it anyway, and its add+mm -> addmm rewrite mishandles
    ``alpha`` when ``a`` or ``b`` is a matmul result such as a weight's gradient
    (wrong numbers with torch 2.13 on CPU; see pytorch issues #167313, #196577).
    """
    if torch.compiler.is_compiling() and out is None:
        return a + alpha * b
    return into(out, torch.add, a, b, alpha=alpha)


def into(out: Tensor | None, op: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
    """``op(*args, **kwargs)``, written into ``out`` when it is not ``None``.

    Lets one line of update code serve both the pure path (``out=None``: a
    fresh tensor) and the donating path of :func:`~regfn.optim.step_` (the
    old state tensor is overwritten, as ``torch.optim`` does).
    """
    if out is None:
        return op(*args, **kwargs)
    return op(*args, **kwargs, out=out)


def inplace_ok(*tensors: Any) -> bool:
    """True when an eager update may overwrite its *own* temporaries in place.

    In-place reuse of freshly made intermediates (never inputs or returned
    state) saves allocations and cache traffic in eager mode. It is only done
    outside ``torch.compile`` (which fuses anyway), outside functorch
    transforms (``vmap``/``grad`` forbid mixing levels in place), and when no
    tensor involved requires grad (so autograd through the update stays exact).
    Per-leaf code checks the mode once and then calls :func:`grad_free`.
    """
    if torch.compiler.is_compiling():
        return False
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    if active is None or active():
        return False
    return grad_free(*tensors)


def grad_free(*tensors: Any) -> bool:
    """True unless autograd is recording and one of ``tensors`` requires grad."""
    if torch.is_grad_enabled():
        for t in tensors:
            if isinstance(t, Tensor) and t.requires_grad:
                return False
    return True


_DONATING: contextvars.ContextVar[bool] = contextvars.ContextVar("regfn_optim_donating", default=False)


@contextlib.contextmanager
def donating() -> Iterator[None]:
    """Inside this block, eager updates write new state into the old state's tensors.

    Only :func:`regfn.optim.step_` enters it: the caller there hands its
    optimizer state over (donates it), like ``donate_argnums`` in JAX.
    """
    token = _DONATING.set(True)
    try:
        yield
    finally:
        _DONATING.reset(token)


def donated() -> bool:
    """True inside :func:`donating`: an update may overwrite its incoming state tensors.

    Callers check :func:`inplace_ok` first (``inplace_ok(...) and donated()``):
    that is False under ``torch.compile``, which cannot trace ``ContextVar.get``.
    """
    return _DONATING.get()
