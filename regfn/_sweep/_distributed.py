"""Sweeps across processes: torch.distributed at the edges of the driver.

Under ``torchrun`` or ``srun`` (an initialised process group, or ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in the environment), :func:`regfn.sweep`
runs one process per device. Every rank builds the same configurations and
agrees on one chunk size; chunk ``i`` (global configuration order, the last
one padded as on one device) runs on rank ``i % world_size``; the outputs come
back with :func:`share` (JSON and safetensors, never pickled objects). A
configuration's numbers depend on its own hyperparameters and seed only, so
every row is the same bits whatever the number of processes.

Failures: every collective is preceded by a *status point*, an ``all_gather``
of a fixed ``(1 + 512,)`` ``uint8`` tensor (a failure flag and the first 512
bytes of ``"ExceptionType: message"``). A rank whose work raises reports it at
its next status point; every other rank then raises a :class:`RankFailed`
naming that rank and its reason, and the failing rank re-raises its own
exception. A rank that dies (killed, out of host memory) makes the others'
collectives fail or time out (the process group's timeout): they raise a
:class:`RankLost` naming the ranks that did not reach the status point.

A sweep with a schedule (successive halving, Hyperband, PBT) owns rows
rather than chunks (row ``r`` on rank ``r % world_size``) and meets the
other ranks at every decision: :func:`share` all-gathers each rank's
metric values, the state of the rows a PBT exploit copies, and at the end
its rows' results. What travels is JSON (ids, values) and safetensors bytes
(tensors) in a ``uint8`` tensor, never pickle.

Without a process group (and ``WORLD_SIZE`` unset or 1) everything here is a
no-op and the sweep runs in this process, as it always has.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = [
    "SINGLE",
    "RankFailed",
    "RankLost",
    "World",
    "agree",
    "check",
    "guard",
    "is_lead",
    "local_device",
    "setup",
    "share",
]

DEFAULT_TIMEOUT_S = 600.0
"""The process group's timeout when regfn initialises it (``dist_timeout`` or ``REGFN_DIST_TIMEOUT`` override it)."""

MESSAGE_BYTES = 512
"""How much of a failing rank's ``"Type: message"`` reaches the others."""

_T = TypeVar("_T")


class RankFailed(RuntimeError):
    """Another rank's work raised; the message names the rank and its reason."""


class RankLost(RuntimeError):
    """A collective failed or timed out: a rank died or stopped answering; the message names it when it can."""


@dataclass(frozen=True)
class World:
    """This process's place in the sweep: its rank, the number of ranks, its rank on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether other processes share the sweep."""
        return self.size > 1


SINGLE = World()
"""One process: the sweep as it runs without torch.distributed."""

_points = [0]  # status points passed by this process (the same sequence on every rank)
_lost = [False]  # whether a collective failed (then the process group is not torn down at exit)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"regfn.sweep: the environment variable {name} must be an integer, got {value!r}") from None


def timeout_seconds(dist_timeout: float | None) -> float:
    """The process group's timeout: ``dist_timeout``, else ``REGFN_DIST_TIMEOUT``, else 600 s."""
    if dist_timeout is None:
        text = os.environ.get("REGFN_DIST_TIMEOUT")
        if text is None or not text.strip():
            return DEFAULT_TIMEOUT_S
        try:
            dist_timeout = float(text)
        except ValueError:
            raise ValueError(f"regfn.sweep: REGFN_DIST_TIMEOUT must be a number of seconds, got {text!r}") from None
    if isinstance(dist_timeout, bool) or not isinstance(dist_timeout, int | float) or not dist_timeout > 0:
        raise ValueError(f"regfn.sweep: dist_timeout must be a number of seconds > 0, got {dist_timeout!r}")
    return float(dist_timeout)


def setup(device: torch.device, dist_timeout: float | None) -> World:
    """The sweep's world: from an initialised process group, else from the environment, else one process.

    From the environment (``RANK``, ``WORLD_SIZE`` > 1, ``LOCAL_RANK``, and
    ``MASTER_ADDR``/``MASTER_PORT``, as ``torchrun`` sets them), the process
    group is initialised here: NCCL when ``device`` is CUDA (with
    ``device_id=cuda:LOCAL_RANK``), else gloo, with the timeout of
    :func:`timeout_seconds`. It stays initialised for later sweeps.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        given, me = _env_int("LOCAL_RANK"), dist.get_rank()
        return World(me, dist.get_world_size(), me % max(torch.cuda.device_count(), 1) if given is None else given)
    size = _env_int("WORLD_SIZE")
    if size is None or size <= 1:
        return SINGLE
    rank, local_env = _env_int("RANK"), _env_int("LOCAL_RANK")
    if rank is None:
        raise ValueError("regfn.sweep: WORLD_SIZE is set but RANK is not; launch with torchrun (or set both)")
    local = rank if local_env is None else local_env
    if not dist.is_available():  # pragma: no cover - torch builds without distributed
        raise RuntimeError("regfn.sweep: WORLD_SIZE > 1, but this torch build has no torch.distributed")
    timeout = datetime.timedelta(seconds=timeout_seconds(dist_timeout))
    atexit.register(_shut_down)
    store = _attempt_store(rank, size, timeout)
    if device.type == "cuda" and torch.cuda.is_available():
        cuda = torch.device("cuda", local)
        torch.cuda.set_device(cuda)
        dist.init_process_group("nccl", store=store, rank=rank, world_size=size, timeout=timeout, device_id=cuda)
    else:
        dist.init_process_group("gloo", store=store, rank=rank, world_size=size, timeout=timeout)
    return World(rank, size, local)


def _attempt_store(rank: int, size: int, timeout: datetime.timedelta) -> Any:
    """Under ``torchrun`` after a restart (``TORCHELASTIC_RESTART_COUNT`` > 0): the env:// store, its keys
    prefixed by the attempt; else ``None`` (``init_process_group`` makes its own).

    torchrun's agent keeps one store across restarts (the same ``MASTER_PORT``), so the restarted
    ranks would read the dead attempt's addresses (gloo: "connection refused") or hang.
    """
    import torch.distributed as dist

    attempt = _env_int("TORCHELASTIC_RESTART_COUNT")
    if not attempt:
        return None
    store, _, _ = next(dist.rendezvous("env://", rank, size, timeout=timeout))
    return dist.PrefixStore(f"regfn/attempt{attempt}/", store)


def _shut_down() -> None:
    """At exit, destroy the process group regfn initialised, unless a rank was lost (that could block).

    The ranks first meet at a barrier (at most 30 s): a rank that tore its
    connections down while another still finished a collective made gloo
    abort that other process ("terminate called without an active exception").
    """
    import torch.distributed as dist

    if not _lost[0] and dist.is_initialized():
        with contextlib.suppress(Exception):
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=30))
            else:
                dist.barrier()
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def is_lead() -> bool:
    """Whether this process is rank 0 (or the only one): the one that prints and writes."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return (_env_int("WORLD_SIZE") or 1) <= 1 or (_env_int("RANK") or 0) == 0


def local_device(world: World, device: torch.device, chosen: bool) -> torch.device:
    """The rank's device: ``cuda:LOCAL_RANK`` for CUDA unless the caller named an index (``chosen``)."""
    if world.distributed and device.type == "cuda" and not (chosen and device.index is not None):
        return torch.device("cuda", world.local_rank)
    return device


def _comm_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ----------------------------------------------------------------- failures


def _key(point: int, rank: int) -> str:
    return f"regfn.sweep/status{point}/rank{rank}"


def _silent_ranks(world: World, point: int) -> list[int] | None:
    """The ranks that have not reached status point ``point`` (``None``: the store cannot tell)."""
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        store = _get_default_store()
        return [r for r in range(world.size) if r != world.rank and not store.check([_key(point, r)])]
    except Exception:
        return None


def _collective(world: World, what: str, fn: Callable[[], _T]) -> _T:
    """Run one collective; turn its failure (a dead or stuck rank, the timeout) into a :class:`RankLost`."""
    try:
        return fn()
    except RuntimeError as err:  # DistBackendError and gloo's errors are RuntimeErrors
        _lost[0] = True
        silent = _silent_ranks(world, _points[0])
        who = (
            "another rank"
            if not silent
            else ("rank " if len(silent) == 1 else "ranks ") + ", ".join(str(r) for r in silent)
        )
        raise RankLost(
            f"regfn.sweep: rank {world.rank}: {what} failed: {who} did not answer (killed, out of memory, "
            f"or stuck past the process group's timeout): {type(err).__name__}: {str(err).strip()[:300]}"
        ) from err


def _encode(error: BaseException | None) -> Tensor:
    status = torch.zeros(1 + MESSAGE_BYTES, dtype=torch.uint8)
    if error is not None:
        text = f"{type(error).__name__}: {error}".encode(errors="replace")[:MESSAGE_BYTES]
        status[0] = 1
        status[1 : 1 + len(text)] = torch.frombuffer(bytearray(text), dtype=torch.uint8)
    return status


def _decode(status: Tensor) -> str:
    return bytes(status[1:].tolist()).rstrip(b"\0").decode(errors="replace")


def check(world: World, error: BaseException | None = None) -> None:
    """A status point: every rank says whether its work raised; raise on every rank if any did.

    The rank that passes ``error`` re-raises it (call this in its ``except``
    block); the others raise :class:`RankFailed` naming the failed ranks.
    """
    if not world.distributed:
        if error is not None:
            raise error
        return
    import torch.distributed as dist

    _points[0] += 1
    with contextlib.suppress(Exception):  # who reached this point, for RankLost's message
        from torch.distributed.distributed_c10d import _get_default_store

        _get_default_store().set(_key(_points[0], world.rank), "1")
    device = _comm_device()
    mine = _encode(error).to(device)
    got = [torch.empty_like(mine) for _ in range(world.size)]
    _collective(world, "the status exchange", lambda: dist.all_gather(got, mine))
    failed = [(r, _decode(s.cpu())) for r, s in enumerate(got) if int(s[0]) != 0]
    if error is not None:
        raise error
    if failed:
        raise RankFailed("regfn.sweep: " + "; ".join(f"rank {r} failed: {why}" for r, why in failed))


@contextlib.contextmanager
def guard(world: World) -> Iterator[None]:
    """Report an exception of this rank's work to the others at a status point, then re-raise it."""
    try:
        yield
    except (RankFailed, RankLost):
        raise
    except Exception as err:
        if not world.distributed:
            raise
        check(world, err)
        raise


def agree(world: World, limit: int, compiled: bool) -> tuple[int, bool]:
    """One chunk limit (the smallest of the ranks') and one compile decision (compile if any rank would)."""
    if not world.distributed:
        return limit, compiled
    import torch.distributed as dist

    check(world)
    values = torch.tensor([min(limit, 2**62), -int(compiled)], dtype=torch.int64, device=_comm_device())
    _collective(world, "agreeing on the chunk size", lambda: dist.all_reduce(values, op=dist.ReduceOp.MIN))
    return int(values[0]), bool(values[1] < 0)


# ----------------------------------------------------------------- sharing values between ranks


def _frame(value: Any, tensors: Mapping[str, Tensor]) -> bytes:
    """``value`` as JSON and ``tensors`` as safetensors, in one message: 8 bytes of JSON length, JSON, tensors."""
    from safetensors.torch import save

    text = json.dumps(value).encode()
    blob = save({n: t.detach().to("cpu", copy=True).contiguous() for n, t in tensors.items()}) if tensors else b""
    return len(text).to_bytes(8, "little") + text + blob


def _unframe(message: bytes) -> tuple[Any, dict[str, Tensor]]:
    from safetensors.torch import load

    n = int.from_bytes(message[:8], "little")
    rest = message[8 + n :]
    return json.loads(message[8 : 8 + n].decode()), (load(rest) if rest else {})


def share(
    world: World,
    what: str,
    value: Any,
    tensors: Mapping[str, Tensor] | None = None,
    *,
    everywhere: bool = True,
) -> list[tuple[Any, dict[str, Tensor]]] | None:
    """Every rank's ``(value, tensors)``, in rank order, on every rank (on rank 0 only unless ``everywhere``).

    ``value`` is anything JSON takes (floats round-trip exactly, NaN and
    infinities included); ``tensors`` arrive on the CPU, the same bits. One
    process gets its own arguments back (not copied). Every rank calls it at
    the same point, inside :func:`guard`: it encodes, then passes a status
    point (so a rank that failed before, or while encoding, is reported by
    name), then all-gathers the message sizes and the messages (padded to the
    longest); a dead rank there raises :class:`RankLost`, whose message says
    ``what`` failed. Ranks other than 0 get ``None`` when not ``everywhere``.
    """
    if not world.distributed:
        return [(value, dict(tensors or {}))]
    import torch.distributed as dist

    message = _frame(value, tensors or {})
    check(world)
    device = _comm_device()
    size = torch.tensor([len(message)], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(size) for _ in range(world.size)]
    _collective(world, what, lambda: dist.all_gather(sizes, size))
    lengths = [int(n) for n in sizes]
    buffer = torch.zeros(max(lengths), dtype=torch.uint8)
    buffer[: len(message)] = torch.frombuffer(bytearray(message), dtype=torch.uint8)
    buffer = buffer.to(device)
    got = [torch.empty_like(buffer) for _ in range(world.size)]
    if everywhere:
        _collective(world, what, lambda: dist.all_gather(got, buffer))
    elif world.rank == 0:
        _collective(world, what, lambda: dist.gather(buffer, got, dst=0))
    else:
        _collective(world, what, lambda: dist.gather(buffer, None, dst=0))
        return None
    return [_unframe(g[:n].cpu().numpy().tobytes()) for g, n in zip(got, lengths, strict=True)]
