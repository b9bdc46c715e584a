"""What every figure shares: the axis order and labels, the figure and file helpers, the pooling of rows."""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._hparams import HPARAMS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..results import SweepResult

PathLike = str | os.PathLike[str]


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
