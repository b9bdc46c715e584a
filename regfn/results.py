"""The results table of a sweep: one row per configuration, plus loss curves."""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    import pandas as pd

    from ._trained import Trained, TrainedModel

__all__ = ["SweepResult"]


def _lower_is_better(metric: str) -> bool:
    return not metric.endswith("acc")


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


@dataclass
class SweepResult:
    """What :func:`regfn.sweep` returns.

    Attributes:
        rows: one dict per configuration, in the order given: its
            hyperparameters, then final metrics (``loss``, ``penalty`` and
            ``acc`` or ``mse`` on the training data with dropout off; the
            same with a ``val_`` prefix on validation data), weight sparsity
            (``zero_frac``: exact zeros, ``tiny_frac``: ``|w| < 1e-6``, over
            weight matrices), ``diverged``, ``diverged_epoch`` and
            ``collapsed`` (a constant predictor, or an accuracy within one
            example of the majority-class rate). Under cross-validation
            (``cv=``) the metrics are means over the folds; every metric
            ``m`` but the penalties comes with ``m_folds`` (the per-fold
            values: training metrics on each fold's training rows), and each
            validation metric ``val_m`` also with ``val_m_std``.
        curves: ``name -> (K, T)`` tensors sampled at ``curve_epochs``:
            ``loss`` (the training objective, dropout on) and the ``val_*``
            metrics when validation data was given.
        curve_epochs: the epochs (1-based, after the step) the curves sample.
        hyperparameters: the names of the hyperparameters in each row.
        timings: seconds spent: ``compile_s`` (warm-up and compilation),
            ``run_s`` (training and evaluation), ``total_s``.
        engine: the engine that trained the configurations (``"vmap"`` or
            ``"triton"``; ``"vmap"`` also when the Triton kernel failed and
            the sweep fell back).
        settings: how the sweep ran: ``compile`` (whether the step was
            compiled, after ``compile="auto"`` decided), ``threads`` (CPU
            threads, after ``threads="auto"`` decided; ``None`` on CUDA),
            ``chunk_size`` (configurations per vmapped call) and
            ``padded`` (rows trained, padding included; a row is a
            configuration on one fold under cross-validation), ``folds``
            (the number of folds, under cross-validation); with a
            schedule also ``chunk_sizes`` (every chunk size it used) and
            ``config_epochs`` (configuration-epochs trained, padding included).
        schedule: with ``regfn.sweep(..., schedule=...)``, the schedule's
            record: ``kind`` (``"successive_halving"``, ``"hyperband"`` or
            ``"pbt"``), ``metric``, and for successive halving and Hyperband
            ``brackets`` (each: its ``configs`` and ``rungs``, a rung being
            its ``epoch``, the ``live`` configurations, their metric
            ``values`` and the ``kept`` ones), for PBT ``epochs`` (0 and
            every exploit epoch), ``names``, ``sources`` (per exploit, each
            configuration's source: itself when it did not copy) and ``hp``
            (``name -> K lists``, the values from each of ``epochs`` on).
            Empty without a schedule.
        provenance: what reruns the sweep (see :func:`regfn.verify`): the
            ``configurations`` (the validated rows), the ``spec`` (model
            description, loss, optimizer, epochs, batch size, log interval,
            engine), ``data_sha256`` and ``val_sha256`` (fingerprints of the
            tensors), ``versions`` (regfn, torch, Python), ``device``,
            ``world_size`` and the sweep's ``arguments`` as they ran; the
            ``regfn sweep`` command adds its ``argv``.
        trained: the final parameters the sweep kept (see :meth:`params`;
            ``keep=`` of :func:`regfn.sweep`); ``None`` for a result read
            from JSON or built by hand.

    Examples:
        >>> import regfn
        >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
        >>> result = regfn.sweep(regfn.nn.mlp((2, 4, 1), output="logits"), data,
        ...                      regfn.grid(l2=[0.0, 1e-2], seed=[0, 1]), epochs=5, compile=False, quiet=True)
        >>> len(result), result.swept(), result.default_metric(), result.diverged
        (4, ['l2', 'seed'], 'acc', [])
        >>> result.rows[3]["l2"], result.rows[3]["seed"], result.curves["loss"].shape, result.curve_epochs
        (0.01, 1, torch.Size([4, 5]), [1, 2, 3, 4, 5])
    """

    rows: list[dict[str, Any]]
    curves: dict[str, Tensor]
    curve_epochs: list[int]
    hyperparameters: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    engine: str = "vmap"
    settings: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    trained: Trained | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def diverged(self) -> list[int]:
        """Indices of the configurations whose training diverged."""
        return [i for i, row in enumerate(self.rows) if row["diverged"]]

    @property
    def collapsed(self) -> list[int]:
        """Indices of the configurations that learned a constant (see ``regfn.TrainResult.collapsed``)."""
        return [i for i, row in enumerate(self.rows) if row.get("collapsed")]

    def swept(self) -> list[str]:
        """The hyperparameters that take more than one value across the rows."""
        return [h for h in self.hyperparameters if len({row[h] for row in self.rows}) > 1]

    def default_metric(self) -> str:
        """The metric that ranks configurations: validation accuracy (or MSE) if present."""
        for name in ("val_acc", "val_mse", "acc", "mse", "loss"):
            if self.rows and name in self.rows[0]:
                return name
        return "loss"

    def survivors(self) -> list[int] | None:
        """Successive halving or Hyperband: the rows trained to the end (not stopped at a rung); else ``None``.

        Examples:
            >>> rows = [{"l2": 0.0, "stopped_epoch": 30}, {"l2": 0.1, "stopped_epoch": 90}]
            >>> SweepResult(rows, {}, [], ("l2",), schedule={"kind": "hyperband"}).survivors()
            [1]
        """
        if self.schedule.get("kind") not in ("successive_halving", "hyperband") or not self.rows:
            return None
        end = max(row["stopped_epoch"] for row in self.rows)
        return [i for i, row in enumerate(self.rows) if row["stopped_epoch"] == end]

    def best(self, n: int = 5, by: str | None = None, *, survivors_first: bool = True) -> list[dict[str, Any]]:
        """The ``n`` best rows by ``by`` (higher accuracy, lower loss/MSE); diverged rows last.

        Each returned row carries its index in ``rows`` as ``"config"``. After
        successive halving or Hyperband, the rows trained to the end rank
        ahead of those stopped at a rung (whose metrics are from fewer
        epochs), unless ``survivors_first=False``.

        Examples:
            >>> rows = [{"l2": 0.0, "seed": 0, "val_acc": 0.75, "diverged": False},
            ...         {"l2": 0.1, "seed": 0, "val_acc": 0.875, "diverged": False},
            ...         {"l2": 1.0, "seed": 0, "val_acc": float("nan"), "diverged": True}]
            >>> result = SweepResult(rows, curves={}, curve_epochs=[], hyperparameters=("l2", "seed"))
            >>> [(row["config"], row["val_acc"]) for row in result.best(3)]
            [(1, 0.875), (0, 0.75), (2, nan)]
            >>> result.best(1, by="l2")[0]["config"]  # lower is better for anything but accuracy
            0
        """
        by = by or self.default_metric()
        if self.rows and by not in self.rows[0]:
            raise ValueError(f"by must be one of {sorted(self.rows[0])}, got {by!r}")
        sign = 1.0 if _lower_is_better(by) else -1.0
        kept = self.survivors() if survivors_first else None
        ahead = set(kept) if kept is not None else set(range(len(self.rows)))

        def rank(item: tuple[int, dict[str, Any]]) -> tuple[bool, bool, float]:
            value = item[1][by]
            bad = item[1]["diverged"] or value is None or not math.isfinite(value)
            return (bad, item[0] not in ahead, sign * value if not bad else 0.0)

        ordered = sorted(enumerate(self.rows), key=rank)
        return [{"config": i, **row} for i, row in ordered[:n]]

    def params(self, i: int, *, fold: int | None = None) -> dict[str, Tensor]:
        """Configuration ``i``'s final parameters: ``name -> Tensor`` (CPU copies), the model's own structure.

        They are the parameters :func:`regfn.train` returns for that
        configuration, taken where the row ended (the last epoch, or the rung
        a schedule stopped it at): to float tolerance, since a vmapped matmul
        sums in another order than a lone one; bit for bit, the parameters of
        the configuration swept alone (eager), whatever shares its chunk,
        and the same after a checkpoint's resume or under torch.distributed.
        Under cross-validation pass ``fold`` (each fold trained its own
        model). A model from
        :func:`regfn.from_module` takes them back with
        ``module.load_state_dict(result.params(i))``.

        Raises:
            ValueError: ``i`` out of range, a row ``keep=`` did not keep (the
                message lists the kept ones), ``fold`` missing or out of range
                under cross-validation, or a result that holds no parameters.

        Examples:
            >>> import regfn, torch
            >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
            >>> model = regfn.nn.mlp((2, 4, 1), output="logits")
            >>> result = regfn.sweep(model, data, regfn.grid(l2=[0.0, 1e-2]), epochs=5, compile=False, quiet=True)
            >>> run = regfn.train(model, data, optimizer=regfn.optim.sgd(0.1, momentum=0.9),
            ...                   penalties=[regfn.l2(1e-2)], key=regfn.random.key(0), epochs=5)
            >>> all(torch.allclose(result.params(1)[n], run.params[n], rtol=1e-5, atol=1e-7) for n in run.params)
            True
            >>> alone = regfn.sweep(model, data, [{"l2": 1e-2}], epochs=5, compile=False, quiet=True)
            >>> all(torch.equal(result.params(1)[n], alone.params(0)[n]) for n in run.params)
            True
        """
        from ._trained import params_of

        return params_of(self, i, fold)

    def best_params(self, by: str | None = None, *, fold: int | None = None) -> dict[str, Tensor]:
        """The parameters of the best configuration by ``by`` (:meth:`best`'s ranking), as :meth:`params`."""
        return self.params(self.best(1, by)[0]["config"], fold=fold)

    def model(self, i: int | None = None, *, fold: int | None = None) -> TrainedModel:
        """Configuration ``i``'s trained model (default: the best), a callable: ``model(x)`` is its output.

        The output is the model's own (logits for a logits model), dropout off.

        Examples:
            >>> import regfn
            >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
            >>> result = regfn.sweep(regfn.nn.mlp((2, 4, 1), output="logits"), data, regfn.grid(l2=[0.0, 1e-2]),
            ...                      epochs=5, compile=False, quiet=True)
            >>> result.model(0)(data.x).shape, result.predict(data.x[:3], 1).shape
            (torch.Size([64, 1]), torch.Size([3, 1]))
        """
        from ._trained import model_of

        return model_of(self, self.best(1)[0]["config"] if i is None else i, fold)

    def predict(self, x: Tensor, i: int | None = None, *, fold: int | None = None) -> Tensor:
        """Configuration ``i``'s (default: the best's) output on ``x``: ``self.model(i, fold=fold)(x)``."""
        return self.model(i, fold=fold)(x)

    def save(self, directory: str | pathlib.Path, configs: Sequence[int] | None = None) -> pathlib.Path:
        """Write the kept parameters of ``configs`` (default: every kept configuration) as safetensors files.

        One file per configuration (per configuration and fold under
        cross-validation) and an index, ``params.json`` (its path is
        returned): each file's configuration, fold, hyperparameters and
        tensor names, best configuration first. :meth:`load_params` reads
        them back bit for bit.

        Examples:
            >>> import regfn, tempfile, torch
            >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
            >>> result = regfn.sweep(regfn.nn.mlp((2, 4, 1), output="logits"), data, regfn.grid(l2=[0.0, 1e-2]),
            ...                      epochs=5, compile=False, quiet=True)
            >>> index = result.save(tempfile.mkdtemp())
            >>> back = SweepResult.load_params(index.parent, 1)
            >>> all(torch.equal(back[n], p) for n, p in result.params(1).items())
            True
        """
        from ._trained import save

        return save(self, directory, configs)

    @staticmethod
    def load_params(
        directory: str | pathlib.Path, config: int | None = None, fold: int | None = None
    ) -> dict[str, Tensor]:
        """The parameters :meth:`save` wrote under ``directory``: configuration ``config`` (default: the best
        saved), on ``fold`` under cross-validation (default 0)."""
        from ._trained import load_params

        return load_params(directory, config, fold)

    def table(self, n: int = 10, by: str | None = None, columns: Sequence[str] | None = None) -> str:
        """A plain-text table of the ``n`` best rows (columns: the swept hyperparameters, then metrics).

        Examples:
            >>> rows = [{"l2": 0.0, "seed": 0, "val_acc": 0.75, "diverged": False},
            ...         {"l2": 0.1, "seed": 0, "val_acc": 0.875, "diverged": False}]
            >>> result = SweepResult(rows, curves={}, curve_epochs=[], hyperparameters=("l2", "seed"))
            >>> print(result.table())
            config   l2  val_acc  diverged
                 1  0.1    0.875     False
                 0    0     0.75     False
        """
        best = self.best(n, by)
        if not best:
            return "(no configurations)"
        by = by or self.default_metric()
        if columns is None:
            metrics = [
                c
                for c in (
                    *("loss", "penalty", "acc", "mse", "val_loss", "val_acc", "val_acc_std", "val_mse", "val_mse_std"),
                    "zero_frac",
                )
                if c in best[0]
            ]
            scheduled = [c for c in ("stopped_epoch", "rung") if c in best[0]]
            columns = ["config", *(self.swept() or self.hyperparameters), *metrics, *scheduled, "diverged"]
        cells = [[_fmt(row[c]) for c in columns] for row in best]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(lines)

    def summary(self, over: str = "seed", by: str | None = None) -> list[dict[str, Any]]:
        """Mean, std, min and max of ``by`` over seeds or folds, best first (what ``regfn sweep`` prints).

        ``over="seed"``: one entry per setting (the swept hyperparameters but
        ``seed``), with the setting, ``mean``, ``std`` (``correction=0``),
        ``min``, ``max``, ``n`` (runs that did not diverge) and ``runs``.
        ``over="fold"`` (a cross-validated sweep, ``by`` a validation metric):
        one entry per configuration, its ``config`` index and
        hyperparameters with the statistics of its per-fold values. Diverged
        runs count in ``runs`` only; a setting without any run left has NaN
        statistics and ranks last.

        Examples:
            >>> rows = [{"l2": l2, "seed": s, "acc": a, "diverged": False}
            ...         for l2, s, a in [(0.0, 0, 0.5), (0.0, 1, 0.7), (0.1, 0, 0.8), (0.1, 1, 0.9)]]
            >>> result = SweepResult(rows, curves={}, curve_epochs=[], hyperparameters=("l2", "seed"))
            >>> [(s["l2"], round(s["mean"], 3), round(s["std"], 3), s["min"], s["max"], s["n"])
            ...  for s in result.summary(over="seed", by="acc")]
            [(0.1, 0.85, 0.05, 0.8, 0.9, 2), (0.0, 0.6, 0.1, 0.5, 0.7, 2)]
        """
        from ._summary import summarize

        return summarize(self, over, by or self.default_metric())

    def to_csv(self, path: str | pathlib.Path) -> None:
        """Write the rows as CSV (header: the row keys)."""
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]) if self.rows else [])
            writer.writeheader()
            writer.writerows(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """Rows, curves (as lists) and timings, JSON-ready (NaN and inf become None).

        Examples:
            >>> import torch
            >>> rows = [{"l2": 0.0, "loss": float("nan"), "diverged": True}]
            >>> d = SweepResult(rows, {"loss": torch.tensor([[0.5, 0.25]])}, [1, 2], ("l2",)).to_dict()
            >>> d["rows"], d["curves"], d["curve_epochs"]
            ([{'l2': 0.0, 'loss': None, 'diverged': True}], {'loss': [[0.5, 0.25]]}, [1, 2])
        """

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "hyperparameters": list(self.hyperparameters),
            "rows": [{k: clean(v) for k, v in row.items()} for row in self.rows],
            "curve_epochs": list(self.curve_epochs),
            "curves": {k: [[clean(float(x)) for x in r] for r in v.tolist()] for k, v in self.curves.items()},
            "timings": dict(self.timings),
            "engine": self.engine,
            "settings": dict(self.settings),
            "provenance": self.provenance,
            **({"schedule": self.schedule} if self.schedule else {}),
        }

    def to_json(self, path: str | pathlib.Path) -> None:
        """Write :meth:`to_dict` as JSON."""
        pathlib.Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path: str | pathlib.Path) -> SweepResult:
        """A result written by :meth:`to_json` (NaN and inf were written as ``None`` and stay ``None``).

        Examples:
            >>> import tempfile, pathlib, torch
            >>> result = SweepResult([{"l2": 0.0, "loss": 0.5}], {"loss": torch.tensor([[0.5]])}, [1], ("l2",))
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.json"
            >>> result.to_json(path)
            >>> back = SweepResult.from_json(path)
            >>> back.rows == result.rows, back.curves["loss"].tolist(), back.hyperparameters
            (True, [[0.5]], ('l2',))
        """
        try:
            d = json.loads(pathlib.Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a regfn results.json ({type(err).__name__}: {err})") from None
        return cls.from_dict(d, path)

    @classmethod
    def from_dict(cls, d: Any, source: str | pathlib.Path = "results") -> SweepResult:
        """A result from :meth:`to_dict`'s form (parsed JSON; ``source`` names it in errors)."""
        import torch

        try:
            curves = {
                k: torch.tensor([[math.nan if x is None else x for x in r] for r in v], dtype=torch.float64)
                for k, v in d["curves"].items()
            }
            return cls(
                rows=list(d["rows"]),
                curves=curves,
                curve_epochs=list(d["curve_epochs"]),
                hyperparameters=tuple(d["hyperparameters"]),
                timings=dict(d.get("timings", {})),
                engine=d.get("engine", "vmap"),
                settings=dict(d.get("settings", {})),
                schedule=dict(d.get("schedule", {})),
                provenance=dict(d.get("provenance", {})),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise ValueError(f"{source}: not a regfn results.json ({type(err).__name__}: {err})") from None

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a ``pandas.DataFrame`` (needs pandas: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas needs pandas: pip install pandas (or regfn[pandas])") from err
        return pd.DataFrame(self.rows)

    def to_tensorboard(self, logdir: str | pathlib.Path) -> list[pathlib.Path]:
        """One TensorBoard run per configuration under ``logdir`` (see :func:`regfn.tracking._tensorboard.to_tensorboard`)."""
        from .tracking._tensorboard import to_tensorboard

        return to_tensorboard(self, logdir)

    def to_mlflow(self, experiment: str, tracking_uri: str | None = None) -> str:
        """A parent MLflow run and one child run per configuration; the parent's id (see :mod:`regfn.tracking._mlflow`)."""
        from .tracking._mlflow import to_mlflow

        return to_mlflow(self, experiment, tracking_uri)
