"""Small helpers over parameter dicts (flat ``{name: tensor}`` mappings).

regfn keeps parameters as flat dicts named like a ``torch.nn.Module``'s
``state_dict`` (``fc1.weight``, ``fc1.bias``, ...). These helpers map over
them and resolve *masks*: which parameters a penalty or an optimizer
transform applies to.

A mask is one of:

* ``None``: every parameter;
* a callable ``mask(name, tensor) -> bool`` (for example :func:`weights_only`);
* a collection of names (``{"fc1.weight", "fc2.weight"}``);
* a dict ``{name: bool}`` covering every parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from torch import Tensor

Params = Mapping[str, Tensor]
Mask = Callable[[str, Tensor], bool] | Collection[str] | Mapping[str, bool] | None


def weights_only(name: str, tensor: Tensor) -> bool:
    """Mask predicate that selects weight matrices (``ndim >= 2``), not biases.

    Examples:
        >>> import torch
        >>> weights_only("fc1.weight", torch.zeros(6, 8)), weights_only("fc1.bias", torch.zeros(6))
        (True, False)
    """
    return tensor.ndim >= 2


def tree_map(fn: Callable[..., Any], tree: Params, *rest: Params) -> dict[str, Any]:
    """Apply ``fn`` leaf-wise over dicts with the same keys; returns a new dict.

    Examples:
        >>> import torch
        >>> tree_map(lambda a, b: a + b, {"w": torch.ones(2)}, {"w": torch.ones(2)})
        {'w': tensor([2., 2.])}
    """
    for other in rest:
        if other.keys() != tree.keys():
            raise ValueError(f"parameter dicts have different keys: {sorted(tree)} vs {sorted(other)}")
    return {k: fn(tree[k], *(other[k] for other in rest)) for k in tree}


def resolve_mask(mask: Mask, params: Params, *, where: str = "mask") -> set[str]:
    """Return the set of parameter names that ``mask`` selects in ``params``.

    Args:
        mask: ``None`` (all), a predicate ``(name, tensor) -> bool``, a
            collection of names, or a ``{name: bool}`` dict.
        params: the parameter dict the mask applies to.
        where: the name of the calling argument, used in error messages.

    Returns:
        The selected names.

    Raises:
        TypeError: if ``mask`` has an unsupported type or the predicate does
            not return a bool.
        ValueError: if the mask names a parameter that does not exist, or
            selects nothing.

    Examples:
        >>> import torch
        >>> p = {"fc1.weight": torch.zeros(6, 8), "fc1.bias": torch.zeros(6)}
        >>> sorted(resolve_mask(weights_only, p))
        ['fc1.weight']
    """
    if mask is None:
        selected = set(params)
    elif callable(mask):
        selected = set()
        for name, tensor in params.items():
            keep = mask(name, tensor)
            if not isinstance(keep, bool):
                raise TypeError(
                    f"{where}: the predicate must return a bool for each parameter, "
                    f"got {type(keep).__name__} for {name!r}"
                )
            if keep:
                selected.add(name)
    elif isinstance(mask, Mapping):
        unknown = set(mask) - set(params)
        if unknown:
            raise ValueError(f"{where}: names unknown parameters {sorted(unknown)}; known: {sorted(params)}")
        selected = {name for name, keep in mask.items() if keep}
    elif isinstance(mask, Collection) and not isinstance(mask, (str, bytes)):
        names = set(mask)
        unknown = names - set(params)
        if unknown:
            raise ValueError(f"{where}: names unknown parameters {sorted(unknown)}; known: {sorted(params)}")
        selected = names
    else:
        raise TypeError(
            f"{where}: expected None, a predicate (name, tensor) -> bool, a collection of "
            f"names or a {{name: bool}} dict, got {type(mask).__name__}"
        )
    if params and not selected:
        raise ValueError(f"{where}: selects no parameter out of {sorted(params)}")
    return selected
