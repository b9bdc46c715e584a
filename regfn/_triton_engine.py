"""``regfn.sweep(engine="triton")``: checks, and the epoch loop around the fused kernel.

The kernel itself lives in :mod:`regfn._triton_mlp`, imported only here and
only when the engine runs, so that regfn works without Triton.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .random import _wrap32
from .train import LOSSES

ENGINES = ("vmap", "triton")


class KernelError(RuntimeError):
    """The Triton kernel failed to compile or run (the sweep then falls back to the vmap engine)."""
_LOSSES = {"bce_logits": False, "mse": True}  # supported loss name -> whether it is MSE


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def check(spec: Any, batch_size: int | None, x: Tensor, device: torch.device) -> None:
    """Raise a ValueError naming what ``engine="triton"`` does not support for inputs ``x`` here."""
    settings = getattr(spec.model.apply, "mlp_settings", None)
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
    if not any(spec.loss is LOSSES[name] for name in _LOSSES):
        problems.append(f"the loss must be one of {sorted(_LOSSES)}")
    if spec.optimizer != "sgd":
        problems.append(f"the optimizer must be 'sgd', got {spec.optimizer!r}")
    if batch_size is not None:
        problems.append("training must be full batch (batch_size=None)")
    if dtype != torch.float32:
        problems.append(f"the data must be float32, got {dtype}")
    if device.type != "cuda" and not _interpreting():
        problems.append(
            f"it runs on CUDA, got device {device} (with TRITON_INTERPRET=1 in the environment before "
            "triton is imported, Triton's interpreter runs it on CPU, slowly: for tests)"
        )
    if importlib.util.find_spec("triton") is None:
        problems.append("it needs the triton package (pip install triton)")
    if problems:
        raise ValueError("engine='triton' is not available: " + "; ".join(problems) + "; use engine='vmap'")


def _kernels():
    return importlib.import_module("regfn._triton_mlp")


class Packed:
    """One chunk's parameters, momentum buffers and hyperparameters, laid out for the kernel."""

    def __init__(self, spec: Any, state: dict[str, Any], hp: dict[str, Tensor], x: Tensor, y: Tensor):
        kernels = _kernels()
        params = state["params"]
        self.names = list(params)
        self.shapes = [tuple(p.shape[1:]) for p in params.values()]
        self.theta = torch.cat([p.reshape(p.shape[0], -1) for p in params.values()], 1).contiguous()
        self.buf = torch.zeros_like(self.theta)
        self.hp = torch.stack([hp[name].to(torch.float32) for name in kernels.HP_COLUMNS], 1).contiguous()
        self.keys = _wrap32(state["dkey"]).contiguous()
        self.x, self.y = x.contiguous(), y.reshape(-1).contiguous()
        self.sizes = spec.model.apply.mlp_settings.sizes
        self.mse = spec.loss is LOSSES["mse"]
        self.penalties = spec.penalties

    def train(self, epoch0: int, epochs: int) -> Tensor:
        """Train ``epochs`` epochs from ``epoch0`` in one launch; the last epoch's objectives."""
        return _kernels().train_epochs(
            self.theta, self.buf, self.hp, self.keys, self.x, self.y, epoch0, epochs, self.sizes,
            mse=self.mse, penalties=self.penalties,
        )  # fmt: skip

    def params(self) -> dict[str, Tensor]:
        """The current parameters as a dict of (K, ...) tensors (copies)."""
        out, start = {}, 0
        k = self.theta.shape[0]
        for name, shape in zip(self.names, self.shapes):
            n = 1
            for d in shape:
                n *= d
            out[name] = self.theta[:, start : start + n].reshape(k, *shape).clone()
            start += n
        return out


def run_chunk(
    spec: Any, prog: Any, hp: dict[str, Tensor], data: Any, epochs: int, log_every: int,
    log: Callable[[int, Tensor, dict[str, Tensor]], None], bar: Any,
) -> dict[str, Tensor]:  # fmt: skip
    """Train one chunk, one launch per stretch of epochs between log points; returns the final params.

    ``log(done, objective, params)`` is called at every log point.
    """
    state = prog.init(hp)
    packed = Packed(spec, state, hp, data.x, data.y)
    done = 0
    while done < epochs:
        n = min(log_every - done % log_every, epochs - done)
        value = packed.train(done, n)
        done += n
        if bar is not None:
            bar.update(n)
        if done % log_every == 0 or done == epochs:
            log(done, value, packed.params())
    return packed.params()


def warm_up(spec: Any, prog: Any, hp: dict[str, Tensor], data: Any) -> None:
    """Compile the kernel for this workload: one epoch on a throwaway chunk.

    The epoch counters are not specialised on, so one compiled kernel serves
    every stretch of epochs.
    """
    try:
        Packed(spec, prog.init(hp), hp, data.x, data.y).train(0, 1)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever Triton raises, the caller falls back
        raise KernelError(f"{type(err).__name__}: {err}") from err
