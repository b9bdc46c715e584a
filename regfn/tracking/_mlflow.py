"""Write a sweep to MLflow: a parent run for the sweep, a child run per configuration, in batches."""

from __future__ import annotations

import json
import pathlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import curve_points, final_metrics, needs, run_hparams
from ._tensorboard import run_names

if TYPE_CHECKING:
    from ..results import SweepResult

__all__ = ["to_mlflow"]

_BATCH = 1000  # MLflow's limit on metrics (and on entries) per log_batch call


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _flat(prefix: str, value: Any) -> dict[str, str]:
    """Nested settings as ``a.b`` parameter strings (MLflow parameters are flat strings)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


def to_mlflow(result: SweepResult, experiment: str, tracking_uri: str | None = None, *, figures: bool = True) -> str:
    """Log ``result`` to MLflow: a parent run for the sweep and a child run per configuration.

    The parent run holds the sweep's settings, timings and spec as parameters,
    ``results.json`` (rows, curves and provenance) and, with matplotlib and
    ``figures``, the figures of :func:`regfn.plot.plot_all` as artifacts.
    Each child run (tag ``mlflow.parentRunId``) holds its configuration's
    hyperparameters as parameters, its final metrics, and its curves as metric
    histories (step = epoch). Everything goes through
    ``MlflowClient.log_batch``, a few calls per run.

    Args:
        result: the sweep's result.
        experiment: the experiment's name (created if missing).
        tracking_uri: where to log (``None``: MLflow's default, e.g. the
            ``MLFLOW_TRACKING_URI`` environment variable); e.g.
            ``"sqlite:///mlflow.db"``, ``"http://localhost:5000"``.
        figures: also log the figures (needs matplotlib; skipped without it).

    Returns:
        The parent run's id.

    Raises:
        ImportError: without mlflow (``pip install 'regfn[mlflow]'``).
    """
    needs("mlflow", "mlflow", "SweepResult.to_mlflow")
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunStatus

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    now = int(time.time() * 1000)
    parent = client.create_run(experiment_id, start_time=now, run_name="sweep", tags={"regfn.configs": len(result)})
    pid = parent.info.run_id
    spec = result.provenance.get("spec", {})
    settings = {
        **_flat("settings", result.settings),
        **_flat("timings", result.timings),
        **_flat("spec", spec),
        "engine": result.engine,
        "configs": str(len(result)),
        "swept": json.dumps(result.swept()),
    }
    params = [Param(k[:250], v[:6000]) for k, v in settings.items()]
    for chunk in _chunks(params, 100):  # MLflow takes at most 100 parameters per call
        client.log_batch(pid, params=list(chunk))
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        result.to_json(out / "results.json")
        client.log_artifact(pid, str(out / "results.json"))
        if figures:
            try:
                from .. import plot

                paths = plot.plot_all(result, out / "figures")
            except ImportError:
                paths = []
            if paths:
                client.log_artifacts(pid, str(out / "figures"), "figures")
    for i, name in enumerate(run_names(result)):
        run = client.create_run(experiment_id, start_time=now, run_name=name, tags={"mlflow.parentRunId": pid})
        rid = run.info.run_id
        hp = [Param(k, str(v)) for k, v in run_hparams(result, i).items()]
        last = result.curve_epochs[-1] if result.curve_epochs else 0
        metrics = [Metric(k, v, now, last) for k, v in final_metrics(result, i).items()]
        metrics += [
            Metric(f"curve_{curve}", value, now, epoch)
            for curve, points in curve_points(result, i).items()
            for epoch, value in points
        ]
        for j, chunk in enumerate(_chunks(metrics, _BATCH)):
            client.log_batch(rid, metrics=list(chunk), params=hp if j == 0 else [])
        if not metrics:
            client.log_batch(rid, params=hp)
        client.set_terminated(rid, RunStatus.to_string(RunStatus.FINISHED), end_time=now)
    client.set_terminated(pid, RunStatus.to_string(RunStatus.FINISHED))
    return str(pid)
