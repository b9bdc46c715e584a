"""What ``compile="auto"`` and ``threads="auto"`` choose: a pure function of the workload.

A sweep's bits depend on whether its step is compiled (compiled and eager
steps round differently in the last bits) and, for some models, on the CPU
thread count (parallel reductions split their sums by thread). So the
automatic choices are made from the workload alone, :class:`Workload`: the
device type, the parameter count, the rows per step and steps per epoch,
the configurations, the epochs, the model's kind and the torch version. They
never time anything, never read the machine's load, and never remember what
the process compiled before: the same command with the same seeds on the
same torch version and device type makes the same choices, and writes the
same bytes. ``result.settings`` and the provenance record what was chosen,
and :func:`regfn.verify` reruns with it.

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
  eager run is longer than the estimated compiled run plus a cold compile:
  ``epochs x steps x (eager - compiled seconds per step) > cold compile
  seconds``, with per-step seconds ``a + b x configs x rows per step x
  parameters`` for the model's kind. The constants were measured with
  ``benchmarks/auto_compile.py`` on one pinned core of a 2-core AMD EPYC,
  torch 2.13.0+cpu (docs/benchmarks/, "What compile='auto' decides from"):

  ====================  =========  ==============  ==========  ==============  ============
  model kind            eager a s  eager b s/unit  compiled a  compiled b      cold compile
  ====================  =========  ==============  ==========  ==============  ============
  ``regfn.mlp``         0.028      6.7e-9          0.0028      1.85e-9         120 s
  anything else (CNN)   0.05       8.3e-8          0.005       3.2e-8          300 s
  ====================  =========  ==============  ==========  ==============  ============

  The per-step costs come from eager and compiled epochs timed side by side
  (load 7-9 on the shared machine); the cold compiles from the same pinned
  core (the tutorial's MLP: 338 s under that load, 44-56 s idle; the digits
  CNN: 123.5 s idle), set between the two. For the command's default sweep
  (24 configurations of a 2-6-4-1 MLP on 320 rows) that compiles from about
  4,400 epochs on; for the tutorial's (64 configurations of 8-6-4-1 on 768
  rows) from about 2,600; for 65,536 of the tutorial's from 6 epochs.

Examples:
    >>> w = Workload("cpu", n_params=51, rows_per_step=320, steps_per_epoch=1, configs=24,
    ...              epochs=300, torch_version="2.13.0", model_kind="mlp")
    >>> decide(w, "auto", "auto")
    (False, 1)
    >>> decide(w._replace(epochs=5000), "auto", "auto")
    (True, 1)
    >>> decide(w._replace(device_type="cuda"), "auto", "auto")
    (True, None)
    >>> decide(w, True, 2)
    (True, 2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from ..nn._mlp import settings_of
from ..random import key as make_key

if TYPE_CHECKING:
    from ._engine import Job

__all__ = ["COSTS", "Costs", "Workload", "decide", "estimate", "workload_of"]


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
        model_kind: ``"mlp"`` (:func:`regfn.mlp`) or ``"module"`` (anything else, e.g. a
            :func:`regfn.from_module` CNN).
    """

    device_type: str
    n_params: int
    rows_per_step: int
    steps_per_epoch: int
    configs: int
    epochs: int
    torch_version: str
    model_kind: str


def workload_of(job: Job, configs: int) -> Workload:
    """The :class:`Workload` of a sweep's ``job`` over ``configs`` configurations (times the folds)."""
    params = job.spec.model.init(make_key(0))
    rows = job.batch_size or job.n_train
    return Workload(
        device_type=job.device.type,
        n_params=sum(int(p.numel()) for p in params.values()),
        rows_per_step=rows,
        steps_per_epoch=max(1, job.n_train // rows),
        configs=configs,
        epochs=job.epochs,
        torch_version=torch.__version__,
        model_kind="mlp" if settings_of(job.spec.model) is not None else "module",
    )


class Costs(NamedTuple):
    """Seconds per step ``a + b x configs x rows x parameters``, eager and compiled, and a cold compile's seconds."""

    eager_a: float
    eager_b: float
    compiled_a: float
    compiled_b: float
    cold_compile: float


COSTS = {
    "mlp": Costs(0.028, 6.7e-9, 0.0028, 1.85e-9, 120.0),
    "module": Costs(0.05, 8.3e-8, 0.005, 3.2e-8, 300.0),
}
"""The measured costs by model kind (one pinned core, torch 2.13.0+cpu; docs/benchmarks/)."""


def estimate(w: Workload) -> tuple[float, float]:
    """Estimated seconds of the whole CPU run ``(eager, compiled)``, the compiled one with a cold compile."""
    c = COSTS["mlp" if w.model_kind == "mlp" else "module"]
    unit = w.configs * w.rows_per_step * w.n_params
    steps = w.epochs * w.steps_per_epoch
    return steps * (c.eager_a + c.eager_b * unit), steps * (c.compiled_a + c.compiled_b * unit) + c.cold_compile


def decide(w: Workload, compile: bool | str, threads: int | str | None) -> tuple[bool, int | None]:
    """``(compile, threads)``: the caller's choices, or the rule's for ``"auto"`` (see the module's docstring).

    ``threads`` is ``None`` off the CPU (torch's setting is left alone there) or when the caller passed ``None``.
    """
    if w.device_type != "cpu":
        return (True if compile == "auto" else bool(compile)), None
    n_threads = 1 if threads == "auto" else threads if isinstance(threads, int) else None
    if compile == "auto":
        eager, compiled = estimate(w)
        compile = compiled < eager
    return bool(compile), n_threads
