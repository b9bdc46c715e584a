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
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._hparams import HPARAMS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .results import SweepResult

PathLike = str | os.PathLike[str]


__all__ = [
    "plot_all",
    "plot_curves",
    "plot_heatmap",
    "plot_metric",
    "plot_pbt",
    "plot_rungs",
    "plot_sparsity",
    "plot_vs_l1",
    "plot_vs_l2",
    "swept",
]

# Hyperparameters in the order figures are made for them: the regularization first, then
# every other name of the registry in its order (the seed is never an axis).
_FIRST = ("l2", "l1", "norm2", "weight_decay", "p")
ORDER = (*_FIRST, *(n for n in HPARAMS if n not in _FIRST and n != "seed"))
LABELS = {
    **{name: p.label for name, p in HPARAMS.items()},
    "acc": "training accuracy",
    "val_acc": "validation accuracy",
    "mse": "training MSE",
    "val_mse": "validation MSE",
    "loss": "training loss",
    "val_loss": "validation loss",
    "penalty": "penalty",
    "zero_frac": "fraction of exact zero weights",
    "tiny_frac": "fraction of weights with |w| < 1e-6",
}
_INSTALL = "regfn.plot needs matplotlib: pip install 'regfn[plot]' (or pip install matplotlib)"


def _figure(width: float = 6.4, height: float = 4.4, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    fig = Figure(figsize=(width * ncols, height), dpi=110, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _save(fig: Figure, path: PathLike) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _titles(ax: Axes, title: str, note: str) -> None:
    """A title with a small grey note under it (what the points aggregate), wrapped to the axes' width."""
    import textwrap

    width = ax.bbox.width / ax.figure.dpi  # inches, before the layout shrinks the axes a little
    lines = textwrap.wrap(note, width=max(30, int(width * 14)))  # ~14 characters of 8 pt text per inch
    ax.set_title(title, fontsize=12, pad=6 + 10 * len(lines))
    ax.text(0.5, 1.0, "\n".join(lines), transform=ax.transAxes, ha="center", va="bottom", fontsize=8, color="0.35")


def _legend_outside(ax: Axes, handles: list[Any] | None = None, labels: list[str] | None = None) -> Any:
    """The legend to the right of the axes, outside the data area (constrained layout makes room for it)."""
    kwargs: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": 7}
    if handles is not None and labels is not None:
        return ax.legend(handles, labels, **kwargs)
    return ax.legend(**kwargs)


def _tied(values: Sequence[float], value: float) -> int:
    """How many of ``values`` equal ``value`` (up to float rounding in a mean)."""
    return sum(math.isclose(v, value, rel_tol=1e-9, abs_tol=1e-12) for v in values)


def _label(name: str) -> str:
    return LABELS.get(name, name)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def swept(result: SweepResult, *, include_seed: bool = False) -> dict[str, list[float]]:
    """The hyperparameters that take more than one value in ``result``, with their sorted values.

    Examples:
        >>> from regfn.results import SweepResult
        >>> rows = [{"l2": a, "p": 0.5, "seed": s} for a in (0.0, 0.1) for s in (0, 1)]
        >>> swept(SweepResult(rows, {}, [], ("l2", "p", "seed")))
        {'l2': [0.0, 0.1]}
    """
    out = {}
    for name in result.hyperparameters:
        if name == "seed" and not include_seed:
            continue
        values = sorted({row[name] for row in result.rows})
        if len(values) > 1:
            out[name] = values
    order = {n: i for i, n in enumerate((*ORDER, "seed"))}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def _metric(result: SweepResult, metric: str | None) -> str:
    metric = metric or result.default_metric()
    if result.rows and metric not in result.rows[0]:
        raise ValueError(f"regfn.plot: metric {metric!r} is not in the results; choose one of {sorted(result.rows[0])}")
    return metric


def _scale(ax: Axes, values: Sequence[float], axis: str = "x") -> None:
    """Log scale for positive values spanning > 10x; symlog when 0 is among such values."""
    positive = [v for v in values if v > 0]
    if len(positive) < 2 or any(v < 0 for v in values) or max(positive) / min(positive) <= 10:
        return
    set_scale = ax.set_xscale if axis == "x" else ax.set_yscale
    if len(positive) == len(values):
        set_scale("log")
    else:
        set_scale("symlog", linthresh=min(positive), linscale=0.5)


def _stats(values: list[float]) -> tuple[float, float]:
    good = [v for v in values if _finite(v)]
    if not good:
        return math.nan, math.nan
    mean = sum(good) / len(good)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in good) / len(good))


def _usable(row: dict[str, Any], metric: str) -> bool:
    return not row.get("diverged", False) and _finite(row.get(metric))


def _pooled_note(result: SweepResult, keep: Sequence[str], what: str = "mean ± std") -> str:
    seeds = len({row.get("seed") for row in result.rows})
    pooled = [n for n in swept(result) if n not in keep]
    note = f"{what} over {seeds} seed{'s' if seeds != 1 else ''}"
    if pooled:
        note += " and pooled over " + ", ".join(pooled)
    return note


def _pick_hue(result: SweepResult, x: str, hue: str | bool | None) -> str | None:
    if hue is None or hue is False:
        return None
    sw = swept(result)
    if hue is not True and hue != "auto":
        if hue not in result.hyperparameters:
            raise ValueError(
                f"regfn.plot: hue {hue!r} is not a hyperparameter; choose one of {list(result.hyperparameters)}"
            )
        return hue
    candidates = [n for n in sw if n != x and len(sw[n]) <= 8]
    if not candidates:
        return None
    return "p" if "p" in candidates else min(candidates, key=lambda n: len(sw[n]))


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
        x, y: the hyperparameters on the axes (default: the first two swept,
            penalties first: l2, l1, norm2, weight_decay, p, lr, momentum).
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


def _describe(result: SweepResult, index: int) -> str:
    row = result.rows[index]
    names = list(swept(result, include_seed=True)) or ["seed"]
    return ", ".join(f"{n}={row[n]:g}" for n in names)


def _ranks(items: Sequence[tuple[str, int]]) -> str:
    """``[("best", 1), ("best", 2), ("worst", 1)]`` -> ``"best 1-2, worst 1"``."""
    parts = []
    for kind in ("best", "worst"):
        ranks = sorted(r for k, r in items if k == kind)
        if ranks:
            contiguous = ranks == list(range(ranks[0], ranks[-1] + 1))
            text = f"{ranks[0]}-{ranks[-1]}" if contiguous and len(ranks) > 1 else ", ".join(map(str, ranks))
            parts.append(f"{kind} {text}")
    return ", ".join(parts)


def _coincide(curves: Sequence[Any], i: int, j: int, shown: Sequence[int]) -> bool:
    """Whether configurations ``i`` and ``j`` draw the same line on every panel.

    Same missing (non-finite) points, and finite points closer than 0.5% of the
    panel's range over the shown configurations: closer than a line's width.
    """
    import torch

    for data in curves:
        a, b = data[i].double(), data[j].double()
        fa, fb = torch.isfinite(a), torch.isfinite(b)
        if not torch.equal(fa, fb):
            return False
        values = data[list(shown)].double()
        values = values[torch.isfinite(values)]
        span = float(values.max() - values.min()) if values.numel() else 0.0
        if fa.any() and float((a[fa] - b[fa]).abs().max()) > 0.005 * span:
            return False
    return True


def plot_curves(result: SweepResult, path: PathLike, n: int = 3, *, metric: str | None = None) -> pathlib.Path:
    """Training curves of the ``n`` best and ``n`` worst configurations (diverged ones excluded).

    Left: the training objective (dropout on) per logged epoch; right, when
    the sweep had validation data: the validation metric. Best in solid
    greens, worst in dashed reds. Each line is labelled by its rank and its
    configuration (``best 1 (config 7): l2=0.01, ...``, the index into
    ``result.rows``). A rank whose metric value ties with other
    configurations says ``one of N tied``; configurations whose curves
    coincide are drawn as one line with markers, labelled ``N configs tied``.
    The legend sits outside the plotting area.

    Returns:
        The written path.

    Examples:
        >>> import pathlib, tempfile, regfn
        >>> train, val = regfn.data.train_val_split(regfn.random.key(1), regfn.data.quadrants(regfn.random.key(0), 80))
        >>> res = regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), train, regfn.grid(seed=[0, 1, 2]),
        ...                   val=val, epochs=4, compile=False, quiet=True)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_curves(res, pathlib.Path(tmp) / "curves.png", n=1).name
        'curves.png'
    """
    metric = _metric(result, metric)
    if "loss" not in result.curves:
        raise ValueError("regfn.plot.plot_curves: the result has no curves")
    ranked_rows = [row for row in result.best(len(result), by=metric) if _usable(row, metric)]
    ranked = [row["config"] for row in ranked_rows]
    values = [row[metric] for row in ranked_rows]
    value_of = dict(zip(ranked, values, strict=True))
    entries = [("best", k, i) for k, i in enumerate(ranked[:n], 1)]
    entries += [("worst", k, i) for k, i in enumerate(ranked[::-1][:n], 1) if i not in ranked[:n]]
    val_curve = metric if metric.startswith("val_") else None
    if val_curve is not None and val_curve not in result.curves:
        val_curve = None
    panels = [("loss", "training objective (dropout on)")]
    if val_curve:
        panels.append((val_curve, _label(val_curve) + " (dropout off)"))
    curves = [result.curves[name] for name, _ in panels]
    shown = [i for _, _, i in entries]
    # Configurations whose lines would lie on top of each other are one line, labelled as a tie.
    groups: list[list[tuple[str, int, int]]] = []
    for entry in entries:
        for group in groups:
            if _coincide(curves, group[0][2], entry[2], shown):
                group.append(entry)
                break
        else:
            groups.append([entry])
    fig, axes = _figure(6.0, 4.4, len(panels))
    epochs = list(result.curve_epochs)
    colors = {"best": ["#1b7837", "#5aae61", "#a6dba0"], "worst": ["#b2182b", "#ef8a62", "#f4a582"]}
    handles, labels = [], []
    for group in groups:
        kind, rank, first = group[0]
        configs = [i for _, _, i in group]
        ties = _tied(values, value_of[first])
        if len(group) == 1:
            tie = f", one of {ties} tied at {metric}={value_of[first]:.4g}" if ties > 1 else ""
            label = f"{kind} {rank} (config {first}{tie}): {_describe(result, first)}"
        else:
            label = f"{_ranks([(k, r) for k, r, _ in group])} (configs {', '.join(map(str, configs))}): "
            label += f"{len(group)} configs tied, curves coincide"
            if ties > len(group):
                label += f"; {ties} tied at {metric}={value_of[first]:.4g}"
        style: dict[str, Any] = {
            "linestyle": "-" if kind == "best" else "--",
            "color": colors[kind][min(rank - 1, 2)],
            "lw": 1.8 if kind == "best" else 1.5,
        }
        if len(group) > 1:
            style.update(marker="o", ms=4, markevery=max(1, len(epochs) // 8))
        for ax, data in zip(axes, curves, strict=True):
            (line,) = ax.plot(epochs, data[first].tolist(), **style)
        handles.append(line)
        labels.append(label)
    for ax, (name, ylabel) in zip(axes, panels, strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.set_title(_label(name), fontsize=11)
    _legend_outside(axes[-1], handles, labels)
    n_div = len(result.diverged)
    title = f"curves of the best and worst configs by {_label(metric)}"
    if n_div:
        title += f" ({n_div} diverged not shown)"
    fig.suptitle(title, fontsize=12)
    return _save(fig, path)


def plot_rungs(result: SweepResult, path: PathLike) -> pathlib.Path:
    """A successive-halving or Hyperband schedule: the metric against epochs, survivors highlighted.

    One panel per bracket. Every configuration's validation curve of the
    schedule's metric runs up to the epoch it stopped (thin grey lines); the
    configurations that trained to the end are coloured and labelled; dashed
    vertical lines mark the rungs, with how many configurations continued.

    Raises:
        ValueError: for a result without such a schedule.

    Examples:
        >>> import pathlib, tempfile, regfn
        >>> from regfn.search import successive_halving
        >>> train, val = regfn.data.train_val_split(regfn.random.key(1), regfn.data.quadrants(regfn.random.key(0), 80))
        >>> res = regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), train, regfn.grid(seed=range(4)), val=val,
        ...                   epochs=4, schedule=successive_halving(min_epochs=1, eta=2), compile=False, quiet=True)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_rungs(res, pathlib.Path(tmp) / "rungs.png").name
        'rungs.png'
    """
    record = result.schedule
    if record.get("kind") not in ("successive_halving", "hyperband"):
        raise ValueError("regfn.plot.plot_rungs: the result has no successive-halving or Hyperband schedule")
    metric = record["metric"]
    brackets = record["brackets"]
    fig, axes = _figure(5.2, 4.2, len(brackets))
    epochs = list(result.curve_epochs)
    last = max(epochs)
    curve = result.curves[metric]
    colors = ["#1b7837", "#2166ac", "#b2182b", "#762a83", "#e08214", "#35978f"]
    for b, (ax, bracket) in enumerate(zip(axes, brackets, strict=True)):
        survivors = [i for i in bracket["configs"] if result.rows[i]["stopped_epoch"] == last]
        for i in bracket["configs"]:
            if i in survivors:
                continue
            stop = result.rows[i]["stopped_epoch"]
            xs = [e for e in epochs if e <= stop]
            ax.plot(xs, curve[i, : len(xs)].tolist(), color="0.65", lw=0.8, alpha=0.7)
        for n, i in enumerate(survivors):
            label = f"config {i}: {_describe(result, i)}"
            ax.plot(epochs, curve[i].tolist(), color=colors[n % len(colors)], lw=1.8, label=label)
        for rung in bracket["rungs"]:
            ax.axvline(rung["epoch"], color="0.3", ls="--", lw=0.8)
            ax.text(
                rung["epoch"], 1.0, f" {len(rung['kept'])}/{len(rung['live'])}", transform=ax.get_xaxis_transform(),
                fontsize=7, va="top", color="0.3",
            )  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(_label(metric))
        ax.grid(True, alpha=0.3)
        title = f"bracket {b}: " if len(brackets) > 1 else ""
        ax.set_title(f"{title}{len(bracket['configs'])} configs, {len(survivors)} trained to the end", fontsize=10)
        if survivors:
            ax.legend(fontsize=6, loc="best")
    kind = "Hyperband" if record["kind"] == "hyperband" else "successive halving"
    fig.suptitle(f"{kind} (eta={record['eta']}) by {_label(metric)}; grey: stopped at a rung", fontsize=12)
    return _save(fig, path)


def plot_pbt(result: SweepResult, path: PathLike) -> pathlib.Path:
    """A population-based training run: each configuration's hyperparameter schedule, and its lineage.

    One panel per perturbed hyperparameter (its value against epochs, a step
    at every exploit), and one of the validation metric, where a marker at
    an exploit epoch shows each copy: the copying configuration's line takes
    on its source's colour from there.

    Raises:
        ValueError: for a result without a PBT schedule.

    Examples:
        >>> import pathlib, tempfile, regfn
        >>> from regfn.search import pbt
        >>> train, val = regfn.data.train_val_split(regfn.random.key(1), regfn.data.quadrants(regfn.random.key(0), 80))
        >>> res = regfn.sweep(regfn.mlp((2, 4, 1), output="logits"), train, regfn.grid(lr=[0.1, 0.3], seed=range(2)),
        ...                   val=val, epochs=4, schedule=pbt(2, key=regfn.random.key(0)), compile=False, quiet=True)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_pbt(res, pathlib.Path(tmp) / "pbt.png").name
        'pbt.png'
    """
    record = result.schedule
    if record.get("kind") != "pbt":
        raise ValueError("regfn.plot.plot_pbt: the result has no PBT schedule")
    metric, names = record["metric"], record["names"]
    fig, axes = _figure(5.0, 4.2, len(names) + 1)
    epochs = list(result.curve_epochs)
    last = max(epochs)
    starts = [*record["epochs"], last]
    k = len(result.rows)
    cmap = _colormap(k)
    # the colour of each configuration's line in each interval: its lineage's root
    root = list(range(k))
    roots = [list(root)]
    for sources in record["sources"]:
        root = [root[s] for s in sources]
        roots.append(list(root))
    for ax, name in zip(axes, names, strict=False):
        for i in range(k):
            values = record["hp"][name][i]
            for j in range(len(values)):
                ax.plot(starts[j : j + 2], [values[j], values[j]], color=cmap[roots[j][i]], lw=1.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(_label(name))
        ax.grid(True, alpha=0.3)
        if all(v > 0 for row in record["hp"][name] for v in row):
            ax.set_yscale("log")
        ax.set_title(f"schedule of {name}", fontsize=10)
    ax = axes[-1]
    curve = result.curves[metric]
    for j in range(len(starts) - 1):
        cols = [c for c, e in enumerate(epochs) if starts[j] < e <= starts[j + 1]]
        before = [c for c, e in enumerate(epochs) if e <= starts[j]]
        for i in range(k):
            xs, ys = [epochs[c] for c in cols], curve[i, cols].tolist()
            if j > 0 and before:  # start from where the line's source stood at the exploit
                src = record["sources"][j - 1][i]
                xs, ys = [epochs[before[-1]], *xs], [float(curve[src, before[-1]]), *ys]
            ax.plot(xs, ys, color=cmap[roots[j][i]], lw=1.0)
    for j, sources in enumerate(record["sources"], start=1):
        column = max(c for c, e in enumerate(epochs) if e <= record["epochs"][j])
        for dst, src in enumerate(sources):
            if dst != src:
                ax.plot([record["epochs"][j]], [float(curve[src, column])], "o", ms=3, color=cmap[roots[j][dst]])
    ax.set_xlabel("epoch")
    ax.set_ylabel(_label(metric))
    ax.grid(True, alpha=0.3)
    ax.set_title("lineage (colour: the root config; dots: copies)", fontsize=9)
    fig.suptitle(f"population-based training by {_label(metric)}, every {record['interval']} epochs", fontsize=12)
    return _save(fig, path)


def _colormap(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis" if n > 10 else "tab10"]
    return [cmap(i / max(n - 1, 1)) if n > 10 else cmap(i) for i in range(n)]


def _fills_grid(result: SweepResult, x: str, y: str) -> bool:
    """Whether the rows cover at least half the cells of the ``x`` by ``y`` grid (a sampled search does not)."""
    cells = {(row[x], row[y]) for row in result.rows}
    return 2 * len(cells) >= len({c[0] for c in cells}) * len({c[1] for c in cells})


def plot_all(result: SweepResult, out_dir: PathLike, *, metric: str | None = None) -> list[pathlib.Path]:
    """Write the figures that make sense for what was swept; returns their paths.

    * ``<metric>_vs_<name>.png`` for every swept hyperparameter (more than one
      value; seeds are the bands, not an axis); for sampled points (the
      first two swept do not form a grid) a scatter coloured by another
      swept hyperparameter (:func:`regfn._plot_points.plot_points`);
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
        from ._plot_points import plot_points

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
