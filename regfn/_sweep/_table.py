"""The results table of a sweep: typed rows until the table is written, and what reruns it.

Each configuration becomes a :class:`Row` (its hyperparameters, final
metrics, sparsity, divergence, collapse, cross-validation's per-fold values
and a schedule's columns); :func:`table` writes the rows as the
:class:`~regfn.results.SweepResult`'s dicts, whose keys are the results'
columns, in the order the CSV and JSON files keep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .._train import is_collapsed
from ..data import Folds
from ..results import SweepResult
from . import _cv
from ._engine import warn
from ._outputs import Outputs

__all__ = ["Row", "provenance", "rows_of", "table"]


@dataclass
class Row:
    """One configuration's results (see :class:`~regfn.results.SweepResult` for the columns)."""

    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    zero_frac: float
    tiny_frac: float
    diverged: bool
    diverged_epoch: int | None
    collapsed: bool
    folds: dict[str, list[float]] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The row as the table's columns, in order."""
        out: dict[str, Any] = {**self.hyperparameters, **self.metrics}
        out.update(zero_frac=self.zero_frac, tiny_frac=self.tiny_frac, diverged=self.diverged)
        out.update(diverged_epoch=self.diverged_epoch, collapsed=self.collapsed)
        out.update({f"{name}_folds": values for name, values in self.folds.items()})
        out.update(self.schedule)
        return out


def rows_of(
    configs: Sequence[Mapping[str, Any]],
    shown: Sequence[str],
    outputs: Outputs,
    majority: float | None,
    n_judged: int,
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> list[Row]:
    """Every configuration's :class:`Row`.

    ``collapsed`` is judged on the validation data when there is some (its
    majority-class rate ``majority`` and size ``n_judged``), else on the
    training data (cross-validation judged it per fold already).
    ``columns``: a schedule's, one value per configuration.
    """
    bad, logged = outputs.bad, outputs.logged
    validated = outputs.val_constant is not None
    flags = outputs.val_constant if outputs.val_constant is not None else outputs.constant
    out = []
    for i, config in enumerate(configs):
        metrics = {name: float(v[i]) for name, v in outputs.metrics.items()}
        row_bad = bool(bad[i].any())
        diverged = row_bad or not bool(outputs.finite[i]) or not math.isfinite(metrics["loss"])
        first = int(bad[i].nonzero()[0, 0]) if row_bad else None
        diverged_epoch = logged[first] if first is not None else (logged[-1] if diverged else None)
        seen = int(outputs.nonfinite_epoch[i])
        if seen > 0:  # tracked every epoch (an engine that does not leaves 0): the epoch, not the next log point
            diverged_epoch = min(seen, diverged_epoch or seen)
        if outputs.collapsed is not None:
            collapsed = bool(outputs.collapsed[i])
        else:
            acc = metrics.get("val_acc" if validated else "acc")
            collapsed = not diverged and is_collapsed(bool(flags[i]), acc, majority, n_judged)
        out.append(
            Row(
                hyperparameters={name: config[name] for name in shown},
                metrics=metrics,
                zero_frac=float(outputs.zero_frac[i]),
                tiny_frac=float(outputs.tiny_frac[i]),
                diverged=diverged,
                diverged_epoch=diverged_epoch,
                collapsed=collapsed,
                folds={name: values[i].tolist() for name, values in outputs.folds.items()},
                schedule={name: values[i] for name, values in (columns or {}).items()},
            )
        )
    return out


def table(
    rows: Sequence[Row], configs: Sequence[Mapping[str, Any]], shown: tuple[str, ...], outputs: Outputs, quiet: bool
) -> SweepResult:
    """The result holding ``rows`` (warning about diverged and collapsed ones unless ``quiet``)."""
    result = SweepResult([row.columns() for row in rows], outputs.curves, outputs.logged, shown)
    for flagged, what in ((result.diverged, "diverged (NaN/inf)"), (result.collapsed, "collapsed to a constant")):
        if flagged and not quiet:
            first = flagged[0]
            example = f", e.g. config {first}: { {n: configs[first][n] for n in shown} }" if len(configs) > 1 else ""
            warn(
                f"regfn.sweep: {len(flagged)} of {len(configs)} configuration{'s' if len(configs) != 1 else ''} {what}"
                f"{example}; they are flagged in the results"
            )
    return result


def provenance(
    rows: list[dict[str, Any]],
    record: dict[str, Any],
    settings: dict[str, Any],
    device: torch.device,
    log_every: int,
    cuda_graphs: bool,
    folds: Folds | None = None,
) -> dict[str, Any]:
    """What reruns the sweep: the configurations, the spec and data fingerprints, versions, where it ran.

    ``rows`` are the configurations as validated, with the names some
    configuration set (the others take their defaults again on a rerun).
    ``arguments`` holds every choice that can change a bit (compile,
    threads, chunk size, key implementation), with ``versions["torch"]`` and
    ``device_type``: the same choices on the same torch version and device
    type give the same bytes (regfn.verify reruns with them).
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    spec = {n: record[n] for n in ("model", "loss", "optimizer", "epochs", "batch_size", "log_every", "engine")}
    return {
        "format": record["format"],
        "configurations": rows,
        "configurations_sha256": record["configurations"],
        "spec": spec,
        "data_sha256": record["data"],
        "val_sha256": record["val"],
        "versions": {n: record[n] for n in ("regfn", "torch", "python")},
        "device": str(device),
        "device_type": device.type,
        "world_size": torch.distributed.get_world_size() if distributed else 1,
        "arguments": {
            "loss": record["loss"],
            "optimizer": record["optimizer"],
            "epochs": record["epochs"],
            "batch_size": record["batch_size"],
            "log_every": log_every,
            "chunk_size": settings["chunk_size"],
            "compile": settings["compile"],
            "threads": settings["threads"],
            "key_impl": settings["key_impl"],
            "cuda_graphs": cuda_graphs,
            "engine": record["engine"],
            "cv": _cv.record(folds) if folds is not None else None,
        },
    }
