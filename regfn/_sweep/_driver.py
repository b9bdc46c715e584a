"""The sweep driver: configurations in, the loop run, a results table out.

:func:`sweep` validates the configurations against the hyperparameter
registry (:mod:`regfn._hparams`), turns them into one ``(K,)`` tensor per
hyperparameter, asks the engine (:data:`regfn._sweep._engines.ENGINES`)
whether it runs the job, decides whether to compile and how many threads to
use, plans the chunk sizes (:mod:`regfn._sweep._plan`), and runs the loop
(:mod:`regfn._sweep._loop`) under the schedule's strategy
(:mod:`regfn._sweep._strategies`; a plain sweep is the strategy that never
decides). It then folds cross-validation's rows back into configurations
and writes the typed rows as the results table (:mod:`regfn._sweep._table`).

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

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .._checks import check_int
from .._hparams import HPARAMS, OPTIMIZER_ARGS, user_hparams
from .._preflight import check_data, check_device, resolve_loss
from .._row_blocks import block_rows
from .._train import majority_rate
from .._trained import best_configs, check_keep, kept_of
from ..data import Dataset, Folds
from ..losses import Loss, takes_hp
from ..nn import Model
from ..nn._mlp import settings_of
from ..random import DEFAULT_IMPL
from ..random import key as make_key
from ..results import SweepResult
from . import _auto, _cv, _distributed, _table
from ._checkpoint import Checkpoint, describe
from ._configs import Configs, count, hyper_tensors, layer_rates, live_penalties, normalize, shown_names
from ._engine import Job
from ._engines import ENGINES
from ._footprint import cache_limit
from ._loop import Loop
from ._outputs import Outputs, Results
from ._plan import Plan, auto_chunk_size, kept_configs, limit_of, physical_memory, prune_at
from ._program import Spec, live_optimizer_args
from ._runtime import cpu_threads, room_to_recompile
from ._strategies import Context, context_registry, strategy_of

if TYPE_CHECKING:
    from ..search._schedules import Schedule
    from ._strategies import Strategy

__all__ = ["ENGINES", "auto_chunk_size", "bytes_per_config", "sweep"]


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
    schedule: Schedule | Strategy | None = None,
    gather: str = "rank0",
    dist_timeout: float | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    key_impl: str = DEFAULT_IMPL,
    keep: str | int = "auto",
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
        val: validation data, evaluated at every log point and at the end. On a CPU the
            evaluations run the model in blocks of rows that stay in cache, for a
            model whose rows are independent (:func:`regfn._row_blocks.block_rows`).
        cv: cross-validation instead of ``val``: ``k`` (the folds of
            ``regfn.data.kfold(regfn.random.key(0), data, k)``, stratified
            for classification), Folds (:func:`regfn.data.kfold`, any splits'
            :meth:`~regfn.data.Folds.from_splits`) or a scikit-learn splitter,
            e.g. ``StratifiedKFold(5)`` (uneven folds: mini-batches, as many in each). Every
            configuration trains once per fold, all folds in one vmapped program
            (``K * k`` rows; a row reads its fold as ``hp["fold"]``), each on its
            fold's training rows, validated on its held-out rows, with its own
            seed's keys: as a one-configuration sweep on that fold's data. A
            result row holds the mean over folds of every metric, and for each
            validation metric ``val_m`` also ``val_m_std`` (over folds,
            ``correction=0``) and ``val_m_folds`` (the ``k`` values); curves are
            means over folds; a configuration diverged or collapsed when any fold did.
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
            memory estimate; on a CPU, also few enough that a step's
            activations stay in cache, while enough to amortize its fixed
            cost: :func:`regfn._sweep._plan.cpu_chunk_limit`; should a chunk
            still run out of GPU memory, the chunk size is halved, with a
            warning, and that chunk rerun, which recompiles the step), an int,
            or ``None`` for all at once. Chunks never change a result.
        device: where to train (default: the data's device).
        compile: compile the step with ``torch.compile`` (falls back to eager,
            with a warning, if compilation fails). ``"auto"`` (the default)
            decides from the workload alone, never from a timing or the
            machine's load (:mod:`regfn._sweep._auto`): always on CUDA; on
            CPU when the estimated eager run outlasts the compiled run plus a
            cold compile (costs measured once per model kind, listed with
            what they decide in :mod:`regfn._sweep._auto`). Compiled and eager
            numbers agree to float tolerance, not bit for bit;
            ``result.settings["compile"]`` says what ran, and the same call
            makes the same choice on the same torch version and device type.
        cuda_graphs: on CUDA, replay captured blocks of epochs.
        threads: on CPU, the number of threads torch uses during the sweep
            (restored afterwards): an int, ``None`` (torch's setting), or
            ``"auto"`` (the default): one thread, whatever the machine (the
            thread count may change bits, so it is fixed, not measured; one thread is also the fastest for small
            models on a busy machine, docs/benchmarks/).
            ``result.settings["threads"]`` says which.
        engine: ``"vmap"`` (the default; any model, loss and optimizer: the
            step vmapped over configurations and compiled), ``"sequential"``
            (any model, loss and optimizer: the same step, one configuration
            after another, unbatched: for a model with operations ``vmap``
            cannot batch, or to hold one configuration's activations at a
            time; rows equal ``"vmap"``'s to float tolerance and never depend
            on the chunk) or ``"triton"`` (CUDA only: one
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
            the Triton engine draws them with ``tl.philox``). A row is
            :func:`regfn.train` with that key (to float tolerance).
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
            ``cv``. A :class:`regfn._sweep._strategies.Strategy` of your own
            runs too (see CONTRIBUTING.md). Under torch.distributed the ranks
            share their metrics at every decision (with ``checkpoint`` too).
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
            With a schedule, each rank keeps one file (``schedule.safetensors``
            on one process, ``schedule-rank<r>-of-<n>.safetensors`` on ``n``
            ranks; the directory shared by the ranks) with its chunks, its
            rows' results so far and where the schedule stands, saved at the
            start of every stretch between decisions and every
            ``checkpoint_every`` epochs, and the file of its previous
            stretch beside it (``.previous``) until the sweep ends. A resume
            goes on from the latest stretch every rank saved, on the same or
            another number of ranks, and gives the same results, bit for bit.
        checkpoint_every: save a running chunk every this many epochs.
        keep: whose final parameters the result keeps (``result.params(i)``,
            ``model``, ``predict``, ``save``): ``"all"``, ``"best"`` (the best
            configuration's), an int ``n`` (the best ``n``, ranked by
            ``result.best()``; pruned as rows end, so that at most ``2n``
            configurations', or 64 MiB of, parameters are held), or
            ``"auto"`` (the default): all when every
            row's parameters fit in 1 GiB, else as many of the best as fit
            (the same choice on any machine). Each row's parameters are copied
            to the CPU once, when it ends; under cross-validation a kept
            configuration keeps every fold's. ``result.settings["keep"]`` says
            what was kept (``"all"`` or the number of configurations).

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
    number of ranks. With a ``schedule``, each stage's chunks are shared out
    the same way and a rank's rows stay on it (its survivors regroup among
    themselves); the ranks exchange their rows' metric values at
    every rung or PBT exploit, so that every rank takes the same decisions,
    send a PBT copy its source's state when the source lives elsewhere, and
    gather their rows at the end: the result equals one process's (bit for
    bit eager), checkpointed and resumed or not (see ``checkpoint``). See
    the guide "Distributed sweeps" (docs/guides/distributed.md).

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
    keep = check_keep(keep)
    folds = _cv.resolve(cv, data, val)
    n_folds = len(folds) if folds is not None else 1
    _check_size(count(configs) * n_folds, len(HPARAMS) + len(extra), epochs, log_every)
    rows, given = normalize(configs, optimizer, extra, None if takes_hp(loss.fn) else loss.hparams)
    # Before anything is built: the data, the loss and the model on two rows (regfn._preflight).
    one_row = model.init(make_key(0))  # one row's parameters: the checks, memory estimates and keep= read them
    data, val = check_data(model, loss, data, val, "regfn.sweep", _first_hp(rows, data), one_row)
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
    n_train = len(data) if folds is None else min(folds.train_size(i) for i in range(n_folds))
    if batch_size is not None:
        check_int(batch_size, "batch_size", "regfn.sweep", low=1, high=n_train)
    _cv.check_uneven(folds, batch_size)
    if threads is not None and threads != "auto":
        check_int(threads, "threads", "regfn.sweep", low=1)
    if compile not in (True, False, "auto"):
        raise ValueError(f"regfn.sweep: compile must be True, False or 'auto', got {compile!r}")
    if engine not in ENGINES:
        raise ValueError(f"regfn.sweep: engine must be one of {list(ENGINES)}, got {engine!r}")
    limit = limit_of(chunk_size, one_row, batch_size or n_train, data, device)
    kept = kept_configs(keep, one_row, len(rows), n_folds)
    pruned_at = prune_at(kept, one_row, n_folds) if kept is not None else 0
    strategy = strategy_of(schedule)
    store = None
    if checkpoint is not None:
        check_int(checkpoint_every, "checkpoint_every", "regfn.sweep", low=1)
        store = Checkpoint(checkpoint, checkpoint_every)
    stored = store.stored() if store is not None else None

    task_metric = "val_mse" if loss.resolved_task == "regression" else "val_acc"
    validated = folds is not None or (val is not None and len(val) > 0)
    context = Context(rows, given, context_registry(extra), optimizer, task_metric, validated, epochs)
    strategy.check(context)  # before anything is built
    live = live_optimizer_args(rows, optimizer)
    moved = [n for n in strategy.names if n in OPTIMIZER_ARGS[optimizer]]  # tensors: their new values reach the step
    optimizer_args = tuple(n for n in OPTIMIZER_ARGS[optimizer] if n in live or n in moved)
    spec = Spec(model, loss, optimizer, optimizer_args, live_penalties(rows), batch_size is not None, rates, key_impl)
    on_device = folds.to(device) if folds is not None else None
    job = Job(spec, data, val, epochs, batch_size, log_every, compile is not False, cuda_graphs, on_device)
    blocks = block_rows(model, one_row, data.x, _first_hp(rows, data))  # CPU evaluations in blocks of rows
    job = replace(job, stops=strategy.stops, copies=strategy.copies, eval_block_rows=blocks)
    problems = ENGINES[engine].problems(job)
    if problems:
        raise ValueError(f"engine={engine!r} is not available: " + "; ".join(problems) + "; use engine='vmap'")
    hp_all = hyper_tensors(rows, data.x.dtype, device)
    strategy.bind(replace(context, hp=hp_all))
    if folds is not None:
        hp_all = _cv.expand(hp_all, n_folds)
    k = len(rows) * n_folds
    with _distributed.guard(world):  # a rank's failure reaches the others (no-op on one process)
        # The automatic choices: a pure function of the workload (regfn._sweep._auto), never a timing.
        workload = _auto.workload_of(job, k, one_row)
        choice = _auto.decide(workload, compile, threads)
        n_threads = choice.threads
        if chunk_size == "auto" and device.type == "cpu" and ENGINES[engine].batched:
            cut = cache_limit(model, one_row, data.x, _first_hp(rows, data), workload, choice.compile)
            limit = min(limit, cut or limit)
        limit, compiled = _distributed.agree(world, limit, choice.compile)  # every rank: one chunk size, one program
        job = replace(job, compile=compiled)
        # A compiled program serves one chunk size: chunks are padded to a few bucket sizes, so that
        # sweeps of other sizes reuse it (automatic chunks only; an explicit size is the caller's).
        fixed = isinstance(chunk_size, int)
        if stored is not None:  # a resume: "auto" takes what the checkpoint was written with
            compiled = stored.get("compile", compiled) if compile == "auto" else compiled
            job = replace(job, compile=compiled)
        pads = compiled and ENGINES[engine].batched and not fixed
        plan = Plan(limit, pads, fixed, chunk_size == "auto" and not world.distributed, world.size)
        if stored is not None:
            plan.limit = stored.get("chunk_size", plan.size(k)) if chunk_size == "auto" else plan.limit
        ran: dict[str, Any] = {"optimizer": optimizer, "epochs": epochs, "batch_size": batch_size}
        ran.update({"log_every": log_every, "chunk_size": plan.size(k), "compile": compiled, "engine": engine})
        ran["key_impl"] = key_impl
        ran["cv"] = _cv.fingerprint(folds)
        ran["schedule"] = strategy.describe()
        record = describe(rows, model, loss, data, val, params=one_row, **ran)
        if store is not None:
            store.bind(record)
        quiet = quiet or world.rank != 0
        judged, shown = val if val is not None and len(val) else data, shown_names(given, extra)

        def tabulate(outputs: Outputs, schedule: dict[str, Any] | None, quiet: bool) -> SweepResult:
            """The results table of the rows' ``outputs`` (and a schedule's record, with its columns)."""
            outputs = outputs if folds is None else _cv.reduce(outputs, folds, data)
            columns = schedule.pop("columns") if schedule is not None else None
            rows_out = _table.rows_of(rows, shown, outputs, majority_rate(judged), len(judged), columns)
            made = _table.table(rows_out, rows, shown, outputs, quiet)
            made.schedule = schedule or {}
            return made

        def prune(results: Results) -> None:
            """Keep the parameters of the best ``kept`` so far (and of configurations still training), once the
            rows held reach ``pruned_at``: provisional ranks only fall as rows end, so the best stay."""
            if kept is not None and len(results.params) >= pruned_at:
                ended = results.arrays["ended"][::n_folds].tolist()
                so_far = tabulate(results.outputs(), strategy.record(ended), True)
                results.prune(best_configs(so_far, kept), n_folds)

        with cpu_threads(n_threads if device.type == "cpu" else None), room_to_recompile(compiled):
            loop = Loop(
                ENGINES[engine](job),
                hp_all,
                plan,
                strategy,
                folds=n_folds,
                quiet=quiet,
                store=store,
                world=world,
                everywhere=gather == "all",
                prune=prune,
            )
            result = loop.run()
    if result.outputs is None:  # gather="rank0" on another rank
        return None
    run_settings = {
        "compile": compiled,
        "threads": n_threads if device.type == "cpu" else None,
        "chunk_size": result.settings.pop("chunk_size"),
        "padded": result.settings.pop("padded"),
        **({"folds": n_folds} if folds is not None else {}),
        **result.settings,
        "world_size": world.size,
        "loss": loss.name or "custom",
        "loss_from_task": not loss_given,
        "key_impl": key_impl,
        "engine": result.engine,
        "keep": "all" if kept is None else kept,
    }
    table = tabulate(result.outputs, result.record, quiet)
    table.timings, table.engine, table.settings = result.timings, result.engine, run_settings
    given_rows = [{n: row[n] for n in given} for row in rows]
    table.provenance = _table.provenance(given_rows, record, run_settings, device, log_every, cuda_graphs, folds)
    table.provenance["requested"] = {"compile": compile, "threads": threads, "chunk_size": chunk_size}
    table.provenance["arguments"]["schedule"] = strategy.settings()
    table.trained = kept_of(table, model, result.outputs.params, hp_all, n_folds, kept)
    return table


def _first_hp(rows: list[dict[str, Any]], data: Dataset) -> dict[str, Tensor]:
    """The first configuration's hyperparameters as 0-d tensors: what the two-row check hands a model."""
    return {n: v[0] for n, v in hyper_tensors(rows[:1], data.x.dtype, data.x.device).items()}


_BYTES_PER_CELL = 100  # a Python float in a dict: measured about 97 bytes per column of a row


def bytes_per_config(n_names: int, epochs: int, log_every: int | None) -> int:
    """Host memory one configuration's rows and results take: its validated row and its
    results row (about 100 bytes a cell) and its curves (4 bytes a point)."""
    points = epochs // (log_every or max(1, epochs // 20)) + 1
    return 2 * (n_names + 20) * _BYTES_PER_CELL + 8 * points * 4


def _check_size(k: int, n_names: int, epochs: int, log_every: int | None) -> None:
    """Refuse, before building anything, a sweep whose rows and results would not fit in memory."""
    per_config = bytes_per_config(n_names, epochs, log_every)
    need, total = k * per_config, physical_memory()
    if need > total // 2:
        raise ValueError(
            f"regfn.sweep: {k:,} configurations need about {_size(need)} for their rows and results "
            f"({per_config:,} bytes each), more than half of this machine's memory ({_size(total)}); "
            f"sweep at most about {total // 2 // per_config:,} configurations per call (split the grid, or "
            "sample configurations with regfn.search.sample)"
        )


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
