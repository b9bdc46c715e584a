"""Statistics over seeds or folds: :meth:`regfn.SweepResult.summary`, which ``regfn sweep`` prints.

Examples:
    >>> stats([0.5, 1.5, float("nan")])
    {'mean': 1.0, 'std': 0.5, 'min': 0.5, 'max': 1.5, 'n': 2, 'runs': 3}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import SweepResult

__all__ = ["stats", "summarize"]


def stats(values: Sequence[float]) -> dict[str, Any]:
    """``mean``, ``std`` (``correction=0``), ``min``, ``max`` of the finite values; ``n`` of them, ``runs`` in all."""
    good = [v for v in values if v is not None and math.isfinite(v)]
    if not good:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0, "runs": len(values)}
    mean = sum(good) / len(good)
    std = math.sqrt(sum((v - mean) ** 2 for v in good) / len(good))
    return {"mean": mean, "std": std, "min": min(good), "max": max(good), "n": len(good), "runs": len(values)}


def _ranked(entries: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    higher = by.endswith("acc")
    return sorted(entries, key=lambda e: (not math.isfinite(e["mean"]), -e["mean"] if higher else e["mean"]))


def summarize(result: SweepResult, over: str, by: str) -> list[dict[str, Any]]:
    """See :meth:`regfn.SweepResult.summary`."""
    rows = result.rows
    if rows and by not in rows[0]:
        raise ValueError(f"SweepResult.summary: by must be one of {sorted(rows[0])}, got {by!r}")
    if over == "seed":
        names = [h for h in result.swept() if h != "seed"]  # the others are the same in every row
        groups: dict[tuple[Any, ...], list[float]] = {}
        for row in rows:
            value = row[by]
            ok = not row["diverged"] and value is not None and math.isfinite(value)
            groups.setdefault(tuple(row[h] for h in names), []).append(value if ok else math.nan)
        entries = [{**dict(zip(names, key, strict=True)), **stats(v)} for key, v in groups.items()]
        return _ranked(entries, by)
    if over == "fold":
        if rows and f"{by}_folds" not in rows[0]:
            folded = sorted(n.removesuffix("_folds") for n in rows[0] if n.endswith("_folds"))
            raise ValueError(
                f"SweepResult.summary: over='fold' needs a cross-validated sweep (cv=) and a metric with per-fold values "
                f"({', '.join(folded) or 'none here'}), got by={by!r}"
            )
        entries = []
        for i, row in enumerate(rows):
            values = [math.nan if v is None else float(v) for v in row[f"{by}_folds"]]
            if row["diverged"]:
                values = [math.nan] * len(values)
            entries.append({"config": i, **{h: row[h] for h in result.hyperparameters}, **stats(values)})
        return _ranked(entries, by)
    raise ValueError(f"SweepResult.summary: over must be 'seed' or 'fold', got {over!r}")
