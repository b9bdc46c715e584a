"""The "model and training" option group: the model's options, then how it trains and where.

``--optimizer``, ``--batch-size``, ``--device``, ``--compile``,
``--threads`` and ``--key-impl``, and the two steps they take before training: the device
(checked to exist) and torch's thread count.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .._hparams import OPTIMIZER_ARGS
from ..random import DEFAULT_IMPL, IMPLS
from ._argtypes import auto_or_positive_int, positive_int
from ._errors import CLIError
from ._model import add_model_options

if TYPE_CHECKING:
    import torch

__all__ = ["add_training_options", "pick_device", "set_threads"]


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The ``model and training`` option group of ``regfn sweep`` and ``regfn train``."""
    g = p.add_argument_group("model and training")
    add_model_options(g)
    g.add_argument(
        "--optimizer", default="sgd", choices=tuple(OPTIMIZER_ARGS), help="the optimizer, with torch.optim's arguments"
    )
    g.add_argument(
        "--batch-size", type=positive_int, default=None, help="mini-batch size (default: full batch, as the tutorial)"
    )
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda when available)")
    g.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the step (default: auto, as regfn.sweep: on CUDA always, on CPU when the run is "
        "long enough to pay for compiling, decided from the workload alone, never from a timing)",
    )
    g.add_argument(
        "--threads",
        type=auto_or_positive_int,
        default="auto",
        help="CPU threads for torch: a number, or auto (one thread: the thread count can change bits)",
    )
    g.add_argument(
        "--key-impl",
        choices=tuple(IMPLS),
        default=DEFAULT_IMPL,
        help="the random keys: threefry2x32 (the numbers of jax.random) or philox4x32 (cheaper dropout masks)",
    )


def pick_device(name: str) -> torch.device:
    """``--device``: ``auto`` is cuda when available; a device that does not exist here is a :class:`CLIError`."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CLIError(f"--device: unknown device {name!r}; use cpu, cuda or cuda:N") from None
    from .._preflight import check_device

    try:
        check_device(device, f"--device {name}")  # regfn.sweep's own check and message
    except ValueError as err:
        raise CLIError(str(err)) from None
    return device


def set_threads(n: int | str) -> None:
    """Set torch's threads for this command; ``auto`` leaves the choice to regfn.sweep (or 1 for regfn train)."""
    import torch

    if n != "auto":
        torch.set_num_threads(int(n))  # this process is the command: its own setting to make
