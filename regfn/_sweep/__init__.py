"""Many training runs at once: the sweep, its loop, its engines and its schedules' decisions.

* :mod:`._configs`: grids, validation against the registry, per-configuration tensors;
* :mod:`._program`: what one configuration computes, vmapped (and compiled);
* :mod:`._engine`: the interface every engine implements and what it declares it runs, the job;
  :mod:`._engines`: the registry of engines; :mod:`._vmap`, :mod:`._triton`: the engines
  (:mod:`._triton_mlp` is the Triton kernel);
* :mod:`._driver`: :func:`sweep` itself: checks, then the loop; :mod:`._auto`: the compile and thread choices;
  :mod:`._runtime`: the threads and dynamo settings a sweep runs under;
* :mod:`._plan`: chunk sizes (memory estimate, buckets), computed once;
* :mod:`._loop`: the one loop every schedule runs in (:mod:`._groups`: chunks of rows;
  :mod:`._warm`: warm-ups and fallbacks; :mod:`._progress`; :mod:`._saving`: checkpoints);
* :mod:`._strategies`: what a schedule decides (plain, halving, Hyperband, PBT);
* :mod:`._outputs`: every row's results while it trains; :mod:`._table`: the typed rows, the table;
* :mod:`._cv`, :mod:`._checkpoint`, :mod:`._distributed`: folds, checkpoint files, ranks
  (:mod:`._fold_sizes`: folds of different sizes in one program).

The public names are :func:`regfn.sweep` and :func:`regfn.grid`.
"""

from ._configs import grid as grid
from ._driver import sweep as sweep

__all__ = ["grid", "sweep"]
