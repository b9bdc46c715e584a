"""The interface every sweep engine implements, what it declares it runs, and the job it runs.

The sweep loop (:mod:`regfn._sweep._loop`) cuts the configurations into
chunks and hands each chunk to an engine; an engine trains a chunk and
nothing else. The loop never tests an engine's name: it asks the engine.
An engine declares:

* :attr:`Engine.runs` (a :class:`Runs`): the losses, penalties and
  optimizers it runs, whether it runs cross-validation's folds and
  schedules, and whether a schedule may copy rows of its state (PBT);
  :meth:`Engine.problems` turns what a job asks beyond that (and
  :meth:`Engine.more_problems`, an engine's own checks) into sentences that
  the sweep refuses, naming the engine, before any work starts;
* :meth:`Engine.warm_up`: compile for one chunk size on a throwaway chunk
  (the loop then warms the shared evaluation); a failure the engine can
  recover from becomes :class:`EngineFailed`, naming the engine to hand
  over to; :meth:`Engine.eager` is the same engine without compilation;
* :meth:`Engine.start`, :meth:`Engine.advance`, :meth:`Engine.params`: a
  chunk's training as state: its starting :class:`ChunkState`, that state
  trained on to a later epoch (calling ``log`` at every log point on the way),
  and the parameters it holds. A state is a tree of tensors whose leading
  dimension is the chunk's configurations, so the loop can save it
  (checkpoints), resume it, or take rows of it (schedules that stop
  configurations); :meth:`Engine.copied` lists the leaves a PBT copy takes.

Engines share :class:`~regfn._sweep._program.Program` (initial state,
mini-batch orders, evaluation), so every engine starts from the same
parameters and keys, and the loop evaluates every engine's results the
same way (:meth:`Engine.train_metrics`, :meth:`Engine.val_metrics`, typed
as :class:`Metrics`). An engine reads models and losses by their declared
properties (``apply.mlp_settings``, ``Loss.name``), never by identity.

A new engine is one module with an :class:`Engine` subclass, and one line
in :data:`regfn._sweep._engines.ENGINES`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._train import CONSTANT
from .._warn import warn
from ..data import Dataset, Folds
from ._fold_sizes import SizeGroups, by_size, size_groups
from ._program import Program, Spec, program

__all__ = ["ChunkState", "Engine", "EngineFailed", "Job", "LogFn", "Metrics", "Runs", "mark_nonfinite", "warn"]

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
        stops: a schedule stops configurations and regroups the rest
            (successive halving, Hyperband): the engine's state is cut by rows.
        copies: a schedule copies rows of the state into others (PBT).
        eval_block_rows: the rows a block of a configuration's evaluation holds
            (:func:`regfn._row_blocks.block_rows`; ``None``: every row at once). Not part of
            :attr:`spec`: the compiled program does not depend on it.
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
    stops: bool = False
    copies: bool = False
    eval_block_rows: int | None = None

    @property
    def device(self) -> torch.device:
        return self.data.x.device

    @property
    def has_val(self) -> bool:
        """Whether the configurations are validated (validation data, or held-out folds)."""
        return self.folds is not None or (self.val is not None and len(self.val) > 0)

    @property
    def n_train(self) -> int:
        """The training rows of one configuration (a fold's, under cross-validation: the largest fold's)."""
        return len(self.data) if self.folds is None else self.folds.train.shape[1]

    def train_rows(self, hp: dict[str, Tensor]) -> Tensor | None:
        """Each configuration's training rows ``(K, n_train)`` of ``data`` (folds of different sizes: each
        row's first :meth:`train_sizes` of them); ``None``: all of them, shared."""
        return None if self.folds is None else self.folds.train[hp["fold"]]

    def val_rows(self, hp: dict[str, Tensor]) -> Tensor | None:
        """Each configuration's validation rows ``(K, n_val)`` of ``data`` (folds of different sizes: each
        row's first :meth:`val_sizes` of them); ``None``: ``val``, shared."""
        return None if self.folds is None else self.folds.val[hp["fold"]]

    def train_sizes(self, hp: dict[str, Tensor]) -> SizeGroups | None:
        """The configurations grouped by their fold's number of training rows (``None``: folds of one size)."""
        return self._grouped(hp, Folds.train_size)

    def val_sizes(self, hp: dict[str, Tensor]) -> SizeGroups | None:
        """The configurations grouped by their fold's number of validation rows (``None``: folds of one size)."""
        return self._grouped(hp, Folds.val_size)

    def _grouped(self, hp: dict[str, Tensor], size_of: Callable[[Folds, int], int]) -> SizeGroups | None:
        """The configurations grouped by ``size_of(folds, fold)``; ``None`` without folds of different sizes."""
        folds = self.folds
        if folds is None or not folds.ragged:
            return None
        return size_groups([size_of(folds, f) for f in hp["fold"].tolist()], self.device)


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


@dataclass(frozen=True)
class Metrics:
    """Every configuration's metrics on one dataset: ``values`` (``name -> (K,)``, in the results' column
    order) and ``constant`` (``(K,)``, 1 where the model predicts one value for every row)."""

    values: dict[str, Tensor]
    constant: Tensor

    @classmethod
    def of(cls, evaluated: dict[str, Tensor]) -> Metrics:
        """The program's evaluation (:func:`regfn._train.evaluate`'s dict) split into values and the flag."""
        values = dict(evaluated)
        return cls(values, values.pop(CONSTANT))


@dataclass(frozen=True)
class Runs:
    """What an engine runs; a sweep that asks for more is refused before any work, naming the engine.

    Attributes:
        losses: the loss names (``Loss.name``) it runs; ``None``: any loss.
        penalties: the penalty hyperparameters it applies; ``None``: every one.
        optimizers: the optimizers it runs; ``None``: every one.
        folds: whether it runs cross-validation (``cv=``): each row on its fold's rows.
        stops: whether a schedule may stop rows and regroup the rest (its state cut by rows).
        copies: whether a schedule may copy rows of its state into others (PBT).
    """

    losses: Collection[str] | None = None
    penalties: Collection[str] | None = None
    optimizers: Collection[str] | None = None
    folds: bool = True
    stops: bool = True
    copies: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    def problems(self, job: Job) -> list[str]:
        """What ``job`` asks beyond these, as sentences."""
        spec, out = job.spec, []
        if self.losses is not None and spec.loss.name not in self.losses:
            out.append(f"the loss must be one of {sorted(self.losses)}")
        if self.optimizers is not None and spec.optimizer not in self.optimizers:
            out.append(f"the optimizer must be one of {list(self.optimizers)}, got {spec.optimizer!r}")
        if self.penalties is not None:
            missing = [n for n in spec.penalties if n not in self.penalties]
            if missing:
                out.append(f"it applies only the penalties {', '.join(self.penalties)}, not {', '.join(missing)}")
        if job.folds is not None and not self.folds:
            out.append(self.notes.get("folds", "it does not run cross-validation (cv=)"))
        if job.stops and not self.stops:
            out.append("it does not run schedules that stop configurations")
        if job.copies and not self.copies:
            out.append("a PBT schedule copies rows of the state, which it does not; use engine='vmap'")
        return out


class EngineFailed(RuntimeError):
    """An engine could not warm up; the driver warns with ``message`` and runs ``fallback`` instead."""

    def __init__(self, message: str, fallback: Engine):
        super().__init__(message)
        self.message = message
        self.fallback = fallback


class Engine(abc.ABC):
    """A way to train a chunk of configurations (see the module docstring)."""

    name: ClassVar[str]
    runs: ClassVar[Runs] = Runs()
    batched: ClassVar[bool] = True
    """Whether its compiled program depends on the chunk size (then automatic chunks are padded to a few sizes)."""
    min_rows: ClassVar[int] = 2
    """The fewest rows its programs run at once: a chunk of fewer gets padding rows. torch's CPU kernels for a
    batch of one sum in another order than for larger batches (``bmm`` with one output column, convolution
    gradients), so a vmapped chunk of one row would train its configuration differently, in the last bits,
    from the same row among others: two rows keep every chunk size, and a sweep of one configuration, bit
    for bit the same."""

    def __init__(self, job: Job):
        self.job = job
        compiled = self.compiles_program
        self.program: Program = program(job.spec, compiled, compiled and job.device.type == "cpu")

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
        """What this engine cannot run for ``job`` (empty: it can run it): :attr:`runs`, then :meth:`more_problems`."""
        return cls.runs.problems(job) + cls.more_problems(job)

    @classmethod
    def more_problems(cls, job: Job) -> list[str]:
        """An engine's own checks (its models, dtypes, devices), as sentences."""
        return []

    def compiling(self, run: Callable[[], Any]) -> Any:
        """``run()``, where a compiler's failure becomes :class:`EngineFailed` (handing over to :meth:`eager`).

        Running out of GPU memory propagates (the loop shrinks the chunks); an eager engine's errors too.
        """
        try:
            return run()
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as err:
            if not self.program.compiled:
                raise
            raise EngineFailed(
                f"torch.compile failed ({type(err).__name__}: {err}); running eagerly", self.eager()
            ) from err

    def eager(self) -> Engine:
        """The engine a compiler failure hands over to: this one, without compilation (the same state layout)."""
        return type(self)(replace(self.job, compile=False, cuda_graphs=False))

    def copied(self, state: ChunkState) -> dict[str, Tensor]:
        """The leaves of ``state`` a PBT copy takes (by path; views: writing a row writes the state).

        Raises:
            NotImplementedError: for an engine whose :attr:`runs` has ``copies=False``.
        """
        raise NotImplementedError(f"engine {self.name!r} does not copy rows")

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

    def train_metrics(self, params: dict[str, Tensor], hp: dict[str, Tensor]) -> Metrics:
        """Every configuration's metrics on its training data, dropout off (``(K,)`` tensors)."""
        job = self.job
        return self._metrics(params, hp, job.data, job.train_rows(hp), job.train_sizes(hp))

    def val_metrics(self, params: dict[str, Tensor], hp: dict[str, Tensor]) -> Metrics:
        """Every configuration's metrics on its validation data (``job.has_val`` must hold)."""
        rows = self.job.val_rows(hp)
        data = self.job.data if rows is not None else self.job.val
        if data is None:
            raise ValueError("regfn.sweep: no validation data to evaluate on")
        return self._metrics(params, hp, data, rows, self.job.val_sizes(hp))

    def _metrics(
        self, params: dict[str, Tensor], hp: dict[str, Tensor], data: Dataset, rows: Tensor | None,
        groups: SizeGroups | None,
    ) -> Metrics:  # fmt: skip
        """Metrics on ``data`` (``rows``: each configuration's own rows of it; ``groups``: their sizes)."""
        evaluate = self.program.eval_rows
        block = self.job.eval_block_rows
        if rows is None:
            return Metrics.of(self.program.eval(params, hp, data.x, data.y, block))
        if groups is None or len(groups) == 1:  # one size: every row's (padding columns cut off)
            own = rows if groups is None else rows[:, : groups[0][0]]
            return Metrics.of(evaluate(params, hp, data.x, data.y, own, block))

        def group(idx: Tensor, size: int) -> dict[str, Tensor]:
            return evaluate(_take(params, idx), _take(hp, idx), data.x, data.y, rows[idx, :size], block)

        return Metrics.of(by_size(group, rows.shape[0], groups, self.min_rows))

    def is_log_point(self, done: int) -> bool:
        """Whether the curves sample after epoch ``done``."""
        return done % self.job.log_every == 0 or done == self.job.epochs


def _take(tree: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    """The rows ``rows`` of every tensor of a flat dict."""
    return {name: value[rows] for name, value in tree.items()}
