"""regfn.verify: rerun a sweep from its results.json and say which rows differ.

A sweep's result records its provenance (:attr:`regfn.SweepResult.provenance`):
the configurations, the spec, fingerprints of the data, versions, and every
choice that can change a bit (compile, threads, chunk size, key
implementation, torch version, device type). :func:`verify` reruns it with
exactly those choices on the model and data its caller gives (it never
builds a model from the file; ``regfn verify`` rebuilds data and model for
runs of the ``regfn sweep`` command, see :mod:`regfn.cli._verify`) and
compares every number of every row and curve, bit for bit.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from ._version import __version__
from .data import Dataset
from .losses import LOSSES, Loss
from .nn import Model
from .random import DEFAULT_IMPL
from .results import SweepResult

__all__ = ["VerifyReport", "verify"]

_T = TypeVar("_T")


@dataclass
class VerifyReport:
    """What :func:`verify` found.

    Attributes:
        identical: every number of every row and curve is bit-identical.
        differences: ``(row, column, stored, rerun)`` for every number that
            differs; a curve's column reads ``curves.<name>[<point>]`` (its
            first differing point).
        rows: the number of rows compared.
        notes: what else the rerun noticed (the choices it reran with,
            another device, other versions).
        modes: ``None`` for a rerun with the recorded compile mode; else what
            was compared, e.g. ``"compiled vs eager"`` (a rerun with
            ``compile=`` other than the recorded one: its differences measure
            the two modes' float tolerance, not a failure to reproduce).
    """

    identical: bool
    differences: list[tuple[int, str, Any, Any]]
    rows: int
    notes: list[str] = field(default_factory=list)
    modes: str | None = None

    @property
    def max_difference(self) -> float:
        """The largest absolute difference of any float that differs (0.0 when none does)."""
        gaps = [
            abs(a - b)
            for _, _, a, b in self.differences
            if isinstance(a, float) and isinstance(b, float) and math.isfinite(a - b)
        ]
        return max(gaps, default=0.0)

    @property
    def differing_rows(self) -> list[int]:
        """The indices of the rows with at least one difference."""
        return sorted({d[0] for d in self.differences})

    def __str__(self) -> str:
        lines = list(self.notes)
        if self.modes is not None:
            lines.append(
                f"{self.modes}: max difference {self.max_difference:.3g} over {self.rows} rows "
                f"({len(self.differing_rows)} rows differ in some bit; a comparison of two compile modes, "
                "not a check of reproducibility)"
            )
            return "\n".join(lines)
        if self.identical:
            lines.append(f"all {self.rows} rows are bit-identical")
            return "\n".join(lines)
        bad = self.differing_rows
        lines.append(
            f"{len(bad)} of {self.rows} rows differ: {', '.join(map(str, bad[:20]))}{' ...' if len(bad) > 20 else ''}"
        )
        for row, column, stored, rerun in self.differences[:50]:
            by = ""
            if isinstance(stored, float) and isinstance(rerun, float) and math.isfinite(stored - rerun):
                by = f" (by {abs(stored - rerun):.3g})"
            lines.append(f"  row {row} {column}: stored {stored!r}, rerun {rerun!r}{by}")
        if len(self.differences) > 50:
            lines.append(f"  ... and {len(self.differences) - 50} more")
        return "\n".join(lines)


def _same(stored: Any, rerun: Any) -> bool:
    """Equal bit for bit, where JSON's ``None`` stands for a NaN or an infinity."""
    if stored is None and isinstance(rerun, float):
        return not math.isfinite(rerun)
    if isinstance(stored, float) and isinstance(rerun, float):
        return stored == rerun or (math.isnan(stored) and math.isnan(rerun))
    return bool(stored == rerun)


def verify(
    results: str | pathlib.Path | SweepResult,
    model: Model,
    data: Dataset,
    *,
    val: Dataset | None = None,
    loss: str | Loss | None = None,
    hparams: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    compile: bool | None = None,
) -> VerifyReport:
    """Rerun the sweep that wrote ``results`` and compare every row and curve with the stored ones.

    The model, the data and a custom loss come from the caller: nothing in
    ``results`` is imported or run (a results file may come from someone
    else), and a file path's fields are checked before use (see
    :func:`regfn._results_check.read_results`: a malformed or oversized file
    is refused with one line). The rerun takes every recorded choice that
    can change a bit: compile mode, thread count, chunk size and key
    implementation; the report's first note says which, and notes another
    torch version or device.

    Args:
        results: a ``results.json`` path (written by :meth:`SweepResult.to_json`) or a result.
        model: the model the sweep trained (checked against the recorded description).
        data: its training data (checked against the recorded fingerprint).
        val: its validation data, if it had some (checked too).
        loss: the loss, when it was not a built-in one (built-ins are recorded by name).
        hparams: the sweep's own declared hyperparameters, if any.
        device: where to rerun (default: the recorded device when this
            machine has it, else the data's).
        compile: ``None`` (the default) reruns with the recorded compile
            mode. ``True`` or ``False`` other than the recorded one compares
            the two modes instead: the report's ``modes`` is
            ``"compiled vs eager"`` and it prints the largest difference
            (compiled and eager agree to float tolerance, not bit for bit).

    Returns:
        A :class:`VerifyReport`: ``identical``, or the ``differences``.

    Raises:
        ValueError: when ``results`` is malformed or has no provenance, or
            the data, the model or the loss given are not those of the
            recorded sweep.
    """
    from ._results_check import read_results
    from ._sweep import sweep
    from ._sweep._checkpoint import data_fingerprint, model_description
    from ._sweep._cv import folds_from_record
    from .search._schedules import schedule_from_dict

    stored = results if isinstance(results, SweepResult) else read_results(results)
    prov = stored.provenance
    if not prov or "arguments" not in prov:
        raise ValueError("regfn.verify: the results hold no provenance (written by an older regfn?); nothing to rerun")
    for name, given, recorded in (
        ("data", data, prov.get("data_sha256")),
        ("val", val, prov.get("val_sha256")),
    ):
        fingerprint = data_fingerprint(given)
        if fingerprint != recorded:
            what = "no validation data" if recorded is None else f"fingerprint {str(recorded)[:12]}"
            raise ValueError(
                f"regfn.verify: {name} is not the data the sweep ran on (recorded: {what}, "
                f"given: {'none' if given is None else str(fingerprint)[:12]})"
            )
    described = model_description(model)
    if described != prov["spec"]["model"]:
        raise ValueError(
            f"regfn.verify: the model is not the one the sweep trained "
            f"(recorded {prov['spec']['model']}, given {described})"
        )
    args = dict(prov["arguments"])
    if loss is None:
        if args["loss"] not in LOSSES:
            raise ValueError(f"regfn.verify: the sweep used the loss {args['loss']!r}: pass it as loss=")
        loss = args["loss"]
    recorded_compile = bool(args["compile"])
    if compile is not None and not isinstance(compile, bool):
        raise TypeError(f"regfn.verify: compile must be None, True or False, got {compile!r}")
    modes = None
    if compile is not None and compile != recorded_compile:
        modes = "compiled vs eager" if compile else "eager vs compiled"
    rerun_compile = recorded_compile if compile is None else compile
    key_impl = args.get("key_impl", DEFAULT_IMPL)
    notes = [
        f"rerun with the recorded choices: compile={recorded_compile}"
        + (f" (here {rerun_compile}, as asked)" if modes else "")
        + f", threads={args['threads']}, chunk_size={args['chunk_size']}, key_impl={key_impl} "
        f"(recorded on {prov['device']}, torch {prov['versions'].get('torch')})"
    ]
    if device is None:
        recorded = torch.device(prov["device"])
        device = recorded if recorded.type == "cpu" or torch.cuda.is_available() else data.x.device
    if str(torch.device(device)) != prov["device"]:
        notes.append(f"note: rerun on {device}, recorded on {prov['device']}: numbers may differ in the last bits")
    here = {"regfn": __version__, "torch": torch.__version__}  # either may change the last bits
    for name, version in here.items():
        if prov.get("versions", {}).get(name) != version:
            notes.append(f"note: {name} {version} here, {prov['versions'].get(name)} when recorded")
    configs = prov["configurations"]
    chunk = args["chunk_size"]
    cv = args.get("cv")
    folds = _from_record(folds_from_record, cv, "cross-validation folds") if cv is not None else None
    recorded_schedule = args.get("schedule")
    schedule = _from_record(schedule_from_dict, recorded_schedule, "schedule") if recorded_schedule else None
    rows = len(configs) * (len(folds) if folds is not None else 1)
    rerun = sweep(
        model,
        data,
        configs,
        val=val,
        cv=folds,
        schedule=schedule,
        loss=loss,
        optimizer=args["optimizer"],
        epochs=args["epochs"],
        batch_size=args["batch_size"],
        log_every=args["log_every"],
        chunk_size=None if chunk > rows else chunk,  # a padded single chunk: the same bucket again
        device=device,
        compile=rerun_compile,
        cuda_graphs=args.get("cuda_graphs", True),
        threads=args["threads"],
        engine=args["engine"],
        key_impl=key_impl,  # results written before key_impl existed: threefry
        quiet=True,
        hparams=hparams,
        gather="all",  # under torchrun every rank compares
        keep="best",  # the rows are compared, not the parameters: hold as few as can be
    )
    if rerun is None:  # pragma: no cover - gather="all" returns the result on every rank
        raise RuntimeError("regfn.verify: the rerun returned no result")
    report = compare(stored, rerun, notes)
    report.modes = modes
    return report


def _from_record(build: Callable[[Any], _T], record: Any, what: str) -> _T:
    """``build(record)`` for a recorded field; a malformed one is a one-line ``ValueError`` naming ``what``."""
    try:
        return build(record)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RuntimeError) as err:
        raise ValueError(f"regfn.verify: the recorded {what} is malformed ({type(err).__name__}: {err})") from None


def compare(stored: SweepResult, rerun: SweepResult, notes: list[str] | None = None) -> VerifyReport:
    """Every number of ``stored`` against ``rerun``: a :class:`VerifyReport`."""
    differences: list[tuple[int, str, Any, Any]] = []
    if len(stored.rows) != len(rerun.rows):
        raise ValueError(f"regfn.verify: {len(stored.rows)} rows stored, {len(rerun.rows)} rerun")
    for i, (a, b) in enumerate(zip(stored.rows, rerun.rows, strict=True)):
        for column in [*a, *(c for c in b if c not in a)]:
            if not _same(a.get(column), b.get(column)):
                differences.append((i, column, a.get(column), b.get(column)))
        for name in sorted(set(stored.curves) | set(rerun.curves)):
            if name not in stored.curves or name not in rerun.curves:
                differences.append((i, f"curves.{name}", name in stored.curves, name in rerun.curves))
                continue
            s, r = stored.curves[name][i].double(), rerun.curves[name][i].double()
            equal = (s == r) | (torch.isnan(s) & ~torch.isfinite(r))
            if s.shape != r.shape or not bool(equal.all()):
                t = int((~equal).nonzero()[0, 0]) if s.shape == r.shape else 0
                differences.append((i, f"curves.{name}[{t}]", float(s[t]), float(r[t])))
    return VerifyReport(not differences, differences, len(stored.rows), list(notes or []))
