"""A sweep's results in the dashboards people use: TensorBoard and MLflow.

:meth:`regfn.SweepResult.to_tensorboard` and :meth:`regfn.SweepResult.to_mlflow`
(and ``regfn sweep --tensorboard DIR`` / ``--mlflow URI``) write one run per
configuration: its hyperparameters, its final metrics and its curves. Each
needs its own package (``pip install 'regfn[tensorboard]'`` or
``'regfn[mlflow]'``); importing this module needs neither.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..results import SweepResult

__all__ = ["curve_points", "final_metrics", "run_hparams"]


def run_hparams(result: SweepResult, i: int) -> dict[str, float | int]:
    """Configuration ``i``'s hyperparameters (the result's columns of them).

    Examples:
        >>> import torch
        >>> from regfn import SweepResult
        >>> rows = [{"l2": 0.1, "seed": 0, "val_acc": 0.75, "val_acc_folds": [0.5, 1.0], "diverged": False}]
        >>> result = SweepResult(rows, {"loss": torch.tensor([[0.75, 0.5]])}, [5, 10], ("l2", "seed"))
        >>> run_hparams(result, 0), final_metrics(result, 0), curve_points(result, 0)
        ({'l2': 0.1, 'seed': 0}, {'val_acc': 0.75, 'diverged': 0.0}, {'loss': [(5, 0.75), (10, 0.5)]})
    """
    return {h: result.rows[i][h] for h in result.hyperparameters}


def final_metrics(result: SweepResult, i: int) -> dict[str, float]:
    """Configuration ``i``'s final numbers: every scalar column but the hyperparameters (flags as 0/1)."""
    out = {}
    for name, value in result.rows[i].items():
        if name in result.hyperparameters or isinstance(value, (list, tuple, str)) or value is None:
            continue
        out[name] = float(value)
    return out


def curve_points(result: SweepResult, i: int) -> dict[str, list[tuple[int, float]]]:
    """Configuration ``i``'s curves as ``name -> [(epoch, value), ...]`` (NaN points left out)."""
    out = {}
    for name, curves in result.curves.items():
        values = curves[i].tolist()
        out[name] = [(e, float(v)) for e, v in zip(result.curve_epochs, values, strict=True) if math.isfinite(v)]
    return out


def needs(package: str, extra: str, what: str) -> Any:
    """Import ``package``, or raise an ImportError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ImportError(f"{what} needs {extra}: pip install 'regfn[{extra}]'") from err
