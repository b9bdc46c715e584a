"""Figures of runs over epochs: the best and worst curves, the rungs of a schedule, PBT's schedules and lineage."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._common import (
    PathLike,
    _figure,
    _label,
    _legend_outside,
    _metric,
    _save,
    _tied,
    _usable,
    swept,
)

if TYPE_CHECKING:
    from ..results import SweepResult

__all__ = ["plot_curves", "plot_pbt", "plot_rungs"]


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
