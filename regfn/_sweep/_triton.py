"""The Triton engine: one fused kernel trains each configuration of the tutorial's kind of sweep.

One program per configuration holds its parameters in registers for a
stretch of epochs (forward, threefry2x32 or philox4x32 dropout masks, loss, backward, penalties
and the optimizer step), one launch per stretch between log points. This
module holds the engine (what it takes, the epoch loop around the kernel);
the kernel itself lives in :mod:`regfn._sweep._triton_mlp`, imported only when
the engine runs, so that regfn works without Triton.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
from typing import Any

import torch
from torch import Tensor

from ..nn._mlp import settings_of
from ..optim import optimizers
from ..random import _wrap32
from ._engine import ChunkState, Engine, EngineFailed, Job, LogFn, Runs
from ._program import Program, Spec
from ._vmap import VmapEngine

__all__ = ["TritonEngine"]

_LOSSES = ("bce_logits", "mse")  # by Loss.name
PENALTIES = ("l1", "l2", "norm2")  # the penalties the kernel applies (USE_L1, USE_L2, USE_NORM in _triton_mlp)
_OPTIMIZERS = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 2, "adagrad": 1}  # optimizer -> state slots per parameter
# The hyperparameters the kernel reads per configuration, in the order it loads them
# (hp + 0 .. hp + 6 in _triton_mlp); every other optimizer argument must keep its
# default, which the kernel has built in.
HP_COLUMNS = ("lr", "momentum", "weight_decay", "l1", "l2", "norm2", "p")
_ORDER_LIMIT = 2**26  # mini-batch orders (int32 indices) handed to one launch, at most: 256 MiB


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _problems(spec: Spec, x: Tensor, device: torch.device) -> list[str]:
    """What ``engine="triton"`` cannot run for this spec and data (beyond :attr:`TritonEngine.runs`), as sentences."""
    settings = settings_of(spec.model)
    dtype = x.dtype
    problems = []
    if settings is None:
        problems.append("the model must come from regfn.mlp (its apply carries mlp_settings)")
    else:
        if len(settings.sizes) < 3:
            problems.append(f"the MLP needs a hidden layer, got sizes {settings.sizes}")
        elif settings.sizes[-1] != 1:
            problems.append(f"the MLP must have one output, got sizes {settings.sizes}")
        if settings.activation != "relu":
            problems.append(f"the activation must be 'relu', got {settings.activation!r}")
        if settings.output not in ("logits", "identity"):
            problems.append(f"the output must be 'logits' (or 'identity'), got {settings.output!r}")
        if settings.dtype != torch.float32:
            problems.append(f"the MLP's dtype must be float32, got {settings.dtype}")
        widest = max(settings.sizes[1:-1], default=0)
        if x.shape[0] * widest >= 2**31:  # dropout counters are 32-bit in the kernel
            problems.append(f"rows x widest hidden layer must be below 2**31, got {x.shape[0]} x {widest}")
    fixed = [n for n in spec.optimizer_args if n not in HP_COLUMNS]
    if fixed and spec.optimizer in _OPTIMIZERS:
        own = optimizers()[spec.optimizer].factory_defaults()
        problems.append(
            f"it sweeps only {', '.join(HP_COLUMNS)} and the seed; "
            f"{', '.join(fixed)} must keep the default ({', '.join(f'{n}={own[n]:g}' for n in fixed)})"
        )
    if spec.layer_rates:
        problems.append(f"it takes one dropout rate p for every layer, got per-layer rates p1 .. p{spec.layer_rates}")
    if dtype != torch.float32:
        problems.append(f"the data must be float32, got {dtype}")
    if x.ndim != 2:
        problems.append(f"the data must be a table (n, d), got x of shape {tuple(x.shape)}")
    if device.type != "cuda" and not _interpreting():
        problems.append(
            f"it runs on CUDA, got device {device} (with TRITON_INTERPRET=1 in the environment before "
            "triton is imported, Triton's interpreter runs it on CPU, slowly: for tests)"
        )
    if importlib.util.find_spec("triton") is None:
        problems.append("it needs the triton package (pip install triton)")
    return problems


def _kernels() -> Any:
    return importlib.import_module("regfn._sweep._triton_mlp")


def _initial_tree(spec: Spec, prog: Program, hp: dict[str, Tensor]) -> dict[str, Any]:
    """A chunk's starting state in the kernel's layout: flat parameters, optimizer slots, dropout keys.

    ``init`` is the shared program's initial state, kept whole: its shuffle
    keys draw the mini-batch orders, and the compiled order program sees the
    vmap engine's structure.
    """
    _kernels()  # imports triton: a missing or broken Triton fails here, inside warm_up
    init = prog.init(hp)
    params = init["params"]
    theta = torch.cat([p.reshape(p.shape[0], -1) for p in params.values()], 1).contiguous()
    slots = _OPTIMIZERS[spec.optimizer]  # zeros, as regfn.optim starts every slot
    shape = theta.shape if slots == 1 else (theta.shape[0], slots, theta.shape[1])
    buf = torch.zeros(shape, dtype=theta.dtype, device=theta.device)
    return {"theta": theta, "buf": buf, "keys": _wrap32(init["dkey"]).contiguous(), "init": init}


def _unpack(tree: dict[str, Any]) -> dict[str, Tensor]:
    """The parameters of a state in the kernel's layout, as a dict of (K, ...) tensors (copies)."""
    theta, out, start = tree["theta"], {}, 0
    for name, like in tree["init"]["params"].items():
        n = math.prod(like.shape[1:])
        out[name] = theta[:, start : start + n].reshape(like.shape).clone()
        start += n
    return out


class Packed:
    """One chunk's state (see :func:`_initial_tree`), hyperparameters and data, laid out for the kernel."""

    def __init__(
        self, spec: Spec, prog: Program, tree: dict[str, Any], hp: dict[str, Tensor], x: Tensor, y: Tensor,
        batch_size: int | None,
    ):  # fmt: skip
        self.state = tree["init"]
        self.theta, self.buf, self.keys = tree["theta"], tree["buf"], tree["keys"]
        self.optimizer = spec.optimizer
        self.hp = torch.stack([hp[name].to(torch.float32) for name in HP_COLUMNS], 1).contiguous()
        self.x, self.y = x.contiguous(), y.reshape(-1).contiguous()
        settings = settings_of(spec.model)
        if settings is None:  # _problems refuses such a model before any chunk is packed
            raise ValueError("the Triton engine needs a model from regfn.mlp")
        self.sizes = settings.sizes
        self.mse = spec.loss.name == "mse"
        self.penalties = spec.penalties
        self.prog, self.batch_size = prog, batch_size

    def train(self, epoch0: int, epochs: int) -> Tensor:
        """Train ``epochs`` epochs from ``epoch0``; the objectives of the last step.

        Full batch: one launch. Mini-batches: the epochs' keyed orders (as the
        vmap engine draws them), then one launch per stretch of epochs whose
        orders fit in :data:`_ORDER_LIMIT` indices.
        """
        kernels = _kernels()
        run = functools.partial(
            kernels.train_epochs, self.theta, self.buf, self.hp, self.keys, self.x, self.y,
            sizes=self.sizes, mse=self.mse, penalties=self.penalties, optimizer=self.optimizer,
        )  # fmt: skip
        if self.batch_size is None:
            return run(epoch0=epoch0, n_epochs=epochs)
        n, k = self.x.shape[0], self.theta.shape[0]
        stretch = max(1, _ORDER_LIMIT // (k * n))
        for start in range(epoch0, epoch0 + epochs, stretch):
            count = min(stretch, epoch0 + epochs - start)
            order = torch.stack([self._order(e) for e in range(start, start + count)], dim=1)
            value = run(epoch0=start, n_epochs=count, order=order.to(torch.int32).contiguous())
        return value

    def _order(self, epoch: int) -> Tensor:
        epoch_t = torch.tensor(epoch, dtype=torch.int64, device=self.x.device)
        return self.prog.order(self.state, epoch_t, self.x.shape[0], self.batch_size)

    def params(self) -> dict[str, Tensor]:
        """The current parameters as a dict of (K, ...) tensors (copies)."""
        return _unpack({"theta": self.theta, "init": self.state})


class TritonEngine(Engine):
    """The tutorial's kind of sweep in one fused Triton kernel (CUDA; Triton's interpreter for tests)."""

    name = "triton"
    runs = Runs(
        losses=_LOSSES,
        penalties=PENALTIES,
        optimizers=tuple(_OPTIMIZERS),
        folds=False,
        notes={"folds": "cross-validation (cv=) trains each fold's own rows, which the kernel does not gather"},
    )

    @property
    def needs_warm_up(self) -> bool:
        return True  # the kernel compiles per chunk size, whatever job.compile says

    @classmethod
    def more_problems(cls, job: Job) -> list[str]:
        return _problems(job.spec, job.data.x, job.device)

    def _packed(self, tree: dict[str, Any], hp: dict[str, Tensor]) -> Packed:
        job = self.job
        return Packed(job.spec, self.program, tree, hp, job.data.x, job.data.y, job.batch_size)

    def warm_up(self, hp: dict[str, Tensor]) -> dict[str, Tensor]:
        """Compile the kernel for this workload: one epoch on a throwaway chunk; returns its parameters.

        The epoch counters are not specialised on, so one compiled kernel
        serves every stretch of epochs. Whatever Triton raises hands the
        sweep over to the vmap engine.
        """
        try:
            packed = self._packed(self.start(hp).tree, hp)
            packed.train(0, 1)
            return packed.params()
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as err:
            message = f"the Triton kernel failed ({type(err).__name__}: {err}); running engine='vmap'"
            raise EngineFailed(message, VmapEngine(self.job)) from err  # the fallback: any job the kernel takes

    def start(self, hp: dict[str, Tensor]) -> ChunkState:
        return ChunkState(_initial_tree(self.job.spec, self.program, hp), 0)

    def params(self, state: ChunkState) -> dict[str, Tensor]:
        return _unpack(state.tree)

    def advance(self, state: ChunkState, hp: dict[str, Tensor], until: int, log: LogFn, bar: Any) -> ChunkState:
        """One launch per stretch of epochs between log points (the kernel updates the state in place)."""
        log_every = self.job.log_every
        packed = self._packed(state.tree, hp)
        done = state.epoch
        while done < until:
            n = min(log_every - done % log_every, until - done)
            value = packed.train(done, n)
            done += n
            bar.update(n)
            if self.is_log_point(done):
                log(done, value, packed.params())
        return ChunkState(state.tree, done)
