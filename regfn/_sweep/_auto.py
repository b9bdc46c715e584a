"""What ``compile="auto"`` and ``threads="auto"`` choose: a pure function of the workload.

A sweep's bits depend on whether its step is compiled (compiled and eager
steps round differently in the last bits) and, for some models, on the CPU
thread count (parallel reductions split their sums by thread). So the
automatic choices are made from the workload alone, :class:`Workload`: the
device type, the parameter count and layer widths, the rows per step and
steps per epoch, the configurations, the epochs, the model's kind and the
torch version. They never time anything, never read the machine's load, and
never remember what the process compiled before: the same command with the
same seeds on the same torch version and device type makes the same choices,
and writes the same bytes. ``result.settings`` and the provenance record what
was chosen, and :func:`regfn.verify` reruns with it.

The rule (:func:`decide`):

* ``threads="auto"`` is one thread on CPU. The thread count may change bits
  (MKL and oneDNN choose kernels by thread count; torch's parallel reductions
  split large sums by thread). One thread and two gave the same bits on
  every workload benchmarked, but no test can show that for every model, so
  it is a fixed number, not a measured one; one thread is also the fastest
  setting for regfn's small models on a busy machine (docs/benchmarks/). Pass ``threads=N`` for
  more; it is recorded and reused by ``regfn.verify`` like every choice.
* ``compile="auto"`` is ``True`` off the CPU (CUDA: the compiled step with
  CUDA graphs is the fast path). On CPU it compiles when the estimated
  eager run is longer than the estimated compiled run plus a cold compile,
  with seconds per step ``a + rows x (b x parameters + c x width)``
  (``rows``: every configuration's rows of a step; ``width``: the model's
  1-D parameter sizes added up, an MLP's activations, and dropout masks,
  per row). The constants of each model kind (:data:`COSTS`) were fitted
  (``benchmarks/auto_compile.py --fit``) to eager and compiled epochs of seven
  workloads timed side by side with ``benchmarks/auto_compile.py`` on one
  pinned core of an idle 2-core Intel Xeon (AVX-512), torch 2.13.0+cpu, with
  CPU draws, key folds and eager Adam's moments in regfn's C kernel, and to
  cold compiles (empty inductor cache; the steps compiled through inductor's
  C++ wrapper, :mod:`regfn._inductor`) on the same core
  (docs/benchmarks/sweep.md, "What the automatic choices decide from"):

  ===========  ===========================  ==========================  ============
  model kind   eager (a, b, c)              compiled (a, b, c)          cold compile
  ===========  ===========================  ==========================  ============
  ``mlp``      3.32e-3, 1.47e-10, 1.17e-8   6.9e-4, 9.0e-11, 2.7e-9     8.7 s
  ``conv``     3.32e-3, 7.18e-9, 0          4.6e-4, 7.21e-9, 0          15.2 s
  ``module``   3.32e-3, 3.3e-10, 0          4.6e-4, 2.0e-10, 0          8.7 s
  ===========  ===========================  ==========================  ============

  (``conv``: a model with a parameter of 3 or more dimensions; ``module``:
  any other model not made by :func:`regfn.mlp`; the cold compiles are
  session 14's, once inductor's small instruction probes were answered
  without a compiler run (:mod:`regfn._inductor`): the digits MLP 8.6-8.8 s,
  the tutorial's 7.4 s, the wide cancer MLP 9.4 s, the ``nn.Module`` MLP
  8.1 s, the digits CNN 10.4-10.7 s, about 2 s under session 12's; the ``mlp``
  row's compiled constants were refitted in session 13, once a compiled
  narrow MLP computed features first; the ``conv`` row was refitted in
  session 19 on a 2-core AMD EPYC (AVX2), the Intel Xeon being gone, to the
  digits CNN's eager and compiled epochs in the chunks a sweep cuts (8
  eager, 2 compiled: 1.68 and 1.62 s for 16 configurations) and its cold
  compile there, once eager max pooling and blocked evaluations had made an
  eager epoch cost what a compiled one does.) What it decides: the command's
  default sweep (24 configurations of a 2-6-4-1 MLP on 320 rows) compiles
  from about 2,550 epochs on, the tutorial's (64 configurations of 8-6-4-1
  on 768 rows) from about 1,130, 65,536 of the tutorial's from 2, issue
  #22's digits MLP (32 configurations of 64-256-128-10, 11 steps an epoch)
  from 28, the wide cancer MLP of benchmarks/sweep_mlp.py from 31, 64
  configurations of the digits CNN of benchmarks/sweep_cnn.py (22 steps an
  epoch) from about 420 (5 before the refit).

Examples:
    >>> w = Workload("cpu", n_params=51, rows_per_step=320, steps_per_epoch=1, configs=24,
    ...              epochs=300, torch_version="2.13.0", model_kind="mlp", width=11)
    >>> decide(w, "auto", "auto")
    Choice(compile=False, threads=1)
    >>> decide(w._replace(epochs=10_000), "auto", "auto").compile
    True
    >>> decide(w._replace(device_type="cuda"), "auto", "auto")
    Choice(compile=True, threads=None)
    >>> decide(w, True, 2)
    Choice(compile=True, threads=2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from ..nn._mlp import settings_of

if TYPE_CHECKING:
    from ._engine import Job

__all__ = [
    "COSTS",
    "Choice",
    "Costs",
    "Estimate",
    "Rate",
    "Workload",
    "decide",
    "estimate",
    "model_kind",
    "step_seconds",
    "workload_of",
]


class Workload(NamedTuple):
    """What the automatic choices are made from (and nothing else).

    Attributes:
        device_type: ``"cpu"``, ``"cuda"``, ...
        n_params: parameters of one configuration's model.
        rows_per_step: the batch size, or the training rows (full batch).
        steps_per_epoch: optimizer steps per epoch.
        configs: configurations trained (times the folds, under cross-validation).
        epochs: passes over the data.
        torch_version: ``torch.__version__`` (the costs were measured on one; recorded with the choice).
        model_kind: ``"mlp"`` (:func:`regfn.mlp`), ``"conv"`` (a model with a parameter of 3 or more
            dimensions, a convolution's weight) or ``"module"`` (anything else); see :func:`model_kind`.
        width: the sizes of the model's 1-D parameters added up (an MLP's layer widths: the
            activations, and dropout masks, per row).
    """

    device_type: str
    n_params: int
    rows_per_step: int
    steps_per_epoch: int
    configs: int
    epochs: int
    torch_version: str
    model_kind: str
    width: int


def model_kind(model: Any, params: Mapping[str, Tensor]) -> str:
    """``"mlp"`` (:func:`regfn.mlp`), ``"conv"`` (a parameter of 3 or more dimensions: a convolution's
    weight) or ``"module"`` (anything else): which row of :data:`COSTS` a model's steps cost."""
    if settings_of(model) is not None:
        return "mlp"
    return "conv" if any(p.ndim >= 3 for p in params.values()) else "module"


def workload_of(job: Job, configs: int, params: Mapping[str, Tensor]) -> Workload:
    """The :class:`Workload` of a sweep's ``job`` over ``configs`` configurations (times the folds);
    ``params``: one configuration's parameters."""
    rows = job.batch_size or job.n_train
    return Workload(
        device_type=job.device.type,
        n_params=sum(int(p.numel()) for p in params.values()),
        rows_per_step=rows,
        steps_per_epoch=max(1, job.n_train // rows),
        configs=configs,
        epochs=job.epochs,
        torch_version=torch.__version__,
        model_kind=model_kind(job.spec.model, params),
        width=sum(int(p.numel()) for p in params.values() if p.ndim == 1),
    )


class Rate(NamedTuple):
    """Seconds per step: ``a + rows x (b x parameters + c x width)``, ``rows`` every configuration's rows of a step."""

    a: float
    b: float
    c: float

    def seconds(self, rows: int, w: Workload) -> float:
        return self.a + rows * (self.b * w.n_params + self.c * w.width)


class Costs(NamedTuple):
    """A model kind's costs on one CPU core: the vmapped step, eager and compiled, and a cold compile."""

    eager: Rate
    compiled: Rate
    cold_compile: float


COSTS = {
    "mlp": Costs(Rate(3.32e-3, 1.47e-10, 1.17e-8), Rate(6.9e-4, 9.0e-11, 2.7e-9), 8.7),
    "conv": Costs(Rate(3.32e-3, 7.18e-9, 0.0), Rate(4.6e-4, 7.21e-9, 0.0), 15.2),
    "module": Costs(Rate(3.32e-3, 3.3e-10, 0.0), Rate(4.6e-4, 2.0e-10, 0.0), 8.7),
}
"""The measured costs by model kind (one pinned core, torch 2.13.0+cpu; docs/benchmarks/)."""


class Estimate(NamedTuple):
    """Estimated seconds of a whole CPU run, eager and compiled (a cold compile included)."""

    eager: float
    compiled: float


def estimate(w: Workload) -> Estimate:
    """The :class:`Estimate` of ``w`` from :data:`COSTS`."""
    c = COSTS[w.model_kind]
    steps = w.epochs * w.steps_per_epoch
    rows = w.configs * w.rows_per_step
    return Estimate(steps * c.eager.seconds(rows, w), steps * c.compiled.seconds(rows, w) + c.cold_compile)


def step_seconds(w: Workload, compiled: bool) -> tuple[float, float]:
    """A CPU step's estimated seconds from :data:`COSTS`: its fixed part, and one configuration's share.

    Examples:
        >>> w = Workload("cpu", 51, 320, 1, 24, 300, "2.13.0", "mlp", 11)
        >>> [f"{s:.2e}" for s in step_seconds(w, compiled=False)]
        ['3.32e-03', '4.36e-05']
    """
    rate = COSTS[w.model_kind].compiled if compiled else COSTS[w.model_kind].eager
    return rate.a, rate.seconds(w.rows_per_step, w) - rate.a


class Choice(NamedTuple):
    """What a sweep runs with: whether it compiles, and its CPU threads (``None``: torch's)."""

    compile: bool
    threads: int | None


def decide(w: Workload, compile: bool | str, threads: int | str | None) -> Choice:
    """The caller's choices, or the rule's for ``"auto"`` (see the module's docstring).

    ``threads`` is ``None`` off the CPU (torch's setting is left alone there) or when the caller passed ``None``.
    """
    if w.device_type != "cpu":
        return Choice(True if compile == "auto" else bool(compile), None)
    n_threads = 1 if threads == "auto" else threads if isinstance(threads, int) else None
    if compile == "auto":
        guess = estimate(w)
        compile = guess.compiled < guess.eager
    return Choice(bool(compile), n_threads)
