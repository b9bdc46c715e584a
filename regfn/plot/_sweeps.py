"""Figures of a metric against the swept hyperparameters: lines with bands, heatmaps, sparsity."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

from ._common import (
    PathLike,
    _figure,
    _finite,
    _label,
    _legend_outside,
    _metric,
    _pick_hue,
    _pooled_note,
    _save,
    _scale,
    _stats,
    _tied,
    _titles,
    _usable,
    swept,
)

if TYPE_CHECKING:
    from matplotlib.patches import Rectangle

    from ..results import SweepResult

__all__ = ["plot_heatmap", "plot_metric", "plot_sparsity", "plot_vs_l1", "plot_vs_l2"]


def plot_metric(
    result: SweepResult,
    path: PathLike,
    x: str = "l2",
    *,
    metric: str | None = None,
    hue: str | bool | None = "auto",
    title: str | None = None,
) -> pathlib.Path:
    """A metric against one hyperparameter: mean line and ± std band over seeds, one line per ``hue`` value.

    Args:
        result: a :class:`~regfn.SweepResult`.
        path: the PNG file to write.
        x: the hyperparameter on the x axis (``"l2"``, ``"l1"``, ``"p"``, ...).
        metric: the row value on the y axis (default: ``result.default_metric()``,
            validation accuracy or MSE when there was validation data).
        hue: the hyperparameter that gets one line per value: ``"auto"`` (``p``
            if swept, else the swept one with the fewest values, at most 8),
            a name, or ``None`` for one line. Other swept hyperparameters are pooled.
        title: the figure title (default: ``"<metric> vs <x>"``).

    Returns:
        The written path.

    Examples:
        >>> import pathlib, tempfile, regfn
        >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
        >>> res = regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), data,
        ...                   regfn.grid(l2=[0.0, 1e-2], p=[0.0, 0.5], seed=[0, 1]),
        ...                   epochs=3, compile=False, quiet=True)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = plot_metric(res, pathlib.Path(tmp) / "acc_vs_l2.png", x="l2")  # one line per p
        ...     path.name, path.stat().st_size > 0
        ('acc_vs_l2.png', True)
    """
    metric = _metric(result, metric)
    if x not in result.hyperparameters:
        raise ValueError(f"regfn.plot: x {x!r} is not a hyperparameter; choose one of {list(result.hyperparameters)}")
    hue = _pick_hue(result, x, hue)
    fig, (ax,) = _figure()
    hue_values = sorted({row[hue] for row in result.rows}) if hue else [None]
    xs = sorted({row[x] for row in result.rows})
    try:
        from matplotlib import colormaps

        cmap = colormaps["viridis"]
    except ImportError:  # pragma: no cover - matplotlib < 3.5
        cmap = None
    dropped = sum(not _usable(row, metric) for row in result.rows)
    for i, h in enumerate(hue_values):
        rows = [r for r in result.rows if hue is None or r[hue] == h]
        means, stds, used = [], [], []
        for v in xs:
            vals = [r[metric] for r in rows if r[x] == v and _usable(r, metric)]
            if vals:
                m, s = _stats(vals)
                means.append(m)
                stds.append(s)
                used.append(v)
        if not used:
            continue
        color = cmap(i / max(1, len(hue_values) - 1) * 0.85) if cmap is not None and hue else "C0"
        label = f"{hue} = {h:g}" if hue else None
        ax.plot(used, means, "o-", color=color, label=label, lw=1.8, ms=4)
        ax.fill_between(
            used,
            [m - s for m, s in zip(means, stds, strict=True)],
            [m + s for m, s in zip(means, stds, strict=True)],
            color=color,
            alpha=0.18,
            lw=0,
        )
    _scale(ax, xs)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(metric))
    ax.grid(True, alpha=0.3)
    note = _pooled_note(result, [x, hue] if hue else [x])
    if dropped:
        note += f"; {dropped} diverged run{'s' if dropped != 1 else ''} left out"
    _titles(ax, title or f"{_label(metric)} vs {_label(x)}", note)
    if hue:
        _legend_outside(ax)
    return _save(fig, path)


def plot_vs_l2(result: SweepResult, path: PathLike, **kwargs: Any) -> pathlib.Path:
    """:func:`plot_metric` with the L2 strength on the x axis."""
    return plot_metric(result, path, "l2", **kwargs)


def plot_vs_l1(result: SweepResult, path: PathLike, **kwargs: Any) -> pathlib.Path:
    """:func:`plot_metric` with the L1 strength on the x axis."""
    return plot_metric(result, path, "l1", **kwargs)


def plot_heatmap(
    result: SweepResult, path: PathLike, x: str | None = None, y: str | None = None, *, metric: str | None = None
) -> pathlib.Path:
    """A heatmap of the metric's mean (over seeds and other swept hyperparameters) over two hyperparameters.

    Args:
        result: a :class:`~regfn.SweepResult`.
        path: the PNG file to write.
        x: the hyperparameter on the horizontal axis (default: the first two
            swept, penalties first: l2, l1, norm2, weight_decay, p, lr, momentum).
        y: the hyperparameter on the vertical axis (default: the second of those).
        metric: the value shown (default: ``result.default_metric()``).

    Returns:
        The written path.

    Raises:
        ValueError: if fewer than two hyperparameters are given or swept.

    Examples:
        >>> import pathlib, tempfile, regfn
        >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
        >>> res = regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), data,
        ...                   regfn.grid(l2=[0.0, 1e-2], l1=[0.0, 1e-3]), epochs=3, compile=False, quiet=True)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_heatmap(res, pathlib.Path(tmp) / "heatmap.png").name
        'heatmap.png'
    """
    metric = _metric(result, metric)
    names = [n for n in swept(result) if n not in (x, y)]
    x = x or (names.pop(0) if names else None)
    y = y or (names.pop(0) if names else None)
    if x is None or y is None or x == y:
        raise ValueError("regfn.plot.plot_heatmap: needs two different swept hyperparameters (x and y)")
    xs = sorted({row[x] for row in result.rows})
    ys = sorted({row[y] for row in result.rows})
    grid = [
        [_stats([r[metric] for r in result.rows if r[x] == a and r[y] == b and _usable(r, metric)])[0] for a in xs]
        for b in ys
    ]
    fig, (ax,) = _figure(max(5.0, 1.0 + 0.75 * len(xs)), max(3.6, 1.4 + 0.45 * len(ys)))
    higher = metric.endswith("acc")
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis" if higher else "viridis_r")
    fig.colorbar(image, ax=ax, label=f"mean {_label(metric)}" + ("" if higher else " (lower is better)"))
    ax.set_xticks(range(len(xs)), [f"{v:.3g}" for v in xs], rotation=45 if len(xs) > 6 else 0)
    ax.set_yticks(range(len(ys)), [f"{v:.3g}" for v in ys])
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(y))
    finite = [(v, i, j) for i, row in enumerate(grid) for j, v in enumerate(row) if _finite(v)]
    if finite and len(xs) * len(ys) <= 150:
        lo, hi = min(v for v, _, _ in finite), max(v for v, _, _ in finite)
        for v, i, j in finite:
            bright = (v - lo) / (hi - lo) if hi > lo else 0.5
            bright = bright if higher else 1 - bright
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7, color="black" if bright > 0.6 else "white")
    note = _pooled_note(result, [x, y], "mean")
    if finite:
        # Every cell tied with the best gets a box: boxing one of several would pick a winner the data do not.
        top = (max if higher else min)(v for v, _, _ in finite)
        tied = [(i, j) for v, i, j in finite if _tied([top], v)]
        for i, j in tied:
            ax.add_patch(_rect(j, i))
        note += "; red box: best" if len(tied) == 1 else f"; red boxes: {len(tied)} cells tied for best ({top:.3g})"
    _titles(ax, f"{_label(metric)} over {x} × {y}", note)
    return _save(fig, path)


def _rect(j: int, i: int) -> Rectangle:
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2, gid="best")


def plot_sparsity(result: SweepResult, path: PathLike, x: str = "l1") -> pathlib.Path:
    """Weight sparsity (``zero_frac`` exact zeros, ``tiny_frac`` ``|w| < 1e-6``) against a strength.

    Mean ± std over seeds, pooled over the other swept hyperparameters.
    Plain L1 in the loss (subgradient steps) rarely gives exact zeros; a
    proximal optimizer (:func:`regfn.optim.prox_l1`) does.

    Returns:
        The written path.
    """
    if x not in result.hyperparameters:
        raise ValueError(f"regfn.plot: x {x!r} is not a hyperparameter; choose one of {list(result.hyperparameters)}")
    fig, (ax,) = _figure()
    xs = sorted({row[x] for row in result.rows})
    for metric, style in (("tiny_frac", "s--"), ("zero_frac", "o-")):
        pts = []
        for v in xs:
            vals = [r[metric] for r in result.rows if r[x] == v and _usable(r, metric)]
            if vals:
                pts.append((v, *_stats(vals)))
        if pts:
            vs, ms, ss = zip(*pts, strict=True)
            line = ax.plot(vs, ms, style, label=_label(metric), lw=1.8, ms=4)[0]
            ax.fill_between(
                vs,
                [m - s for m, s in zip(ms, ss, strict=True)],
                [m + s for m, s in zip(ms, ss, strict=True)],
                color=line.get_color(),
                alpha=0.18,
                lw=0,
            )
    _scale(ax, xs)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(_label(x))
    ax.set_ylabel("fraction of weights")
    ax.grid(True, alpha=0.3)
    _legend_outside(ax)
    _titles(ax, f"weight sparsity vs {_label(x)}", _pooled_note(result, [x]))
    return _save(fig, path)
