"""Many training runs at once: ``torch.func.vmap`` over configurations.

:func:`sweep` trains K configurations of (learning rate, momentum, weight
decay, L1/L2/norm strength, dropout rate, seed) in one vmapped, compiled
program. Every hyperparameter is a tensor with one entry per configuration,
so new values never trigger a recompilation, and a configuration's row equals
:func:`regfn.train` run alone with that configuration.

How it stays fast:

* the per-configuration step (forward, dropout masks, penalties, gradient,
  optimizer update) is one vmapped function compiled by ``torch.compile``;
* on CUDA, blocks of epochs are captured once in a CUDA graph and replayed,
  so the epoch loop costs one launch per block instead of one per kernel;
* K larger than memory allows is cut into equal chunks (the last one padded)
  that reuse the same compiled program;
* ``engine="triton"`` replaces the vmapped step by one fused Triton kernel for
  the tutorial's kind of model (see :mod:`regfn._triton_mlp`): each program
  trains one configuration with its parameters in registers, one launch per
  stretch of epochs between log points.

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
import functools
import itertools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.func import vmap

from . import _triton_engine, optim
from .data import Dataset, batches
from .nn import Model
from .penalties import l1, l2, norm
from .random import fold_in
from .random import key as make_key
from .results import SweepResult
from .train import Loss, _check_positive_int, evaluate, get_loss, run_keys, step_key, train_step

__all__ = ["DEFAULTS", "OPTIMIZERS", "grid", "sweep"]

# Every hyperparameter a sweep can vary, with the value a config gets when it does not say.
DEFAULTS: dict[str, float | int] = {
    "lr": 0.01,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "l1": 0.0,
    "l2": 0.0,
    "norm2": 0.0,
    "p": 0.0,
    "seed": 0,
}
# The optimizers a sweep can use and the hyperparameters each one takes.
OPTIMIZERS: dict[str, tuple[Callable[..., optim.Transform], tuple[str, ...]]] = {
    "sgd": (optim.sgd, ("lr", "momentum", "weight_decay")),
    "adam": (optim.adam, ("lr", "weight_decay")),
    "adamw": (optim.adamw, ("lr", "weight_decay")),
    "rmsprop": (optim.rmsprop, ("lr", "momentum", "weight_decay")),
    "adagrad": (optim.adagrad, ("lr", "weight_decay")),
}
_PENALTIES: dict[str, Callable[[Tensor], Any]] = {
    "l1": l1,
    "l2": l2,
    "norm2": lambda s: norm(s, 2),  # the tutorial's strength * sum_p ||p||_2
}
_RANGES = {  # name -> (low, high, whether high is included)
    "lr": (0.0, math.inf, False),
    "momentum": (0.0, 1.0, False),
    "weight_decay": (0.0, math.inf, False),
    "l1": (0.0, math.inf, False),
    "l2": (0.0, math.inf, False),
    "norm2": (0.0, math.inf, False),
    "p": (0.0, 1.0, True),
}


# ----------------------------------------------------------------- configurations


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """All combinations of the given values (the last axis varies fastest).

    Examples:
        >>> grid(l2=[0.0, 1e-3], seed=[0, 1])
        [{'l2': 0.0, 'seed': 0}, {'l2': 0.0, 'seed': 1}, {'l2': 0.001, 'seed': 0}, {'l2': 0.001, 'seed': 1}]
    """
    names = list(axes)
    values = [list(v) for v in axes.values()]
    for name, vals in zip(names, values, strict=True):
        if not vals:
            raise ValueError(f"grid: the values for {name!r} are empty")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def _check_value(name: str, value: Any, row: int) -> float | int:
    where = f"config {row}: {name}"
    if name == "seed":
        if isinstance(value, bool) or (
            not isinstance(value, int) and not (isinstance(value, float) and value.is_integer())
        ):
            raise TypeError(f"{where} must be an int, got {value!r}")
        value = int(value)
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{where} must be in [-2**63, 2**63), got {value}")
        return value
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    lo, hi, closed = _RANGES[name]
    if not (lo <= value and (value <= hi if closed else value < hi)):
        raise ValueError(f"{where} must be in [{lo}, {hi}{']' if closed else ')'}, got {value}")
    return value


def _normalize(configs: Sequence[Mapping[str, Any]] | Mapping[str, Iterable[Any]]) -> list[dict[str, Any]]:
    if isinstance(configs, Mapping):
        configs = grid(**configs)
    rows = list(configs)
    if not rows:
        raise ValueError("configs is empty: give at least one configuration (e.g. regfn.grid(l2=[1e-3]))")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"config {i} must be a dict of hyperparameters, got {type(row).__name__}")
        unknown = set(row) - set(DEFAULTS)
        if unknown:
            raise ValueError(
                f"config {i}: unknown hyperparameters {sorted(unknown)}; a sweep can vary {sorted(DEFAULTS)}"
            )
        out.append({name: _check_value(name, row.get(name, DEFAULTS[name]), i) for name in DEFAULTS})
    return out


# ----------------------------------------------------------------- the per-configuration program


@dataclass(frozen=True)
class _Spec:
    """What stays fixed across configurations (the compiled program depends on it)."""

    model: Model
    loss: Loss
    optimizer: str
    penalties: tuple[str, ...]
    minibatch: bool


def _parts(spec: _Spec, hp: Mapping[str, Tensor]) -> tuple[optim.Transform, list[Any]]:
    factory, names = OPTIMIZERS[spec.optimizer]
    opt = factory(**{n: hp[n] for n in names})
    return opt, [_PENALTIES[n](hp[n]) for n in spec.penalties]


def _init(spec: _Spec, hp: Mapping[str, Tensor]) -> dict[str, Any]:
    init_key, dropout_key, shuffle_key = run_keys(make_key(hp["seed"]))
    params = spec.model.init(init_key)
    opt, _ = _parts(spec, hp)
    return {"params": params, "opt": opt.init(params), "dkey": dropout_key, "skey": shuffle_key}


def _step(spec, state, hp, x, y, epoch, batch):
    opt, pens = _parts(spec, hp)
    k = step_key(state["dkey"], epoch, batch)
    params, opt_state, value = train_step(
        spec.model, spec.loss, opt, pens, hp["p"], state["params"], state["opt"], x, y, k
    )
    return {**state, "params": params, "opt": opt_state}, value


def _step_batch(spec, state, hp, x, y, idx, epoch, batch):
    return _step(spec, state, hp, x[idx], y[idx], epoch, batch)


def _order(state, epoch, n, batch_size):
    return batches(fold_in(state["skey"], epoch), n, batch_size)


def _eval(spec, params, hp, x, y):
    _, pens = _parts(spec, hp)
    return evaluate(spec.model, spec.loss, pens, params, x, y)


class _Program:
    """The vmapped (and possibly compiled) functions of one spec."""

    def __init__(self, spec: _Spec, compiled: bool):
        self.compiled = compiled
        # dynamic=False: one static program per data shape (train and validation
        # evaluations differ in rows), instead of a slower symbolic recompilation.
        wrap = functools.partial(torch.compile, dynamic=False) if compiled else (lambda f: f)
        self.init = vmap(functools.partial(_init, spec))
        self.step = wrap(vmap(functools.partial(_step, spec), in_dims=(0, 0, None, None, None, None)))
        self.step_batch = wrap(vmap(functools.partial(_step_batch, spec), in_dims=(0, 0, None, None, 0, None, None)))
        self.order = wrap(vmap(_order, in_dims=(0, None, None, None)))
        self.eval = wrap(vmap(functools.partial(_eval, spec), in_dims=(0, 0, None, None)))


@functools.lru_cache(maxsize=16)
def _program(spec: _Spec, compiled: bool) -> _Program:
    # Cached so that chunks and repeated calls with new hyperparameter values
    # reuse one compiled program.
    return _Program(spec, compiled)


# ----------------------------------------------------------------- memory


def _memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 * 2**30
    return int(min(total * 0.25, 4 * 2**30))


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


# ----------------------------------------------------------------- the epoch loop


def _tree_clone(tree: Any) -> Any:
    return torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, Tensor) else t, tree)


def _tree_copy_(dst: Any, src: Any) -> None:
    for d, s in zip(torch.utils._pytree.tree_leaves(dst), torch.utils._pytree.tree_leaves(src), strict=True):
        d.copy_(s)


class _Loop:
    """Runs epochs of one chunk: plain calls, or replays of a captured CUDA graph."""

    def __init__(self, prog: _Program, hp, x, y, batch_size: int | None):
        self.prog, self.hp, self.x, self.y = prog, hp, x, y
        self.n = x.shape[0]
        self.batch_size = batch_size
        self.n_batches = 1 if batch_size is None else self.n // batch_size
        self.batch_ids = torch.arange(self.n_batches, device=x.device)

    def epoch(self, state, epoch_t: Tensor):
        """One epoch from ``state``; advances ``epoch_t`` in place; returns (state, last objective)."""
        if self.batch_size is None:
            state, value = self.prog.step(state, self.hp, self.x, self.y, epoch_t, self.batch_ids[0])
        else:
            order = self.prog.order(state, epoch_t, self.n, self.batch_size)
            for b in range(self.n_batches):
                state, value = self.prog.step_batch(
                    state, self.hp, self.x, self.y, order[:, b], epoch_t, self.batch_ids[b]
                )
        epoch_t.add_(1)
        return state, value

    def capture(self, state, epoch_t: Tensor, block: int):
        """Capture ``block`` epochs in a CUDA graph that updates ``state`` and ``epoch_t`` in place."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up on throwaway copies: compile, autotune, allocate
            warm_state, warm_epoch = _tree_clone(state), epoch_t.clone()
            for _ in range(2):
                warm_state, _ = self.epoch(warm_state, warm_epoch)
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
        value_out = torch.empty(self.hp["lr"].shape, device=epoch_t.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            s = state
            for _ in range(block):
                s, value = self.epoch(s, epoch_t)
            _tree_copy_(state, s)
            value_out.copy_(value)
        return graph, value_out


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


def _progress(total: int, quiet: bool):
    if quiet:
        return contextlib.nullcontext(None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return contextlib.nullcontext(None)
    return tqdm(total=total, unit="epoch", desc="sweep", leave=False)


@dataclass(frozen=True)
class _Run:
    """The settings of one sweep call that every chunk shares."""

    spec: _Spec
    data: Dataset
    val: Dataset | None
    epochs: int
    batch_size: int | None
    log_every: int
    use_graphs: bool
    engine: str


def _run_chunk(prog, run: _Run, hp, bar):
    """Train one chunk; returns (final params, curves dict of lists of (K,) tensors, epochs logged)."""
    curves: dict[str, list[Tensor]] = {}
    logged: list[int] = []

    def log(done: int, value: Tensor, params) -> None:
        logged.append(done)
        curves.setdefault("loss", []).append(value.detach().clone())
        if run.val is not None and len(run.val):
            for name, v in prog.eval(params, hp, run.val.x, run.val.y).items():
                curves.setdefault(f"val_{name}", []).append(v)

    if run.engine == "triton":
        params = _triton_engine.run_chunk(
            run.spec, prog, hp, run.data, run.epochs, run.batch_size, run.log_every, log, bar
        )
    else:
        params = _run_epochs(prog, run, hp, bar, log)
    return params, curves, logged


def _run_epochs(prog, run: _Run, hp, bar, log) -> dict[str, Tensor]:
    """The vmap engine's epoch loop: plain calls of the step, or replays of a captured CUDA graph."""
    data, epochs, log_every = run.data, run.epochs, run.log_every
    state = _tree_clone(prog.init(hp))  # clone: unbatched init outputs come back expanded
    epoch_t = torch.zeros((), dtype=torch.int64, device=data.x.device)
    loop = _Loop(prog, hp, data.x, data.y, run.batch_size)
    block = math.gcd(log_every, 100) if run.use_graphs else 1
    graph = None
    if run.use_graphs and epochs >= block:
        try:
            graph, value_out = loop.capture(state, epoch_t, block)
        except Exception as err:
            warnings.warn(f"regfn.sweep: CUDA graph capture failed ({err}); running without graphs", stacklevel=6)
            graph, block = None, 1
    done = 0
    while done < epochs:
        if graph is not None and epochs - done >= block:
            graph.replay()
            value, n = value_out, block
        else:
            state, value = loop.epoch(state, epoch_t)
            n = 1
        done += n
        if bar is not None:
            bar.update(n)
        if done % log_every == 0 or done == epochs:
            log(done, value, state["params"])
    return state["params"]


# ----------------------------------------------------------------- the public entry point


def sweep(
    model: Model,
    data: Dataset,
    configs: Sequence[Mapping[str, Any]] | Mapping[str, Iterable[Any]],
    *,
    val: Dataset | None = None,
    loss: str | Loss = "bce_logits",
    optimizer: str = "sgd",
    epochs: int = 100,
    batch_size: int | None = None,
    log_every: int | None = None,
    chunk_size: int | str | None = "auto",
    device: str | torch.device | None = None,
    compile: bool = True,
    cuda_graphs: bool = True,
    threads: int | None = None,
    engine: str = "vmap",
    quiet: bool = False,
) -> SweepResult:
    """Train every configuration in ``configs`` at once and tabulate the results.

    Args:
        model: ``Model(init, apply)``, e.g. ``regfn.nn.mlp((8, 6, 4, 1), output="logits")``.
        data: training data (:class:`~regfn.data.Dataset`).
        configs: a list of dicts, or a dict of value lists (a grid, see
            :func:`grid`). Keys: ``lr``, ``momentum``, ``weight_decay``
            (coupled, torch's), ``l1``, ``l2`` (``l2/2 * sum w**2``),
            ``norm2`` (the tutorial's ``sum ||w||_2``), ``p`` (dropout after
            each hidden layer), ``seed``; missing keys take :data:`DEFAULTS`.
        val: validation data, evaluated at every log point and at the end.
        loss: ``"bce_logits"``, ``"bce"``, ``"mse"`` or a :class:`~regfn.train.Loss`.
        optimizer: one of :data:`OPTIMIZERS` (``"sgd"``, ``"adam"``, ...).
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
            with a warning, if compilation fails).
        cuda_graphs: on CUDA, replay captured blocks of epochs.
        threads: on CPU, the number of threads torch uses during the sweep
            (restored afterwards); ``None`` keeps torch's setting. On an idle
            machine all cores help (the tutorial's sweep ran 1.9x faster on 2
            threads than on 1), but a compiled step of a small model is a few
            dozen tiny kernels, each ending in an OpenMP barrier, and when
            other processes hold the cores those barriers stall: pass
            ``threads=1`` on a busy machine (13x faster there, see BENCHMARKS.md).
        engine: ``"vmap"`` (any model, loss and optimizer: the step vmapped
            over configurations and compiled) or ``"triton"`` (CUDA only: one
            fused Triton kernel trains each configuration of the tutorial's
            kind of model, everything in registers, one launch per stretch of
            epochs between log points; needs ``pip install triton``). The
            Triton engine takes an MLP from :func:`regfn.nn.mlp` with ReLU
            hidden layers (any number), one logit output, the ``"bce_logits"`` or
            ``"mse"`` loss, any of :data:`OPTIMIZERS` and float32 (full
            batch or mini-batches);
            anything else raises a ValueError that says what. Its masks are
            the same bits and its numbers agree with ``"vmap"`` to float
            tolerance (sums run in another order). Should the kernel fail to
            compile, the sweep warns and runs ``"vmap"``.
        quiet: no progress bar and no divergence warning.

    Returns:
        A :class:`~regfn.results.SweepResult` with one row per configuration.

    Raises:
        ValueError, TypeError: for bad configurations or arguments; the
            message names the argument and the allowed range.
    """
    loss = get_loss(loss)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    _check_positive_int(epochs, "epochs")
    rows = _normalize(configs)
    takes = set(OPTIMIZERS[optimizer][1])
    for name in ("momentum",):
        if name not in takes and any(r[name] != DEFAULTS[name] for r in rows):
            raise ValueError(f"optimizer {optimizer!r} has no {name}; it takes {sorted(takes)}")
    log_every = max(1, epochs // 20) if log_every is None else log_every
    _check_positive_int(log_every, "log_every")
    device = torch.device(device) if device is not None else data.x.device
    data = data.to(device)
    val = val.to(device) if val is not None else None
    if batch_size is not None and not (isinstance(batch_size, int) and 1 <= batch_size <= len(data)):
        raise ValueError(f"batch_size must be an int in [1, {len(data)}] (the training rows), got {batch_size!r}")

    active = tuple(n for n in _PENALTIES if any(r[n] != 0 for r in rows))
    spec = _Spec(model, loss, optimizer, active, batch_size is not None)
    hp_all = {
        name: torch.tensor(
            [r[name] for r in rows], dtype=torch.int64 if name == "seed" else data.x.dtype, device=device
        )
        for name in DEFAULTS
    }
    k = len(rows)
    if chunk_size == "auto":
        probe = model.init(make_key(0))
        chunk = auto_chunk_size(probe, batch_size or len(data), data.x.shape[-1], device)
    elif chunk_size is None:
        chunk = k
    elif isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1:
        chunk = chunk_size
    else:
        raise ValueError(f"chunk_size must be 'auto', None or an int >= 1, got {chunk_size!r}")
    chunk = min(chunk, k)
    use_graphs = cuda_graphs and compile and device.type == "cuda"

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
    if engine not in _triton_engine.ENGINES:
        raise ValueError(f"engine must be one of {list(_triton_engine.ENGINES)}, got {engine!r}")
    if engine == "triton":
        _triton_engine.check(spec, data.x, device)
    run = _Run(spec, data, val, epochs, batch_size, log_every, use_graphs, engine)
    with _cpu_threads(threads if device.type == "cpu" else None):
        return _sweep(run, rows, hp_all, chunk, chunk_size == "auto", compile, quiet)


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _sweep(run: _Run, rows, hp_all, chunk, adaptive, compile, quiet):
    k, epochs = len(rows), run.epochs
    t0 = time.perf_counter()
    prog = _program(run.spec, compile)
    compile_s = 0.0
    tr = time.perf_counter()
    outputs, start, warm = [], 0, None
    with _progress(epochs * math.ceil(k / chunk), quiet) as bar:
        while start < k:
            try:
                if (prog.compiled or run.engine == "triton") and warm != chunk:  # warm up on a throwaway chunk
                    tc = time.perf_counter()
                    prog, run = _compile(prog, run, hp_all, chunk)
                    compile_s += time.perf_counter() - tc
                    warm = chunk
                hp = _pad({n: v[start : start + chunk] for n, v in hp_all.items()}, chunk)
                outputs.append(_finish_chunk(prog, run, hp, bar, k - start))
                start += chunk
            except torch.cuda.OutOfMemoryError:
                if not adaptive or chunk == 1:
                    raise
                chunk = _after_out_of_memory(chunk, k - start, epochs * len(outputs), epochs, bar)
    if run.data.x.device.type == "cuda":
        torch.cuda.synchronize(run.data.x.device)
    run_s = time.perf_counter() - tr - compile_s  # compilation is not run time
    result = _assemble(rows, outputs)
    result.timings = {"compile_s": compile_s, "run_s": run_s, "total_s": time.perf_counter() - t0}
    result.engine = run.engine
    if result.diverged and not quiet:
        warnings.warn(
            f"regfn.sweep: {len(result.diverged)} of {k} configurations diverged (NaN/inf), "
            f"e.g. config {result.diverged[0]}: {rows[result.diverged[0]]}; they are flagged in the results",
            stacklevel=3,  # _sweep, sweep, the caller
        )
    return result


def _compile(prog, run: _Run, hp_all, chunk):
    """Compile for chunks of ``chunk`` configs; on a compiler failure, warn and fall back.

    Returns ``(program, run)``: a failing ``torch.compile`` falls back to the
    eager program (without CUDA graphs), a failing Triton kernel to the vmap
    engine. Running out of memory is not a compiler failure: it propagates,
    so that the caller can shrink the chunks.
    """
    hp = _pad({n: v[:chunk] for n, v in hp_all.items()}, chunk)
    while True:  # at most twice: a failing Triton kernel is retried as the vmap engine
        try:
            _warm_up(prog, run, hp)
            return prog, run
        except torch.cuda.OutOfMemoryError:
            raise
        except _triton_engine.KernelError as err:  # stacklevel: _compile, _sweep, sweep, the caller
            warnings.warn(f"regfn.sweep: the Triton kernel failed ({err}); running engine='vmap'", stacklevel=4)
            run = replace(run, engine="vmap")
            if not prog.compiled:
                return prog, run
        except Exception as err:
            warnings.warn(
                f"regfn.sweep: torch.compile failed ({type(err).__name__}: {err}); running eagerly", stacklevel=4
            )
            return _program(run.spec, False), replace(run, use_graphs=False)


def _after_out_of_memory(chunk: int, left: int, done: int, epochs: int, bar) -> int:
    """Halve the chunk size after an out-of-memory error, warn, and recount the progress bar.

    ``left`` configurations remain; the bar has ``done`` epochs of finished chunks.
    """
    smaller = max(1, min(chunk, left) // 2)
    warnings.warn(
        f"regfn.sweep: out of GPU memory with chunks of {chunk} configurations; "
        f"retrying with {smaller} (a compiled step is recompiled for the new size)",
        stacklevel=4,
    )
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if bar is not None:  # the failed chunk's epochs are run again, in smaller chunks
        bar.total = done + epochs * math.ceil(left / smaller)
        bar.n = done
        bar.refresh()
    return smaller


def _warm_up(prog, run: _Run, hp) -> None:
    data, val = run.data, run.val
    if run.engine == "triton":
        params = _triton_engine.warm_up(run.spec, prog, hp, data, run.batch_size)
    else:
        state = _tree_clone(prog.init(hp))
        loop = _Loop(prog, hp, data.x, data.y, run.batch_size)
        epoch_t = torch.zeros((), dtype=torch.int64, device=data.x.device)
        for _ in range(2):
            state, _ = loop.epoch(state, epoch_t)
        params = state["params"]
    prog.eval(params, hp, data.x, data.y)
    if val is not None and len(val):
        prog.eval(params, hp, val.x, val.y)
    if data.x.device.type == "cuda":
        torch.cuda.synchronize(data.x.device)


def _finish_chunk(prog, run: _Run, hp, bar, keep):
    params, curves, logged = _run_chunk(prog, run, hp, bar)
    data = run.data
    final = dict(prog.eval(params, hp, data.x, data.y))
    # The last curve point is logged after the last epoch: the final validation metrics.
    final.update({name: points[-1] for name, points in curves.items() if name.startswith("val_")})
    zero, tiny = _sparsity(params)
    finite = torch.stack([torch.isfinite(p.flatten(1)).all(1) for p in params.values()]).all(0)
    stacked = {n: torch.stack(v, dim=1) for n, v in curves.items()}
    bad = ~torch.isfinite(stacked["loss"])  # (K, T)
    n = min(keep, hp["lr"].shape[0])
    return {
        "final": {name: v[:n].cpu() for name, v in final.items()},
        "zero_frac": zero[:n].cpu(),
        "tiny_frac": tiny[:n].cpu(),
        "finite": finite[:n].cpu(),
        "bad": bad[:n].cpu(),
        "curves": {name: v[:n].cpu() for name, v in stacked.items()},
        "logged": logged,
    }


def _assemble(rows: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> SweepResult:
    cat = lambda key: torch.cat([o[key] for o in outputs])
    final = {name: torch.cat([o["final"][name] for o in outputs]) for name in outputs[0]["final"]}
    curves = {name: torch.cat([o["curves"][name] for o in outputs]) for name in outputs[0]["curves"]}
    zero, tiny, finite, bad = cat("zero_frac"), cat("tiny_frac"), cat("finite"), cat("bad")
    logged = outputs[0]["logged"]
    table = []
    for i, row in enumerate(rows):
        out = dict(row)
        out.update({name: float(v[i]) for name, v in final.items()})
        out["zero_frac"], out["tiny_frac"] = float(zero[i]), float(tiny[i])
        diverged = bool(bad[i].any()) or not bool(finite[i]) or not math.isfinite(out["loss"])
        first = int(bad[i].nonzero()[0, 0]) if bool(bad[i].any()) else None
        out["diverged"] = diverged
        out["diverged_epoch"] = logged[first] if first is not None else (logged[-1] if diverged else None)
        table.append(out)
    return SweepResult(table, curves, logged, tuple(DEFAULTS))
