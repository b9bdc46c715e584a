"""The interface every sweep engine implements, and the job it runs.

The driver (:mod:`regfn._sweep._driver`) cuts the configurations into chunks
and hands each chunk to an engine; an engine trains a chunk and nothing else.
It implements three things:

* :meth:`Engine.problems` (a classmethod): what it cannot run for a job, as
  sentences; the driver refuses the sweep with them before any work starts;
* :meth:`Engine.warm_up`: compile for one chunk size on a throwaway chunk
  (the driver then warms the shared evaluation); a failure the engine can
  recover from becomes :class:`EngineFailed`, naming the engine to hand over to;
* :meth:`Engine.start`, :meth:`Engine.advance`, :meth:`Engine.params`: a
  chunk's training as state: its starting :class:`ChunkState`, that state
  trained on to a later epoch (calling ``log`` at every log point on the way),
  and the parameters it holds. :meth:`Engine.run` strings them together for a
  whole run. A state is a tree of tensors whose leading dimension is the
  chunk's configurations, so the driver can save it (checkpoints), resume it,
  or take rows of it (schedules that stop or copy configurations).

Engines share :class:`~regfn._sweep._program.Program` (initial state,
mini-batch orders, evaluation), so every engine starts from the same
parameters and keys, and the driver evaluates every engine's results the
same way. An engine reads models and losses by their declared properties
(``apply.mlp_settings``, ``Loss.name``), never by identity.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._warn import warn
from ..data import Dataset, Folds
from ._program import Program, Spec, program

__all__ = ["ChunkState", "Engine", "EngineFailed", "Job", "LogFn", "mark_nonfinite", "warn"]

LogFn = Callable[[int, Tensor, dict[str, Tensor]], None]
"""``log(epochs_done, objective, params)``: called by an engine at every log point."""


@dataclass(frozen=True)
class Job:
    """The settings of one sweep call that every chunk shares.

    Attributes:
        spec: what the program depends on (model, loss, optimizer, ...).
        data: the training data, on the sweep's device.
        val: the validation data, or ``None``.
        epochs: passes over the data.
        batch_size: ``None`` for full batch.
        log_every: the curves' sampling interval, in epochs.
        compile: whether to compile (``torch.compile``, or the engine's own compiler).
        cuda_graphs: whether a CUDA engine may capture and replay blocks of epochs.
        folds: cross-validation folds of ``data`` (on its device), or ``None``.
            With folds, the configurations' rows carry ``hp["fold"]``: a row
            trains on ``data``'s rows ``folds.train[fold]`` and is validated on
            ``folds.val[fold]`` (``val`` is then ``None``).
    """

    spec: Spec
    data: Dataset
    val: Dataset | None
    epochs: int
    batch_size: int | None
    log_every: int
    compile: bool
    cuda_graphs: bool
    folds: Folds | None = None

    @property
    def device(self) -> torch.device:
        return self.data.x.device

    @property
    def has_val(self) -> bool:
        """Whether the configurations are validated (validation data, or held-out folds)."""
        return self.folds is not None or (self.val is not None and len(self.val) > 0)

    @property
    def n_train(self) -> int:
        """The training rows of one configuration (a fold's, under cross-validation)."""
        return len(self.data) if self.folds is None else self.folds.train.shape[1]

    def train_rows(self, hp: dict[str, Tensor]) -> Tensor | None:
        """Each configuration's training rows ``(K, n_train)`` of ``data``; ``None``: all of them, shared."""
        return None if self.folds is None else self.folds.train[hp["fold"]]

    def val_rows(self, hp: dict[str, Tensor]) -> Tensor | None:
        """Each configuration's validation rows ``(K, n_val)`` of ``data``; ``None``: ``val``, shared."""
        return None if self.folds is None else self.folds.val[hp["fold"]]


@dataclass
class ChunkState:
    """A chunk in training: a tree (dicts of tensors, each ``(chunk, ...)``) and the epochs it has run.

    The tree is the engine's own layout (the vmap engine's parameters,
    optimizer state and keys; the Triton engine's packed buffers); only its
    engine reads it, but every leaf has one row per configuration.
    """

    tree: dict[str, Any]
    epoch: int = 0
    # issue 23 item 6: per configuration, the first epoch (1-based) whose objective was NaN or inf, 0 for none;
    # None where an engine does not track it (the driver then reads the log points).
    nonfinite: Tensor | None = None


def mark_nonfinite(first: Tensor | None, value: Tensor, done: int) -> Tensor:
    """``first`` (see :attr:`ChunkState.nonfinite`) with epoch ``done`` set where ``value`` turned non-finite."""
    if first is None:
        first = torch.zeros(value.shape, dtype=torch.int64, device=value.device)
    return torch.where((first == 0) & ~torch.isfinite(value), done, first)


class EngineFailed(RuntimeError):
    """An engine could not warm up; the driver warns with ``message`` and runs ``fallback`` instead."""

    def __init__(self, message: str, fallback: Engine):
        super().__init__(message)
        self.message = message
        self.fallback = fallback


class Engine(abc.ABC):
    """A way to train a chunk of configurations (see the module docstring)."""

    name: ClassVar[str]

    def __init__(self, job: Job):
        self.job = job
        self.program: Program = program(job.spec, self.compiles_program)

    @property
    def compiles_program(self) -> bool:
        """Whether this engine's shared :class:`Program` is compiled."""
        return self.job.compile

    @property
    def needs_warm_up(self) -> bool:
        """Whether a new chunk size must be warmed up (compiled) before it runs."""
        return self.job.compile

    @classmethod
    def problems(cls, job: Job) -> list[str]:
        """What this engine cannot run for ``job`` (empty: it can run it)."""
        return []

    @abc.abstractmethod
    def warm_up(self, hp: dict[str, Tensor]) -> dict[str, Tensor]:
        """Compile for chunks of this size on a throwaway run; return its parameters.

        Raises:
            EngineFailed: when the engine cannot run and another should.
            torch.cuda.OutOfMemoryError: propagated, so the driver can shrink chunks.
        """

    @abc.abstractmethod
    def start(self, hp: dict[str, Tensor]) -> ChunkState:
        """The chunk's state before its first epoch (``hp``: ``(chunk,)`` tensors)."""

    @abc.abstractmethod
    def advance(self, state: ChunkState, hp: dict[str, Tensor], until: int, log: LogFn, bar: Any) -> ChunkState:
        """Train ``state`` on to epoch ``until``; return the new state (``state`` may be reused).

        Calls ``log(done, objective, params)`` after epoch ``done`` whenever
        ``done`` is a multiple of ``job.log_every`` or ``job.epochs``, and
        advances ``bar`` by the epochs it runs. Training ``a`` epochs, then
        ``b``, gives the same state as ``a + b`` at once.
        """

    @abc.abstractmethod
    def params(self, state: ChunkState) -> dict[str, Tensor]:
        """The parameters ``state`` holds (``(chunk, ...)`` tensors)."""

    def train_metrics(self, params: dict[str, Tensor], hp: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every configuration's metrics on its training data, dropout off (``(K,)`` tensors)."""
        return self._metrics(params, hp, self.job.data, self.job.train_rows(hp))

    def val_metrics(self, params: dict[str, Tensor], hp: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every configuration's metrics on its validation data (``job.has_val`` must hold)."""
        rows = self.job.val_rows(hp)
        data = self.job.data if rows is not None else self.job.val
        if data is None:
            raise ValueError("regfn.sweep: no validation data to evaluate on")
        return self._metrics(params, hp, data, rows)

    def _metrics(
        self, params: dict[str, Tensor], hp: dict[str, Tensor], data: Dataset, rows: Tensor | None
    ) -> dict[str, Tensor]:
        if rows is None:
            return self.program.eval(params, hp, data.x, data.y)
        return self.program.eval_rows(params, hp, data.x, data.y, rows)

    def run(self, hp: dict[str, Tensor], log: LogFn, bar: Any) -> dict[str, Tensor]:
        """Train one chunk for the job's epochs; return its final parameters."""
        return self.params(self.advance(self.start(hp), hp, self.job.epochs, log, bar))

    def is_log_point(self, done: int) -> bool:
        """Whether the curves sample after epoch ``done``."""
        return done % self.job.log_every == 0 or done == self.job.epochs
