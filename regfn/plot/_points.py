"""Sampled points (``regfn.search.sample``: random or Sobol) as a scatter, coloured by a second hyperparameter.

A line through sampled points joins unrelated configurations; a scatter
shows each run where it is. :func:`regfn.plot.plot_all` draws this figure
for every swept hyperparameter when the first two swept do not form a grid.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..results import SweepResult
    from ._common import PathLike

__all__ = ["plot_points"]


def plot_points(
    result: SweepResult,
    path: PathLike,
    x: str,
    *,
    metric: str | None = None,
    color: str | None = None,
) -> pathlib.Path:
    """A metric against ``x``: one dot per run that did not diverge, coloured by ``color`` (a colour bar).

    Args:
        result: a :class:`~regfn.SweepResult`.
        path: the PNG file to write.
        x: the hyperparameter on the x axis.
        metric: the row value on the y axis (default: ``result.default_metric()``).
        color: the hyperparameter that colours the dots (default: the first
            other swept one, seeds aside; ``None`` when there is none).

    Returns:
        The written path.

    Examples:
        >>> import pathlib, tempfile, regfn
        >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
        >>> points = regfn.search.sample(regfn.random.key(0), 6, "random",
        ...                              l2=regfn.search.loguniform(1e-5, 1e-1), p=regfn.search.uniform(0.0, 0.5))
        >>> res = regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), data, points, epochs=3, compile=False, quiet=True)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_points(res, pathlib.Path(tmp) / "acc_vs_l2.png", "l2").stat().st_size > 0
        True
    """
    from ._common import _figure, _label, _metric, _save, _scale, _titles, _usable, swept

    metric = _metric(result, metric)
    if x not in result.hyperparameters:
        raise ValueError(f"regfn.plot: x {x!r} is not a hyperparameter; choose one of {list(result.hyperparameters)}")
    if color is None:
        color = next((n for n in swept(result) if n != x), None)
    rows = [r for r in result.rows if _usable(r, metric)]
    fig, (ax,) = _figure()
    xs = [r[x] for r in rows]
    kwargs: dict[str, Any] = {"s": 22, "alpha": 0.85, "edgecolors": "none"}
    if color is not None:
        dots = ax.scatter(xs, [r[metric] for r in rows], c=[r[color] for r in rows], cmap="viridis", **kwargs)
        fig.colorbar(dots, ax=ax, label=_label(color))
    else:
        ax.scatter(xs, [r[metric] for r in rows], color="C0", **kwargs)
    _scale(ax, sorted(set(xs)))
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(metric))
    ax.grid(True, alpha=0.3)
    dropped = len(result.rows) - len(rows)
    note = f"one dot per run ({len(rows)})" + (f"; {dropped} diverged left out" if dropped else "")
    _titles(ax, f"{_label(metric)} vs {_label(x)} (sampled points)", note)
    return _save(fig, path)
