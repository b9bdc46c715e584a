"""The sweep driver: configurations in, chunks to an engine, a results table out.

:func:`sweep` validates the configurations against the hyperparameter
registry (:mod:`regfn._hparams`), turns them into one ``(K,)`` tensor per
hyperparameter, cuts them into equal chunks (the last one padded) that fit in
memory, and hands each chunk to an engine (:mod:`regfn._sweep._engine`): the
vmap engine (:mod:`regfn._sweep._vmap`) or the Triton engine
(:mod:`regfn._sweep._triton`). Should a chunk run out of GPU memory with
automatic chunks, the chunk size is halved and the chunk rerun; should an
engine fail to warm up, the driver warns and runs the engine it names
instead. The driver evaluates every chunk the same way, whichever engine
trained it, and assembles the rows.

Examples:
    >>> import regfn
    >>> data = regfn.data.quadrants(regfn.random.key(0), 64)
    >>> model = regfn.nn.mlp((2, 8, 1), output="logits")
    >>> result = regfn.sweep(model, data, regfn.grid(l2=[0.0, 1e-2], seed=[0, 1]),
    ...                      epochs=5, compile=False, quiet=True)
    >>> len(result), result.rows[1]["l2"], result.rows[1]["seed"]
    (4, 0.0, 1)
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .._checks import check_int
from .._hparams import HPARAMS, OPTIMIZER_ARGS, user_hparams
from .._preflight import check_data, check_device, resolve_loss
from .._train import is_collapsed, majority_rate
from ..data import Dataset, Folds
from ..losses import Loss, takes_hp
from ..nn import Model
from ..nn._mlp import settings_of
from ..random import DEFAULT_IMPL
from ..random import key as make_key
from ..results import SweepResult
from ..search._schedules import schedule_to_dict
from . import _auto, _cv, _distributed
from ._checkpoint import Checkpoint, describe
from ._configs import Configs, count, hyper_tensors, layer_rates, live_penalties, normalize, shown_names
from ._engine import Engine, EngineFailed, Job, warn
from ._program import Spec, live_optimizer_args
from ._triton import TritonEngine
from ._vmap import VmapEngine

if TYPE_CHECKING:
    from ..search._schedules import Schedule

__all__ = ["ENGINES", "auto_chunk_size", "sweep"]

ENGINES: Mapping[str, type[Engine]] = {engine.name: engine for engine in (VmapEngine, TritonEngine)}
"""The engines a sweep can run, by name."""


# ----------------------------------------------------------------- memory


def _memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return int(min(_physical_memory() * 0.25, 4 * 2**30))


def auto_chunk_size(params: Mapping[str, Tensor], rows_per_step: int, n_features: int, device: torch.device) -> int:
    """How many configurations fit in memory at once (a conservative estimate).

    Per configuration it counts parameters, gradients and optimizer state
    (about 16 copies of the parameters) and activations of one step: about
    12 floats per row per unit, where the units are the input features plus
    the sizes of the 1-D parameters (the biases, i.e. the layer widths).
    """
    n_params = sum(p.numel() for p in params.values())
    width = n_features + sum(p.numel() for p in params.values() if p.ndim == 1)
    per_config = 4 * (16 * n_params + 12 * rows_per_step * width) + 4096
    return max(1, _memory_budget(device) // per_config)


# ----------------------------------------------------------------- the public entry point


def sweep(
    model: Model,
    data: Dataset,
    configs: Configs,
    *,
    val: Dataset | None = None,
    cv: int | Folds | None = None,
    loss: str | Loss | None = None,
    optimizer: str = "sgd",
    epochs: int = 100,
    batch_size: int | None = None,
    log_every: int | None = None,
    chunk_size: int | str | None = "auto",
    device: str | torch.device | None = None,
    compile: bool | str = "auto",
    cuda_graphs: bool = True,
    threads: int | str | None = "auto",
    engine: str = "vmap",
    quiet: bool = False,
    hparams: Mapping[str, Any] | None = None,
    schedule: Schedule | None = None,
    gather: str = "rank0",
    dist_timeout: float | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    key_impl: str = DEFAULT_IMPL,
) -> SweepResult | None:
    """Train every configuration in ``configs`` at once and tabulate the results.

    Args:
        model: ``Model(init, apply)``, e.g. ``regfn.nn.mlp((8, 6, 4, 1), output="logits")``.
        data: training data (:class:`~regfn.data.Dataset`).
        configs: a list of dicts, or a dict of value lists (a grid, see
            :func:`regfn.grid`). Keys: the optimizer's arguments (``lr``,
            ``momentum``, ``dampening``, ``weight_decay`` (coupled, torch's),
            ``beta1``, ``beta2``, ``eps``, ``alpha``, ``lr_decay``,
            ``initial_accumulator_value``: each optimizer takes torch.optim's
            own), ``l1``, ``l2`` (``l2/2 * sum w**2``), ``norm2`` (the
            tutorial's ``sum ||w||_2``), ``p`` (the rate of every dropout
            call), ``p1`` .. ``p8`` (per-call rates: when any configuration
            sets one, the model gets ``(p1, ..., pk)`` with ``k`` the highest
            index set, an unset one among them taking the configuration's
            ``p``, and must make exactly ``k`` dropout calls), ``label_smoothing``
            (``"cross_entropy"``), ``seed``, and the names declared in
            ``hparams``. Missing keys take their defaults, the optimizer's
            from its description (:func:`regfn.optim.optimizers`): SGD's lr
            0.1 and momentum 0.9, lr 0.01 for the others, every other
            argument torch.optim's (but AdamW's weight decay is 0); ranges are
            those of torch.optim and of the penalties.
        val: validation data, evaluated at every log point and at the end.
        cv: cross-validation instead of ``val``: ``k`` (the folds of
            ``regfn.data.kfold(regfn.random.key(0), data, k)``, stratified
            for classification) or a :func:`regfn.data.kfold` result. Every
            configuration trains once per fold, all folds in the same vmapped
            program (``K * k`` rows; a row reads its fold as ``hp["fold"]``),
            each on its fold's training rows and validated on its held-out
            rows; its keys are its own seed's, so each fold trains exactly as
            a one-configuration sweep on that fold's data. Each result row
            holds the mean over folds of every metric, and for each
            validation metric ``val_m`` also ``val_m_std`` (standard deviation
            over folds, ``correction=0``) and ``val_m_folds`` (the ``k``
            values); curves are means over folds; a configuration has
            diverged or collapsed when any fold has.
        loss: ``None`` (the default: the loss of the data's task,
            ``"bce_logits"`` for binary, ``"cross_entropy"`` for multiclass,
            ``"mse"`` for regression; ``result.settings["loss"]`` says which),
            ``"bce_logits"``, ``"bce"``, ``"mse"``, ``"cross_entropy"``
            (integer class labels) or a :class:`regfn.losses.Loss`, whose
            function may take ``(output, target, hp)`` to read the
            configuration's hyperparameters (a Loss without a task or
            threshold is multi-class for integer labels). Before training,
            the data is checked (no NaN or inf, targets that fit the loss,
            converted to the model's dtype with a warning) and the model run
            on two rows: it must run and give one output per target
            (``(n,)`` for one) or one logit per class.
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"adagrad"`` or a name registered with :func:`regfn.optim.register`.
        epochs: passes over the data.
        batch_size: ``None`` for full batch, else keyed mini-batches (last
            incomplete batch dropped), shuffled per configuration and epoch.
        log_every: sample the curves every this many epochs (default:
            ``max(1, epochs // 20)``).
        chunk_size: configurations per vmapped call: ``"auto"`` (from a
            memory estimate; should a chunk still run out of GPU memory, the
            chunk size is halved, with a warning, and that chunk rerun, which
            recompiles the step), an int, or ``None`` for all at once.
        device: where to train (default: the data's device).
        compile: compile the step with ``torch.compile`` (falls back to eager,
            with a warning, if compilation fails). ``"auto"`` (the default)
            decides from the workload alone, never from a timing or the
            machine's load (:mod:`regfn._sweep._auto`): always on CUDA; on
            CPU when the estimated eager run outlasts the compiled run plus a
            cold compile (counted as 120 s for an MLP, 300 s for other
            models; the costs were measured once, see BENCHMARKS.md): for
            the command's default MLP sweep from about 4,400 epochs on. Compiled and eager
            numbers agree to float tolerance, not bit for bit;
            ``result.settings["compile"]`` says what ran, and the same call
            makes the same choice on the same torch version and device type.
        cuda_graphs: on CUDA, replay captured blocks of epochs.
        threads: on CPU, the number of threads torch uses during the sweep
            (restored afterwards): an int, ``None`` (torch's setting), or
            ``"auto"`` (the default): one thread, whatever the machine (the
            thread count may change bits, so it is fixed, not measured; one thread is also the fastest for small
            models on a busy machine, BENCHMARKS.md).
            ``result.settings["threads"]`` says which.
        engine: ``"vmap"`` (any model, loss and optimizer: the step vmapped
            over configurations and compiled) or ``"triton"`` (CUDA only: one
            fused Triton kernel trains each configuration of the tutorial's
            kind of model, everything in registers, one launch per stretch of
            epochs between log points; needs ``pip install triton``). The
            Triton engine takes an MLP from :func:`regfn.nn.mlp` with ReLU
            hidden layers (any number), one logit output, the ``"bce_logits"`` or
            ``"mse"`` loss, any of the five optimizers with its arguments
            other than ``lr``, ``momentum`` and ``weight_decay`` at their
            defaults, and float32 (full batch or mini-batches);
            anything else raises a ValueError that says what. Its masks are
            the same bits and its numbers agree with ``"vmap"`` to float
            tolerance (sums run in another order). Should the kernel fail to
            compile, the sweep warns and runs ``"vmap"``.
        key_impl: the kind of each configuration's key,
            ``regfn.random.key(seed, impl=key_impl)``: ``"threefry2x32"`` (rows
            equal ``jax.random``'s draws) or ``"philox4x32"`` (cheaper masks;
            the Triton engine draws them with ``tl.philox``). A row equals
            :func:`regfn.train` with that key.
            ``result.settings["key_impl"]`` records it.
        quiet: no progress bar and no divergence or collapse warning.
        hparams: hyperparameters of your own, ``{name: (low, high)}`` or
            ``{name: (low, high, default)}`` (``None`` for an open end);
            each reaches your loss (``fn(output, target, hp)``) and your
            model (an ``apply`` with an ``hp`` keyword) as ``hp[name]``, a
            0-d tensor per configuration.
        schedule: ``None``, or a schedule from :mod:`regfn.search`
            (:func:`~regfn.search.successive_halving`,
            :func:`~regfn.search.hyperband`, :func:`~regfn.search.pbt`) that
            stops or copies configurations as they train; needs ``val`` or
            ``cv`` (see :mod:`regfn._sweep._schedule`). Under
            torch.distributed each rank trains its rows (row ``r`` on rank
            ``r % world_size``) and the ranks share their metrics at every
            decision; not with ``checkpoint`` there.
        gather: under torch.distributed (see below): ``"rank0"`` (the
            default) returns the result on rank 0 and ``None`` on the other
            ranks; ``"all"`` returns it on every rank.
        dist_timeout: under torch.distributed, when regfn initialises the
            process group: its timeout in seconds (default: the environment
            variable ``REGFN_DIST_TIMEOUT``, else 600), so a rank that dies
            or hangs stops the others within it.
        checkpoint: a directory to save the chunks in (safetensors files:
            parameters, optimizer state, keys, epoch counter and curves; a
            finished chunk's results), or ``None`` (no checkpoints). Calling
            the same sweep again with the same directory resumes it: finished
            chunks are not rerun, a running one continues from its last save,
            and the results are bit-identical to a run never interrupted. A
            resume whose configurations or settings differ is refused with
            the fields that differ; a damaged file is refused by name. With
            ``chunk_size="auto"`` or ``compile="auto"`` a resume takes the
            chunk size and compile setting the directory was written with.
            With a schedule, one file (``schedule.safetensors``) holds every
            chunk, the results so far and where the schedule stands (one
            process only: refused under torch.distributed).
        checkpoint_every: save a running chunk every this many epochs.

    Under ``torchrun`` or ``srun`` (an initialised process group, or
    ``RANK``, ``WORLD_SIZE`` > 1 and ``LOCAL_RANK`` in the environment: the
    group is then initialised here, NCCL on CUDA, gloo on CPU), every rank
    calls ``sweep`` with the same arguments; the configurations are shared
    out by chunk (chunk ``i`` of the global order on rank ``i % world_size``,
    one chunk size agreed by all ranks), each rank on its own device (a CUDA
    device without an index means ``cuda:LOCAL_RANK``), and the rows come
    back bit-identical to a one-process sweep on the same kind of device. A
    rank that raises makes every rank raise, naming it; a rank that dies
    makes the others raise within the timeout. Under torch.distributed the
    chunk size does not shrink on out-of-memory errors: the sweep fails
    (on every rank); pass a smaller ``chunk_size``. Automatic chunks
    (``"auto"``, ``None``) hold at most one rank's share of the
    configurations; an int ``chunk_size`` gives the same chunks on any
    number of ranks. With a ``schedule``, rows rather than chunks are shared
    out (row ``r`` of the configurations x folds on rank ``r % world_size``,
    for the whole schedule); the ranks exchange their rows' metric values at
    every rung or PBT exploit, so that every rank takes the same decisions,
    send a PBT copy its source's state when the source lives elsewhere, and
    gather their rows at the end: the result equals one process's (bit for
    bit eager). See the README's "Many devices: torch.distributed".

    Returns:
        A :class:`~regfn.results.SweepResult` with one row per configuration
        (``None`` on ranks other than 0 under torch.distributed with
        ``gather="rank0"``).

    Raises:
        ValueError, TypeError: for bad configurations or arguments; the
            message names the argument and the allowed range.
    """
    loss_given = loss is not None
    loss = resolve_loss(loss, data, "regfn.sweep")
    if optimizer not in OPTIMIZER_ARGS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_ARGS)}, got {optimizer!r}")
    check_int(epochs, "epochs", "regfn.sweep", low=1)
    takes_hp(model.apply)  # answered before any tracing (see regfn.losses.takes_hp)
    extra = user_hparams(hparams)
    folds = _cv.resolve(cv, data, val)
    n_folds = len(folds) if folds is not None else 1
    _check_size(count(configs) * n_folds, len(HPARAMS) + len(extra), epochs, log_every)
    rows, given = normalize(configs, optimizer, extra, None if takes_hp(loss.fn) else loss.hparams)
    # Before anything is built: the data, the loss and the model on two rows (regfn._preflight).
    data, val = check_data(model, loss, data, val, "regfn.sweep", _first_hp(rows, data))
    rates = layer_rates(given)
    settings = settings_of(model)
    if rates and settings is not None and rates != len(settings.sizes) - 2:
        raise ValueError(
            f"regfn.sweep: the configurations set per-layer rates up to p{rates}, but the MLP has "
            f"{len(settings.sizes) - 2} hidden layers: set p1 .. p{len(settings.sizes) - 2} (or only p)"
        )
    log_every = max(1, epochs // 20) if log_every is None else check_int(log_every, "log_every", "regfn.sweep", low=1)
    if gather not in ("rank0", "all"):
        raise ValueError(f"regfn.sweep: gather must be 'rank0' or 'all', got {gather!r}")
    chosen = device is not None
    device = torch.device(device) if device is not None else data.x.device
    check_device(device, "regfn.sweep")
    world = _distributed.setup(device, dist_timeout)
    device = _distributed.local_device(world, device, chosen)
    data = data.to(device)
    val = val.to(device) if val is not None else None
    n_train = len(data) if folds is None else folds.train.shape[1]
    if batch_size is not None:
        check_int(batch_size, "batch_size", "regfn.sweep", low=1, high=n_train)
    if threads is not None and threads != "auto":
        check_int(threads, "threads", "regfn.sweep", low=1)
    if compile not in (True, False, "auto"):
        raise ValueError(f"regfn.sweep: compile must be True, False or 'auto', got {compile!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    limit = _chunk_size(chunk_size, len(rows) * n_folds, model, batch_size or n_train, _features(data), device)
    if schedule is not None and checkpoint is not None and world.distributed:  # the ranks would need one file each
        raise ValueError(
            "regfn.sweep: checkpoint= with a schedule runs on one process only (a scheduled sweep keeps one file, "
            f"and this one runs on {world.size} ranks): drop checkpoint= to run the schedule under torch.distributed, "
            "or run it without torchrun to checkpoint it"
        )
    store = None
    if checkpoint is not None:
        check_int(checkpoint_every, "checkpoint_every", "regfn.sweep", low=1)
        store = Checkpoint(checkpoint, checkpoint_every)
    stored = store.stored() if store is not None else None

    optimizer_args = live_optimizer_args(rows, optimizer)
    if schedule is not None:  # checked before anything is built; runs below instead of the chunk loop
        from ._schedule import Runner, prepare

        validated = folds is not None or (val is not None and len(val) > 0)
        scheduled = prepare(schedule, rows, given, extra, loss, validated, optimizer, engine)
        optimizer_args = scheduled.optimizer_args(optimizer_args, optimizer)
    spec = Spec(model, loss, optimizer, optimizer_args, live_penalties(rows), batch_size is not None, rates, key_impl)
    on_device = folds.to(device) if folds is not None else None
    job = Job(spec, data, val, epochs, batch_size, log_every, compile is not False, cuda_graphs, on_device)
    problems = ENGINES[engine].problems(job)
    if problems:
        raise ValueError(f"engine={engine!r} is not available: " + "; ".join(problems) + "; use engine='vmap'")
    hp_all = hyper_tensors(rows, data.x.dtype, device)
    if folds is not None:
        hp_all = _cv.expand(hp_all, n_folds)
    k = len(rows) * n_folds
    with _distributed.guard(world):  # a rank's failure reaches the others (no-op on one process)
        # The automatic choices: a pure function of the workload (regfn._sweep._auto), never a timing.
        compiled, n_threads = _auto.decide(_auto.workload_of(job, k), compile, threads)
        limit, compiled = _distributed.agree(world, limit, compiled)  # every rank: one chunk size, one program
        job = replace(job, compile=compiled)
        # A compiled program serves one chunk size: chunks are padded to a few bucket sizes, so that
        # sweeps of other sizes reuse it (automatic chunks only; an explicit size is the caller's).
        # Under torch.distributed, automatic chunks are at most one rank's share, so that every rank works.
        bucketed = compiled and not isinstance(chunk_size, int)
        share = math.ceil(k / world.size) if not isinstance(chunk_size, int) else k
        chunk = _bucket(limit, share) if bucketed else min(limit, share)
        if stored is not None:  # a resume: "auto" takes what the checkpoint was written with
            chunk = stored.get("chunk_size", chunk) if chunk_size == "auto" else chunk
            compiled = stored.get("compile", compiled) if compile == "auto" else compiled
            job = replace(job, compile=compiled)
        ran: dict[str, Any] = {"optimizer": optimizer, "epochs": epochs, "batch_size": batch_size}
        ran.update({"log_every": log_every, "chunk_size": chunk, "compile": compiled, "engine": engine})
        ran["key_impl"] = key_impl
        ran["cv"] = _cv.fingerprint(folds)
        ran["schedule"] = scheduled.describe() if schedule is not None else None
        record = describe(rows, model, loss, data, val, **ran)
        if store is not None:
            store.bind(record)
        adaptive = chunk_size == "auto" and not world.distributed  # the ranks' chunks must keep one size
        quiet = quiet or world.rank != 0
        with _cpu_threads(n_threads if device.type == "cpu" else None), _room_to_recompile():
            engine_ = ENGINES[engine](job)
            if schedule is None:
                driver = _Driver(engine_, hp_all, chunk, adaptive=adaptive, quiet=quiet, world=world)
                result = driver.run(store)
            else:
                runner = Runner(
                    scheduled,
                    engine_,
                    hp_all,
                    limit,
                    bucketed=bucketed,
                    quiet=quiet,
                    folds=n_folds,
                    world=world,
                    everywhere=gather == "all",
                )
                runner.store = store
                result = runner.run()
    if schedule is None:
        gathered = _distributed.gather(world, result["outputs"], k, result["chunk"], everywhere=gather == "all")
        if gathered is None:
            return None
        result["outputs"] = gathered
    elif world.rank != 0 and gather != "all":  # the runner gathered the results on rank 0 only
        return None
    if folds is not None:
        result["outputs"] = [_cv.reduce(_joined(result["outputs"]), folds, data)]
    result["settings"] = {
        "compile": compiled,
        "threads": n_threads if device.type == "cpu" else None,
        "chunk_size": result.pop("chunk"),
        "padded": result.pop("padded"),
        **({"folds": n_folds} if folds is not None else {}),
        **result.pop("more", {}),
        "world_size": world.size,
        "loss": loss.name or "custom",
        "loss_from_task": not loss_given,
        "key_impl": key_impl,
    }
    judged = val if val is not None and len(val) else data
    table = _table(rows, shown_names(given, extra), result, quiet, majority_rate(judged), len(judged))
    given_rows = [{n: row[n] for n in given} for row in rows]
    table.provenance = _provenance(given_rows, record, result["settings"], device, log_every, cuda_graphs, folds)
    table.provenance["requested"] = {"compile": compile, "threads": threads, "chunk_size": chunk_size}
    table.provenance["arguments"]["schedule"] = schedule_to_dict(schedule) if schedule is not None else None
    return table if schedule is None else scheduled.annotate(table, result["record"])


def _first_hp(rows: list[dict[str, Any]], data: Dataset) -> dict[str, Tensor]:
    """The first configuration's hyperparameters as 0-d tensors: what the two-row check hands a model."""
    return {n: v[0] for n, v in hyper_tensors(rows[:1], data.x.dtype, data.x.device).items()}


def _provenance(
    rows: list[dict[str, Any]],
    record: dict[str, Any],
    settings: dict[str, Any],
    device: torch.device,
    log_every: int,
    cuda_graphs: bool,
    folds: Folds | None = None,
) -> dict[str, Any]:
    """What reruns the sweep: the configurations, the spec and data fingerprints, versions, where it ran.

    ``rows`` are the configurations as validated, with the names some
    configuration set (the others take their defaults again on a rerun).
    ``arguments`` holds every choice that can change a bit (compile,
    threads, chunk size, key implementation), with ``versions["torch"]`` and
    ``device_type``: the same choices on the same torch version and device
    type give the same bytes (regfn.verify reruns with them).
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    spec = {n: record[n] for n in ("model", "loss", "optimizer", "epochs", "batch_size", "log_every", "engine")}
    return {
        "format": record["format"],
        "configurations": rows,
        "configurations_sha256": record["configurations"],
        "spec": spec,
        "data_sha256": record["data"],
        "val_sha256": record["val"],
        "versions": {n: record[n] for n in ("regfn", "torch", "python")},
        "device": str(device),
        "device_type": device.type,
        "world_size": torch.distributed.get_world_size() if distributed else 1,
        "arguments": {
            "loss": record["loss"],
            "optimizer": record["optimizer"],
            "epochs": record["epochs"],
            "batch_size": record["batch_size"],
            "log_every": log_every,
            "chunk_size": settings["chunk_size"],
            "compile": settings["compile"],
            "threads": settings["threads"],
            "key_impl": settings["key_impl"],
            "cuda_graphs": cuda_graphs,
            "engine": record["engine"],
            "cv": _cv.record(folds) if folds is not None else None,
        },
    }


def compiled_graphs() -> int:
    """How many graphs dynamo has compiled in this process (``torch._dynamo``'s own counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


_told_nothing_compiled = False


def _warn_if_nothing_compiled() -> None:
    """Warn (once a process) when a compiled warm-up left dynamo with no compiled graph at all.

    Some torch versions cannot trace the vmapped step (torch 2.4's dynamo, for
    one, gives up on it) and run it eagerly without a word; the sweep then
    says so instead of reporting a compiled run.
    """
    global _told_nothing_compiled
    if compiled_graphs() == 0 and not _told_nothing_compiled:
        _told_nothing_compiled = True
        warn(
            f"regfn.sweep: torch.compile compiled no graph of the step on torch {torch.__version__} "
            "(dynamo could not trace it), so the sweep runs eagerly; pass compile=False to skip the attempt"
        )


def _bucket(limit: int, k: int) -> int:
    """The chunk size for ``k`` configurations under the memory limit ``limit``: a bucket size.

    Buckets are the powers of two and three times the powers of two (1, 2,
    3, 4, 6, 8, 12, 16, 24, ...), so padding wastes at most a third of a chunk.
    The smallest bucket that holds every configuration, if it fits the
    limit; else the largest bucket within the limit.
    """
    sizes = sorted({s for i in range(63) for s in (2**i, 3 * 2**i)})
    fits = [s for s in sizes if s <= max(limit, 1)]
    whole = next(s for s in sizes if s >= k)
    return whole if whole <= limit else fits[-1]


_BYTES_PER_CELL = 100  # a Python float in a dict: measured about 97 bytes per column of a row


def bytes_per_config(n_names: int, epochs: int, log_every: int | None) -> int:
    """Host memory one configuration's rows and results take: its validated row and its
    results row (about 100 bytes a cell) and its curves (4 bytes a point)."""
    points = epochs // (log_every or max(1, epochs // 20)) + 1
    return 2 * (n_names + 20) * _BYTES_PER_CELL + 8 * points * 4


def _check_size(k: int, n_names: int, epochs: int, log_every: int | None) -> None:
    """Refuse, before building anything, a sweep whose rows and results would not fit in memory."""
    per_config = bytes_per_config(n_names, epochs, log_every)
    need, total = k * per_config, _physical_memory()
    if need > total // 2:
        raise ValueError(
            f"regfn.sweep: {k:,} configurations need about {_size(need)} for their rows and results "
            f"({per_config:,} bytes each), more than half of this machine's memory ({_size(total)}); "
            f"sweep at most about {total // 2 // per_config:,} configurations per call (split the grid, or "
            "sample configurations with regfn.search.sample)"
        )


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def _features(data: Dataset) -> int:
    return math.prod(data.x.shape[1:])


def _chunk_size(
    chunk_size: int | str | None, k: int, model: Model, rows_per_step: int, n_features: int, device: torch.device
) -> int:
    """The most configurations one chunk may hold: the memory estimate, the caller's size, or all (``None``)."""
    if chunk_size == "auto":
        return auto_chunk_size(model.init(make_key(0)), rows_per_step, n_features, device)
    if chunk_size is None:
        return 2**62
    if isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1:
        return chunk_size
    raise ValueError(f"regfn.sweep: chunk_size must be 'auto', None or an int >= 1, got {chunk_size!r}")


@contextlib.contextmanager
def _room_to_recompile() -> Iterator[None]:
    """Lift dynamo's per-function recompile limit for the length of a sweep.

    Every program compiles the same functions (``step``, ``evaluate_config``,
    ...) for its spec and chunk size; past dynamo's default of 8 versions a
    process that runs many sweeps would silently fall back to eager code.
    """
    import torch._dynamo.config as dynamo_config

    names = [n for n in ("recompile_limit", "cache_size_limit") if hasattr(dynamo_config, n)]
    with dynamo_config.patch(dict.fromkeys(names, 1024)):
        yield


@contextlib.contextmanager
def _cpu_threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _progress(total: int, quiet: bool) -> Any:
    """A progress bar over configuration-epochs (tqdm's, with its rate and ETA), or none."""
    if quiet:
        return contextlib.nullcontext(None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return contextlib.nullcontext(None)
    return tqdm(total=total, unit="config-epoch", unit_scale=True, desc="sweep", leave=False)


class _ChunkBar:
    """The bar as an engine sees it: epochs of one chunk, counted as epochs x the chunk's real configurations."""

    def __init__(self, bar: Any, configs: int):
        self.bar, self.configs = bar, configs

    def update(self, epochs: int) -> None:
        if self.bar is not None:
            self.bar.update(epochs * self.configs)


def _pad(hp: dict[str, Tensor], size: int) -> dict[str, Tensor]:
    k = next(iter(hp.values())).shape[0]
    if k == size:
        return hp
    return {n: torch.cat([v, v[-1:].expand(size - k)]) for n, v in hp.items()}


def _sparsity(params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    weights = [p.flatten(1) for p in params.values() if p.ndim >= 3]  # (K, ...) weight matrices
    if not weights:
        weights = [p.flatten(1) for p in params.values()]
    w = torch.cat(weights, dim=1)
    return (w == 0).float().mean(1), (w.abs() < 1e-6).float().mean(1)


# ----------------------------------------------------------------- the chunk loop


class _Driver:
    """Runs every chunk of one sweep call through an engine; collects each chunk's outputs."""

    def __init__(
        self,
        engine: Engine,
        hp_all: dict[str, Tensor],
        chunk: int,
        *,
        adaptive: bool,
        quiet: bool,
        world: _distributed.World = _distributed.SINGLE,
    ):
        self.engine, self.hp_all, self.chunk = engine, hp_all, chunk
        self.adaptive, self.quiet, self.world = adaptive, quiet, world
        self.k = next(iter(hp_all.values())).shape[0]
        self.compile_s = 0.0
        self.checkpoint: Checkpoint | None = None

    @property
    def job(self) -> Job:
        return self.engine.job

    def _hp(self, start: int) -> dict[str, Tensor]:
        return _pad({n: v[start : start + self.chunk] for n, v in self.hp_all.items()}, self.chunk)

    def run(self, checkpoint: Checkpoint | None = None) -> dict[str, Any]:
        """Train every chunk (skipping those ``checkpoint`` holds finished); the outputs and timings."""
        self.checkpoint = checkpoint
        t0 = time.perf_counter()
        epochs = self.job.epochs
        outputs: list[dict[str, Any]] = []
        start, warm = 0, None
        padded = 0
        world = self.world
        # Chunk i (global order) runs on rank i % world.size; each round of world.size chunks ends in
        # a status point, where a rank's failure reaches the others (no-ops on one process).
        n_chunks = math.ceil(self.k / self.chunk)
        configs = sum(min(self.chunk, self.k - i * self.chunk) for i in _distributed.mine(world, n_chunks))
        with _progress(epochs * configs, self.quiet) as bar:
            while start < self.k:
                index = start // self.chunk
                if index % world.size != world.rank:
                    start += self.chunk
                    if (index + 1) % world.size == 0 or start >= self.k:
                        _distributed.check(world)
                    continue
                finished = checkpoint.finished(start, min(self.chunk, self.k - start)) if checkpoint else None
                if finished is not None:  # a resumed sweep: this chunk's rows are done
                    outputs.append(finished)
                    _ChunkBar(bar, min(self.chunk, self.k - start)).update(epochs)
                    start += self.chunk
                    padded += self.chunk
                    if world.distributed and ((index + 1) % world.size == 0 or start >= self.k):
                        _distributed.check(world)
                    continue
                try:
                    if self.engine.needs_warm_up and warm != self.chunk:  # warm up on a throwaway chunk
                        tc = time.perf_counter()
                        self._warm_up(self._hp(0))
                        self.compile_s += time.perf_counter() - tc
                        warm = self.chunk
                    kept = min(self.chunk, self.k - start)
                    outputs.append(self._finish_chunk(self._hp(start), _ChunkBar(bar, kept), kept, start))
                    start += self.chunk
                    padded += self.chunk
                    if world.distributed and ((index + 1) % world.size == 0 or start >= self.k):
                        _distributed.check(world)
                except torch.cuda.OutOfMemoryError:
                    if not self.adaptive or self.chunk == 1:
                        raise
                    self._after_out_of_memory(self.k - start, epochs * start, bar)
        if self.job.device.type == "cuda":
            torch.cuda.synchronize(self.job.device)
        total_s = time.perf_counter() - t0
        timings = {"compile_s": self.compile_s, "run_s": total_s - self.compile_s, "total_s": total_s}
        return {
            "outputs": outputs,
            "timings": timings,
            "engine": self.engine.name,
            "chunk": self.chunk,
            "padded": padded if not world.distributed else n_chunks * self.chunk,
        }

    def _warm_up(self, hp: dict[str, Tensor]) -> None:
        """Compile for this chunk size; on an engine's failure, warn and switch to the engine it names.

        Running out of memory is not a failure of the engine: it propagates,
        so that the caller can shrink the chunks.
        """
        while True:
            try:
                params = self.engine.warm_up(hp)
                self._warm_eval(params, hp)
                if self.engine.program.compiled:
                    _warn_if_nothing_compiled()
                return
            except EngineFailed as failed:
                warn(f"regfn.sweep: {failed.message}")
                self.engine = failed.fallback
                if not self.engine.needs_warm_up:
                    return

    def _warm_eval(self, params: dict[str, Tensor], hp: dict[str, Tensor]) -> None:
        job = self.job
        try:
            self.engine.train_metrics(params, hp)
            if job.has_val:
                self.engine.val_metrics(params, hp)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as err:
            if not self.engine.program.compiled:
                raise
            raise VmapEngine(job).eager_fallback(err) from err
        if job.device.type == "cuda":
            torch.cuda.synchronize(job.device)

    def _after_out_of_memory(self, left: int, done: int, bar: Any) -> None:
        """Halve the chunk size after an out-of-memory error, warn, and recount the progress bar.

        ``left`` configurations remain; the bar counts ``done`` configuration-epochs of finished chunks.
        """
        smaller = max(1, min(self.chunk, left) // 2)
        warn(
            f"regfn.sweep: out of GPU memory with chunks of {self.chunk} configurations; "
            f"retrying with {smaller} (a compiled step is recompiled for the new size)"
        )
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if bar is not None:  # the failed chunk's configuration-epochs are run again, in smaller chunks
            bar.n = done
            bar.refresh()
        self.chunk = smaller

    def _finish_chunk(self, hp: dict[str, Tensor], bar: Any, keep: int, start: int = 0) -> dict[str, Any]:
        """Train one chunk and reduce it to the rows it keeps (the padding is dropped).

        With a checkpoint, the chunk continues from its last save (state,
        curves, log epochs, validation flags), is saved every
        ``checkpoint.every`` epochs, and its outputs are saved when it ends.
        """
        job, engine = self.job, self.engine
        store = self.checkpoint
        curves: dict[str, list[Tensor]]
        logged: list[int]
        val_flags: dict[str, Tensor]
        state = self.engine.start(hp)
        saved = store.load_state(start, self.chunk, state) if store is not None else None
        if saved is not None:
            state, curves, logged, val_flags = saved
            bar.update(state.epoch)
        else:
            curves, logged, val_flags = {}, [], {}

        def log(done: int, value: Tensor, params: dict[str, Tensor]) -> None:
            logged.append(done)
            curves.setdefault("loss", []).append(value.detach().clone())
            if job.has_val:
                for name, v in engine.val_metrics(params, hp).items():
                    if name.startswith("_"):  # flags, not curves: the last one is kept
                        val_flags[f"val_{name}"] = v
                    else:
                        curves.setdefault(f"val_{name}", []).append(v)

        every = store.every if store is not None else job.epochs
        while state.epoch < job.epochs:  # without a checkpoint: one stretch, as Engine.run
            state = self.engine.advance(state, hp, min(job.epochs, (state.epoch // every + 1) * every), log, bar)
            if store is not None and state.epoch < job.epochs:
                store.save_state(start, self.chunk, state, curves, logged, val_flags)
        params = self.engine.params(state)
        final = dict(engine.train_metrics(params, hp))
        # The last curve point is logged after the last epoch: the final validation metrics.
        final.update({name: points[-1] for name, points in curves.items() if name.startswith("val_")})
        final.update(val_flags)
        zero, tiny = _sparsity(params)
        finite = torch.stack([torch.isfinite(p.flatten(1)).all(1) for p in params.values()]).all(0)
        stacked = {n: torch.stack(v, dim=1) for n, v in curves.items()}
        bad = ~torch.isfinite(stacked["loss"])  # (K, T)
        n = min(keep, hp["lr"].shape[0])
        outputs = {
            "final": {name: v[:n].cpu() for name, v in final.items()},
            "zero_frac": zero[:n].cpu(),
            "tiny_frac": tiny[:n].cpu(),
            "finite": finite[:n].cpu(),
            "bad": bad[:n].cpu(),
            "curves": {name: v[:n].cpu() for name, v in stacked.items()},
            "logged": logged,
        }
        if state.nonfinite is not None:  # issue 23 item 6: the epoch, not the next log point
            outputs["nonfinite_epoch"] = state.nonfinite[:n].cpu()
        if store is not None:
            store.save_done(start, self.chunk, n, outputs)
        return outputs


# ----------------------------------------------------------------- the results table


def _joined(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The chunks' output dicts as one: every tensor, and every dict of tensors, concatenated by rows in order."""
    first = outputs[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        if any(key not in o for o in outputs):  # e.g. "nonfinite_epoch" missing from an older checkpoint's chunk
            continue
        if isinstance(value, Tensor):
            out[key] = torch.cat([o[key] for o in outputs])
        elif isinstance(value, Mapping):
            out[key] = {name: torch.cat([o[key][name] for o in outputs]) for name in value}
        else:  # the log epochs: the same for every chunk
            out[key] = value
    return out


def _table(
    rows: list[dict[str, Any]],
    shown: tuple[str, ...],
    run: dict[str, Any],
    quiet: bool,
    majority: float | None,
    n_judged: int,
) -> SweepResult:
    """The rows: hyperparameters, final metrics, sparsity, ``diverged`` and ``collapsed``.

    ``collapsed`` is judged on the validation data when there is some (its
    majority-class rate ``majority`` and size ``n_judged``), else on the
    training data.
    """
    joined = _joined(run["outputs"])
    final, curves, logged = joined["final"], joined["curves"], joined["logged"]
    zero, tiny, finite, bad = (joined[n] for n in ("zero_frac", "tiny_frac", "finite", "bad"))
    table = []
    for i, row in enumerate(rows):
        out: dict[str, Any] = {name: row[name] for name in shown}
        out.update({name: float(v[i]) for name, v in final.items() if "_constant" not in name})
        out["zero_frac"], out["tiny_frac"] = float(zero[i]), float(tiny[i])
        diverged = bool(bad[i].any()) or not bool(finite[i]) or not math.isfinite(out["loss"])
        first = int(bad[i].nonzero()[0, 0]) if bool(bad[i].any()) else None
        out["diverged"] = diverged
        out["diverged_epoch"] = logged[first] if first is not None else (logged[-1] if diverged else None)
        if "nonfinite_epoch" in joined and int(joined["nonfinite_epoch"][i]) > 0:  # tracked every epoch
            seen = int(joined["nonfinite_epoch"][i])
            out["diverged_epoch"] = min(seen, out["diverged_epoch"] or seen)
        if "collapsed" in joined:  # judged already (cross-validation: per fold)
            out["collapsed"] = bool(joined["collapsed"][i])
        else:
            prefix = "val_" if "val__constant" in final else ""
            constant = bool(final[f"{prefix}_constant"][i])
            out["collapsed"] = not diverged and is_collapsed(constant, out.get(f"{prefix}acc"), majority, n_judged)
        for name, values in joined.get("folds", {}).items():
            out[f"{name}_folds"] = values[i].tolist()
        table.append(out)
    result = SweepResult(table, curves, logged, shown)
    result.timings = run["timings"]
    result.engine = run["engine"]
    result.settings = run["settings"]
    for flagged, what in ((result.diverged, "diverged (NaN/inf)"), (result.collapsed, "collapsed to a constant")):
        if flagged and not quiet:
            first = flagged[0]
            example = f", e.g. config {first}: { {n: rows[first][n] for n in shown} }" if len(rows) > 1 else ""
            warn(
                f"regfn.sweep: {len(flagged)} of {len(rows)} configuration{'s' if len(rows) != 1 else ''} {what}"
                f"{example}; they are flagged in the results"
            )
    return result
