"""Figures of a sweep (:class:`regfn.SweepResult`) as PNG files.

matplotlib is an optional extra (``pip install 'regfn[plot]'``); it is
imported only when a function here runs. Figures are drawn on
``matplotlib.figure.Figure`` objects with the non-interactive Agg canvas, so
nothing here touches pyplot's global state or needs a display.

How rows are aggregated: a point is the mean of the metric over every row
with that x value (and that line's value), and the band is mean ± one
standard deviation over those rows. The rows behind one point differ in the
seed and in any swept hyperparameter that is neither the x axis nor the line
variable: those are pooled ("marginalised"), and the subtitle says so.
Diverged rows and non-finite values are left out (the legend counts them).

Axes use a log scale where the swept values are positive and span a ratio
above 10, and a symmetric-log scale (linear around 0) when such values also
include 0.

Examples:
    >>> import regfn, regfn.plot, tempfile
    >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
    >>> res = regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), data,
    ...                   regfn.grid(l2=[0.0, 1e-2], seed=[0, 1]), epochs=3, compile=False, quiet=True)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [p.name for p in regfn.plot.plot_all(res, tmp)]
    ['acc_vs_l2.png', 'curves.png']

The figures live by job: :mod:`regfn.plot._sweeps` (a metric against the
hyperparameters), :mod:`regfn.plot._runs` (curves over epochs, schedules),
:mod:`regfn.plot._all` (:func:`plot_all`) and :mod:`regfn.plot._common`
(labels, order, pooling).
"""

from __future__ import annotations

from ._all import plot_all as plot_all
from ._common import LABELS as LABELS
from ._common import ORDER as ORDER
from ._common import swept as swept
from ._points import plot_points as plot_points
from ._runs import plot_curves as plot_curves
from ._runs import plot_pbt as plot_pbt
from ._runs import plot_rungs as plot_rungs
from ._sweeps import plot_heatmap as plot_heatmap
from ._sweeps import plot_metric as plot_metric
from ._sweeps import plot_sparsity as plot_sparsity
from ._sweeps import plot_vs_l1 as plot_vs_l1
from ._sweeps import plot_vs_l2 as plot_vs_l2

__all__ = [
    "plot_all",
    "plot_curves",
    "plot_heatmap",
    "plot_metric",
    "plot_pbt",
    "plot_points",
    "plot_rungs",
    "plot_sparsity",
    "plot_vs_l1",
    "plot_vs_l2",
    "swept",
]
