"""Write a sweep as TensorBoard runs: curves as scalars, hyperparameters and final metrics for the HParams dashboard."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from . import curve_points, final_metrics, needs, run_hparams

if TYPE_CHECKING:
    from ..results import SweepResult

__all__ = ["run_names", "to_tensorboard"]


def run_names(result: SweepResult) -> list[str]:
    """One name per configuration, ``config-007`` (zero-padded so that runs sort in order).

    Examples:
        >>> from regfn import SweepResult
        >>> run_names(SweepResult([{"l2": 0.0}] * 12, {}, [], ("l2",)))[-1]
        'config-11'
    """
    width = len(str(max(len(result) - 1, 0)))
    return [f"config-{i:0{width}d}" for i in range(len(result))]


def to_tensorboard(result: SweepResult, logdir: str | pathlib.Path) -> list[pathlib.Path]:
    """One run per configuration under ``logdir``: ``curves/<name>`` scalars by epoch, and an HParams entry.

    The HParams entry holds the configuration's hyperparameters and its final
    metrics (written as the scalars ``final/<metric>`` at the last epoch, so
    the dashboard's table and parallel coordinates show them).

    Returns:
        The run directories, in configuration order.

    Raises:
        ImportError: without tensorboard (``pip install 'regfn[tensorboard]'``).
    """
    needs("tensorboard", "tensorboard", "SweepResult.to_tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    root = pathlib.Path(logdir)
    last = result.curve_epochs[-1] if result.curve_epochs else 0
    paths = []
    for i, name in enumerate(run_names(result)):
        path = root / name
        with SummaryWriter(log_dir=str(path)) as writer:
            for curve, points in curve_points(result, i).items():
                for epoch, value in points:
                    writer.add_scalar(f"curves/{curve}", value, epoch)
            metrics = {f"final/{k}": v for k, v in final_metrics(result, i).items()}
            writer.add_hparams(run_hparams(result, i), metrics, run_name=".", global_step=last)
        paths.append(path)
    return paths
