"""The trained models a sweep keeps: each kept row's final parameters, read, applied, saved and loaded.

:func:`regfn.sweep` copies a row's parameters to the CPU once, when the row
ends (the last epoch, or the rung a schedule stopped it at), and keeps
those of every row, or of the best ``n`` configurations only (``keep=``,
ranked by :meth:`regfn.SweepResult.best`). :class:`Trained` holds them on
the :class:`~regfn.SweepResult`, whose ``params``, ``best_params``,
``model``, ``predict`` and ``save`` methods read them through the
functions here; :func:`load_params` reads what ``save`` wrote.

A saved directory holds one safetensors file per kept row
(``config-<i>.safetensors``; ``config-<i>-fold-<f>.safetensors`` under
cross-validation) and ``params.json``: the format, the ranking metric, and
per file its configuration, fold, hyperparameters and tensor names, best
configuration first.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ._checks import is_int
from ._row_blocks import predictions
from .nn import Model

if TYPE_CHECKING:
    from .results import SweepResult

__all__ = ["FORMAT", "KEEP_VALUES", "Trained", "TrainedModel", "best_configs", "check_keep", "kept_of", "load_params"]

FORMAT = "regfn.params/1"
"""The ``format`` field of a saved directory's ``params.json``."""

KEEP_VALUES = "'auto', 'all', 'best' or an int >= 1"
"""What ``regfn.sweep``'s ``keep`` takes (in error messages)."""

_INDEX = "params.json"


def check_keep(keep: Any, where: str = "regfn.sweep") -> str | int:
    """``keep`` if it is one of :data:`KEEP_VALUES`, else a ValueError naming ``keep``.

    Examples:
        >>> check_keep("best"), check_keep(3)
        ('best', 3)
        >>> check_keep(0)
        Traceback (most recent call last):
        ...
        ValueError: regfn.sweep: keep must be 'auto', 'all', 'best' or an int >= 1, got 0
    """
    if (isinstance(keep, str) and keep in ("auto", "all", "best")) or (is_int(keep) and int(keep) >= 1):
        return keep if isinstance(keep, str) else int(keep)
    raise ValueError(f"{where}: keep must be {KEEP_VALUES}, got {keep!r}")


@dataclass
class TrainedModel:
    """One trained row as a callable: ``model(x)`` is the model's output (logits for a logits model), dropout off.

    Attributes:
        model: the :class:`regfn.Model` that was swept.
        params: its final parameters (CPU; moved to ``x``'s device when called).
        hp: the row's hyperparameters (0-d tensors), what a model whose
            ``apply`` takes ``hp`` reads.
    """

    model: Model
    params: dict[str, Tensor]
    hp: dict[str, Tensor]

    def __call__(self, x: Tensor) -> Tensor:
        params = {n: p.to(x.device) for n, p in self.params.items()}
        hp = {n: v.to(x.device) for n, v in self.hp.items()}
        return predictions(self.model, params, x, hp)  # in blocks of rows on a CPU (.._row_blocks)


@dataclass
class Trained:
    """The parameters a sweep kept (see the module docstring).

    Attributes:
        model: the swept model.
        params: by trained row (row ``c * folds + f`` is configuration ``c``
            on fold ``f``), its final parameters on the CPU.
        hp: by kept row, its hyperparameters (0-d CPU tensors).
        folds: the folds under cross-validation, else 1.
        keep: what the sweep kept: ``"all"``, or the number of best configurations.
    """

    model: Model
    params: dict[int, dict[str, Tensor]]
    hp: dict[int, dict[str, Tensor]]
    folds: int
    keep: str | int

    def configs(self) -> list[int]:
        """The configurations whose parameters are kept (every fold's), ascending."""
        return sorted({row // self.folds for row in self.params})


def kept_of(
    result: SweepResult,
    model: Model,
    params: Mapping[int, dict[str, Tensor]],
    hp_all: Mapping[str, Tensor],
    folds: int,
    n: int | None,
) -> Trained:
    """What a sweep hands its result: the rows of ``params`` (by row) of every configuration (``n`` is
    ``None``) or of the best ``n``, with their hyperparameters from ``hp_all``."""
    wanted = range(len(result)) if n is None else best_configs(result, n)
    rows = sorted(r for c in wanted for r in range(c * folds, (c + 1) * folds) if r in params)
    index = torch.tensor(rows, dtype=torch.int64)
    taken = {n: v.detach().cpu()[index] for n, v in hp_all.items()}
    hp = {row: {n: v[j] for n, v in taken.items()} for j, row in enumerate(rows)}
    return Trained(model, {row: params[row] for row in rows}, hp, folds, "all" if n is None else n)


def best_configs(result: SweepResult, n: int) -> list[int]:
    """The best ``n`` configurations, as :meth:`~regfn.SweepResult.best` ranks them (survivors first)."""
    return [row["config"] for row in result.best(n)]


def row_of(result: SweepResult, i: Any, fold: Any) -> tuple[Trained, int]:
    """What ``result`` kept and the kept row of configuration ``i`` (on ``fold``), or a ValueError that
    says what was kept."""
    trained = result.trained
    if trained is None:
        raise ValueError(
            "this SweepResult holds no parameters (a result read from JSON or built by hand does not): "
            "read saved ones with SweepResult.load_params(directory)"
        )
    if not is_int(i) or not 0 <= int(i) < len(result):
        raise ValueError(f"i must be a configuration index in [0, {len(result) - 1}], got {i!r}")
    if trained.folds > 1:
        if not is_int(fold) or not 0 <= int(fold) < trained.folds:
            raise ValueError(
                f"fold must be in [0, {trained.folds - 1}]: this sweep was cross-validated and trained one model "
                f"per configuration and fold, got fold={fold!r}"
            )
    elif fold is not None:
        raise ValueError(f"fold applies to a cross-validated sweep (cv=) only, got fold={fold!r}")
    row = int(i) * trained.folds + (int(fold) if fold is not None else 0)
    if row not in trained.params and trained.keep == "all":
        raise ValueError(
            f"configuration {int(i)}'s parameters are not in this result: its rows were taken from a checkpoint "
            "written before regfn kept parameters; rerun it without that checkpoint directory"
        )
    if row not in trained.params:
        raise ValueError(
            f"configuration {int(i)}'s parameters were not kept: keep={trained.keep!r} kept those of configurations "
            f"{trained.configs()} (the best by {result.default_metric()}); "
            "pass keep='all' to regfn.sweep to keep every configuration's"
        )
    return trained, row


def params_of(result: SweepResult, i: Any, fold: Any = None) -> dict[str, Tensor]:
    """Configuration ``i``'s final parameters (copies, on the CPU)."""
    trained, row = row_of(result, i, fold)
    return {n: p.clone() for n, p in trained.params[row].items()}


def model_of(result: SweepResult, i: Any, fold: Any = None) -> TrainedModel:
    """Configuration ``i``'s trained model as a callable."""
    trained, row = row_of(result, i, fold)
    return TrainedModel(trained.model, params_of(result, i, fold), dict(trained.hp[row]))


def save(result: SweepResult, directory: str | pathlib.Path, configs: Sequence[int] | None = None) -> pathlib.Path:
    """Write the kept parameters of ``configs`` (default: every kept one, best first) under ``directory``."""
    from safetensors.torch import save_file

    trained = result.trained
    if configs is None:
        kept = set(trained.configs()) if trained is not None else set()
        configs = [c for c in best_configs(result, len(result)) if c in kept]
    folds = trained.folds if trained is not None else 1
    entries = []
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for c in configs:
        for f in range(folds) if folds > 1 else (None,):
            params = params_of(result, c, f)
            name = f"config-{c}.safetensors" if f is None else f"config-{c}-fold-{f}.safetensors"
            save_file({n: p.contiguous() for n, p in params.items()}, str(out / name))
            hyper = {h: result.rows[c][h] for h in result.hyperparameters}
            entries.append({"config": c, "fold": f, "file": name, "hyperparameters": hyper, "tensors": list(params)})
    index = {"format": FORMAT, "metric": result.default_metric(), "entries": entries}
    path = out / _INDEX
    path.write_text(json.dumps(index, indent=1))
    return path


def load_params(directory: str | pathlib.Path, config: int | None = None, fold: int | None = None) -> dict[str, Tensor]:
    """The parameters :meth:`regfn.SweepResult.save` wrote under ``directory``, bit for bit.

    ``config``: which configuration (default: the first saved, the best);
    ``fold``: which fold, for a cross-validated sweep (default: fold 0).
    """
    path = pathlib.Path(directory) / _INDEX
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a directory written by SweepResult.save ({type(err).__name__}: {err})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ValueError(f"{path}: not a directory written by SweepResult.save (format {FORMAT!r} expected)")
    entries = index["entries"]
    if not entries:
        raise ValueError(f"{path}: no parameters were saved there")
    if config is None:
        config = entries[0]["config"]
    folded = entries[0]["fold"] is not None
    want = (0 if fold is None else fold) if folded else fold
    for entry in entries:
        if entry["config"] == config and entry["fold"] == want:
            from safetensors.torch import load_file

            tensors = load_file(str(pathlib.Path(directory) / entry["file"]))
            return {n: tensors[n] for n in entry["tensors"]}
    saved = sorted({(e["config"], e["fold"]) if folded else e["config"] for e in entries})
    raise ValueError(
        f"{path}: configuration {config!r}{f' fold {want!r}' if folded else ''} was not saved there; saved: {saved}"
    )
