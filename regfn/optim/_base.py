"""The core of :mod:`regfn.optim`: gradient transformations and how to combine them.

A :class:`Transform` is a pair of pure functions. ``init(params)`` builds a
state (plain dicts and tuples of tensors); ``update(updates, state, params)``
maps incoming updates (at first the gradients) to outgoing updates and a new
state. :func:`apply_updates` adds the final updates to the parameters.
Nothing here mutates its inputs, so every function works under
``torch.func.grad``, ``torch.func.vmap`` and ``torch.compile``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from torch import Tensor

from .._tree import Mask, resolve_mask

Params = Mapping[str, Tensor]
Updates = Mapping[str, Tensor]
State = Any
UpdateResult = tuple[dict[str, Tensor], State]
"""What an ``update`` returns: ``(updates, new_state)``."""
RatiosResult = tuple[dict[str, Tensor], dict[str, Tensor], State]
"""What a ``ratios`` function returns: ``(nums, dens, new_state)``."""


class Transform(NamedTuple):
    """A gradient transformation: a pair of pure functions.

    Attributes:
        init: ``init(params) -> state``.
        update: ``update(updates, state, params=None) -> (updates, state)``.

    Examples:
        >>> import torch
        >>> double = Transform(lambda p: {}, lambda u, s, p=None: ({k: 2 * v for k, v in u.items()}, s))
        >>> double.update({"w": torch.ones(2)}, double.init({}))
        ({'w': tensor([2., 2.])}, {})
    """

    init: Callable[[Params], State]
    update: Callable[..., UpdateResult]


class TaggedUpdate:
    """An ``update`` function plus what other parts of :mod:`regfn.optim` may know of it.

    Calling it calls ``fn``. The tags (attributes ``regfn_<tag>``, ``None`` when absent):

    * ``post_step``: the name of a transform acting on the new weights ``w + u``
      (proximal steps, projections); such transforms must end a chain.
    * ``factor``: ``factor(state) -> (f, new_state)`` for a transform that only
      multiplies its input by ``f`` (``scale``, the learning rate).
      :func:`regfn.optim.step` folds a last factor into the parameter update.
    * ``ratios``: ``ratios(updates, state, params) -> (nums, dens, new_state)``
      for a transform whose output is ``nums / dens`` (Adam, RMSprop, Adagrad).
      Before a final factor, :func:`regfn.optim.step` applies it with one
      ``addcdiv``, as ``torch.optim`` does.
    * ``decay``: ``decay(params) -> {name: coefficient}`` for a transform that
      adds ``coefficient * w`` to the updates (``add_l2``,
      ``add_decayed_weights``). Just before a final factor ``f``,
      :func:`regfn.optim.step` applies it as ``w * (1 + f * coefficient)``,
      AdamW's ``w *= 1 - lr * weight_decay``.
    * ``applied``: ``applied(updates, state, params, factor, l2) -> (new_params,
      new_state)``, the same numbers as this transform's update of ``updates``
      with :func:`with_l2_gradient` added for the leaves in ``l2`` (``{name:
      c}``), then a scaling by ``factor``, then :func:`apply_updates`, in fewer
      passes over memory (Adam: its whole step in one pass of regfn's C
      kernel, eagerly on CPU). :func:`regfn.optim._step.update_and_apply` runs
      it for a chain of this transform and a final factor.
    * ``parts``: the transforms a :func:`chain` runs.

    A class rather than attributes set on a function: building an optimizer
    inside ``torch.compile`` (as sweeps do) cannot ``setattr`` on a function
    with every supported torch version.
    """

    def __init__(
        self,
        fn: Callable[..., UpdateResult],
        post_step: str | None = None,
        factor: Callable[[State], tuple[Any, State]] | None = None,
        ratios: Callable[..., RatiosResult] | None = None,
        decay: Callable[[Params | None], dict[str, Any]] | None = None,
        parts: tuple[Transform, ...] | None = None,
        applied: Callable[..., tuple[dict[str, Tensor], State]] | None = None,
    ) -> None:
        self.fn = fn
        self.regfn_post_step = post_step
        self.regfn_factor = factor
        self.regfn_ratios = ratios
        self.regfn_decay = decay
        self.regfn_parts = parts
        self.regfn_applied = applied

    def __call__(self, updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        return self.fn(updates, state, params)


def _tag(transform: Transform, name: str) -> Any:
    # getattr with a default, not isinstance: torch 2.4's dynamo cannot take
    # isinstance of a nested function. The names are prefixed against clashes
    # with the attributes of a user's own callable.
    return getattr(transform.update, f"regfn_{name}", None)


def post_step_name(transform: Transform) -> str | None:
    """The name of a post-step transform (``"prox_l1"``, ...), else ``None``."""
    return _tag(transform, "post_step")


def scaling_factor(transform: Transform) -> Callable[[State], tuple[Any, State]] | None:
    """``factor(state) -> (f, new_state)`` if ``transform`` only scales by ``f``, else ``None``."""
    return _tag(transform, "factor")


def quotient(transform: Transform) -> Callable[..., RatiosResult] | None:
    """``ratios(updates, state, params) -> (nums, dens, new_state)`` if ``transform`` divides, else ``None``."""
    return _tag(transform, "ratios")


def weight_decay_of(transform: Transform) -> Callable[[Params | None], dict[str, Any]] | None:
    """``decay(params) -> {name: coefficient}`` if ``transform`` adds ``coefficient * w``, else ``None``."""
    return _tag(transform, "decay")


def applied_with_factor(transform: Transform) -> Callable[..., tuple[dict[str, Tensor], State]] | None:
    """``applied(updates, state, params, factor, l2) -> (new_params, new_state)`` (see :class:`TaggedUpdate`), else
    ``None``."""
    return _tag(transform, "applied")


def chained(transform: Transform) -> tuple[Transform, ...] | None:
    """The transforms a :func:`chain` was built from, else ``None``."""
    return _tag(transform, "parts")


def run_chain(
    transforms: Sequence[Transform], updates: Updates, state: tuple, params: Params | None
) -> tuple[dict[str, Tensor], tuple]:
    """Run ``transforms`` one after the other; returns ``(updates, new states)``."""
    if len(state) != len(transforms):
        raise ValueError(f"chain: state has {len(state)} entries for {len(transforms)} transforms")
    new_state = []
    out = updates
    for t, s in zip(transforms, state, strict=True):
        out, s = t.update(out, s, params)
        new_state.append(s)
    # A chain of no transforms passes its input through; a transform returns a dict.
    return out if isinstance(out, dict) else dict(out), tuple(new_state)


def with_l2_gradient(g: Tensor, p: Tensor, c: Any) -> Tensor:
    """``g + c * (p + p)``: ``g`` plus the gradient of an L2 penalty ``c * sum(p ** 2)`` (``c`` half its
    strength, a number or a tensor broadcasting against ``p``).

    Autograd's own rounding of that gradient (``c * (2 * p)``, ``2 * p`` being
    exact), so a gradient taken without the penalty and completed here has the
    bits of the penalized loss's gradient (:mod:`regfn.penalties`' closed
    forms; the C kernel's ``regfn_adam_step_l2`` computes the same).

    Examples:
        >>> import torch
        >>> with_l2_gradient(torch.tensor([1.0]), torch.tensor([3.0]), 0.5)
        tensor([4.])
    """
    return g + c * (p + p)


def check_same_names(params: Params, other: Mapping[str, Tensor], where: str, what: str) -> None:
    """Raise a ``ValueError`` naming both key sets unless ``other`` has exactly ``params``' names."""
    if params.keys() != other.keys():
        raise ValueError(f"{where}: params and {what} have different names: {sorted(params)} vs {sorted(other)}")


def _check_transform(t: Any, where: str) -> Transform:
    if not (hasattr(t, "init") and hasattr(t, "update") and callable(t.init) and callable(t.update)):
        raise TypeError(f"{where}: expected a Transform(init, update), got {type(t).__name__}")
    return t


def chain(*transforms: Transform) -> Transform:
    """Apply several transforms one after the other.

    The state is the tuple of the inner states. Post-step transforms
    (:func:`~regfn.optim.prox_l1`, :func:`~regfn.optim.max_norm`), which act
    on the updated weights, may only appear at the end.

    Args:
        *transforms: the transforms, in the order they are applied.

    Returns:
        The chained :class:`Transform`.

    Raises:
        TypeError: if an argument is not a transform.
        ValueError: if a post-step transform is followed by an ordinary one.

    Examples:
        >>> import torch
        >>> from regfn.optim import chain, scale, scale_by_learning_rate
        >>> opt = chain(scale(2.0), scale_by_learning_rate(0.1))
        >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init({"w": torch.zeros(2)}))
        >>> updates
        {'w': tensor([-0.2000, -0.2000])}
    """
    transforms = tuple(_check_transform(t, "chain") for t in transforms)
    names = [post_step_name(t) for t in transforms]
    for i, name in enumerate(names):
        if name is not None and any(n is None for n in names[i + 1 :]):
            raise ValueError(
                f"chain: {name} acts on the updated weights w + u and must come last; "
                "put it after the learning-rate step (only other post-step transforms may follow)"
            )

    def init(params: Params) -> tuple:
        return tuple(t.init(params) for t in transforms)

    def update(updates: Updates, state: tuple, params: Params | None = None) -> UpdateResult:
        return run_chain(transforms, updates, state, params)

    last = names[-1] if names else None
    return Transform(init, TaggedUpdate(update, post_step=last, parts=transforms))


def masked(transform: Transform, mask: Mask) -> Transform:
    """Apply ``transform`` only to the parameters that ``mask`` selects.

    Unselected updates pass through unchanged; the inner state only holds the
    selected parameters.

    Args:
        transform: the transform to restrict.
        mask: anything :func:`regfn._tree.resolve_mask` accepts: ``None``, a
            predicate ``(name, tensor) -> bool`` such as
            :func:`regfn._tree.weights_only`, a collection of names or a
            ``{name: bool}`` dict. It is resolved against ``params`` when
            given, else against ``updates`` (same names and shapes).

    Returns:
        The masked :class:`Transform`.

    Examples:
        >>> import torch
        >>> from regfn.optim import masked, scale
        >>> opt = masked(scale(0.0), {"w"})
        >>> p = {"w": torch.ones(2), "b": torch.ones(1)}
        >>> opt.update(p, opt.init(p))[0]
        {'w': tensor([0., 0.]), 'b': tensor([1.])}
    """
    transform = _check_transform(transform, "masked")

    def init(params: Params) -> State:
        selected = resolve_mask(mask, params, where="masked: mask")
        return transform.init({k: v for k, v in params.items() if k in selected})

    def update(updates: Updates, state: State, params: Params | None = None) -> UpdateResult:
        selected = resolve_mask(mask, params if params is not None else updates, where="masked: mask")
        sub = {k: v for k, v in updates.items() if k in selected}
        sub_params = None if params is None else {k: params[k] for k in sub}
        new_sub, state = transform.update(sub, state, sub_params)
        return {k: new_sub[k] if k in selected else v for k, v in updates.items()}, state

    return Transform(init, TaggedUpdate(update, post_step=post_step_name(transform)))


def apply_updates(params: Params, updates: Updates) -> dict[str, Tensor]:
    """Return the new parameters ``{k: params[k] + updates[k]}`` (a new dict).

    The result keeps each parameter's dtype.

    Args:
        params: the current parameters.
        updates: the final updates (same names).

    Returns:
        A new dict; the inputs are not modified.

    Raises:
        ValueError: if the names differ.

    Examples:
        >>> import torch
        >>> apply_updates({"w": torch.ones(2)}, {"w": torch.tensor([0.5, -1.0])})
        {'w': tensor([1.5000, 0.0000])}
    """
    check_same_names(params, updates, "apply_updates", "updates")
    out = {}
    for k, p in params.items():
        new = p + updates[k]
        out[k] = new if new.dtype == p.dtype else new.to(p.dtype)
    return out
