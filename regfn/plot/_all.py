"""Every figure that fits a sweep, in one call."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from ._common import (
    _INSTALL,
    PathLike,
    _metric,
    _usable,
    swept,
)

if TYPE_CHECKING:
    from ..results import SweepResult
from ._points import plot_points
from ._runs import plot_curves, plot_pbt, plot_rungs
from ._sweeps import plot_heatmap, plot_metric, plot_sparsity

__all__ = ["plot_all"]


def _fills_grid(result: SweepResult, x: str, y: str) -> bool:
    """Whether the rows cover at least half the cells of the ``x`` by ``y`` grid (a sampled search does not)."""
    cells = {(row[x], row[y]) for row in result.rows}
    return 2 * len(cells) >= len({c[0] for c in cells}) * len({c[1] for c in cells})


def plot_all(result: SweepResult, out_dir: PathLike, *, metric: str | None = None) -> list[pathlib.Path]:
    """Write the figures that make sense for what was swept; returns their paths.

    * ``<metric>_vs_<name>.png`` for every swept hyperparameter (more than one
      value; seeds are the bands, not an axis); for sampled points (the
      first two swept do not form a grid) a scatter coloured by another
      swept hyperparameter (:func:`regfn.plot.plot_points`);
    * ``heatmap_<x>_<y>.png`` over the first two swept (penalties first), when
      their values form a grid (not for sampled points: ``regfn.search.sample``);
    * ``sparsity_vs_l1.png`` when ``l1`` is swept;
    * ``curves.png``: the best and worst configurations' training curves;
    * ``rungs.png`` (successive halving, Hyperband) or ``pbt.png`` for a sweep
      with a schedule (:func:`plot_rungs`, :func:`plot_pbt`).

    Args:
        result: a :class:`~regfn.SweepResult`.
        out_dir: the folder (created if needed).
        metric: what to plot (default: ``result.default_metric()``).

    Raises:
        ImportError: without matplotlib (``pip install 'regfn[plot]'``).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metric = _metric(result, metric)
    sw = swept(result)
    paths = []
    sampled = len(sw) >= 2 and not _fills_grid(result, *list(sw)[:2])
    if sampled:  # random or Sobol points: dots coloured by another hyperparameter, no lines
        paths += [plot_points(result, out / f"{metric}_vs_{name}.png", name, metric=metric) for name in sw]
    else:
        paths += [plot_metric(result, out / f"{metric}_vs_{name}.png", name, metric=metric) for name in sw]
    if len(sw) >= 2:
        x, y = list(sw)[:2]
    if len(sw) >= 2 and not sampled:
        paths.append(plot_heatmap(result, out / f"heatmap_{x}_{y}.png", x, y, metric=metric))
    if "l1" in sw:
        paths.append(plot_sparsity(result, out / "sparsity_vs_l1.png", "l1"))
    if "loss" in result.curves and any(_usable(r, metric) for r in result.rows):
        paths.append(plot_curves(result, out / "curves.png", metric=metric))
    if result.schedule.get("kind") == "pbt":
        paths.append(plot_pbt(result, out / "pbt.png"))
    elif result.schedule:
        paths.append(plot_rungs(result, out / "rungs.png"))
    return paths
