"""Many training runs at once: the sweep driver and its engines.

* :mod:`._configs`: grids, validation against the registry, per-configuration tensors;
* :mod:`._program`: what one configuration computes, vmapped (and compiled);
* :mod:`._engine`: the interface every engine implements, and the job it runs;
* :mod:`._vmap`, :mod:`._triton`: the engines (:mod:`._triton_mlp` is the Triton kernel);
* :mod:`._driver`: :func:`sweep` itself: chunks, memory, fallbacks, the results table.

The public names are :func:`regfn.sweep` and :func:`regfn.grid`.
"""

from ._configs import grid as grid
from ._driver import sweep as sweep

__all__ = ["grid", "sweep"]
