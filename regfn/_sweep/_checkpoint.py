"""Checkpoints of a sweep, and the record that says which sweep wrote them.

``regfn.sweep(..., checkpoint=DIR, checkpoint_every=N)`` keeps, per chunk,
one safetensors file (``chunk-<first>-<size>.safetensors``: the chunk's first
global configuration index and its size): the engine's state tree (parameters,
optimizer state, keys), the curves logged so far, and, in the metadata, the
epoch counter, a checksum of every tensor and the sweep's record
(:func:`describe`). A finished chunk leaves ``chunk-<first>-<size>.done.safetensors``
instead: its final outputs, so that a resumed sweep skips it. A sweep with a
schedule keeps one file per rank instead, ``schedule.safetensors`` on one
process and ``schedule-rank<r>-of-<n>.safetensors`` on ``n`` ranks: the
rank's chunks (state and hyperparameters), its rows' results so far, and
where the schedule stands, with the *generation* (how many stretches between
decisions the loop began); the first save of a new generation moves the
rank's file to ``<name>.previous.safetensors``, so that each rank keeps its
last two generations (see :mod:`regfn._sweep._saving`). Files are
written to ``<name>.tmp``, flushed, synced and moved into place with
``os.replace``: a crash mid-write keeps the previous file.

Only tensors are stored: the tree's structure comes from a fresh
``engine.start(hp)`` for the chunk. No pickle is involved.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree

from ..data import Dataset
from ..losses import Loss
from ..nn import Model
from ..nn._mlp import settings_of
from ..random import key as make_key
from ._engine import ChunkState
from ._groups import flatten_tree

__all__ = [
    "COMPARED",
    "Checkpoint",
    "configs_hash",
    "data_fingerprint",
    "describe",
    "model_description",
    "resume_point",
    "versions",
]

FORMAT = 1
"""The checkpoint format's version (part of the record)."""

COMPARED = (
    "format",
    "configurations",
    "model",
    "loss",
    "optimizer",
    "epochs",
    "batch_size",
    "log_every",
    "chunk_size",
    "compile",
    "engine",
    "key_impl",
    "data",
    "val",
    "cv",
    "schedule",
    "regfn",
    "torch",
)
"""The record's fields a resume must match (the Python version, device and thread count are kept, not compared)."""

_RECORD, _CHUNK = "regfn_checkpoint", "regfn_chunk"
_SCHEDULE = re.compile(r"schedule(?:-rank(\d+)-of-(\d+))?(\.previous)?\.safetensors")


# ----------------------------------------------------------------- fingerprints


def _raw(t: Tensor) -> bytes:
    return t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def tensor_hash(tensors: Sequence[Tensor]) -> str:
    """sha256 over the dtypes, shapes and bytes of ``tensors``, in order."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        h.update(_raw(t))
    return h.hexdigest()


def data_fingerprint(data: Dataset | None) -> str | None:
    """sha256 of a dataset's ``x`` and ``y`` (dtypes, shapes, bytes); ``None`` for no data."""
    return None if data is None else tensor_hash([data.x, data.y])


def configs_hash(rows: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the validated configuration rows' JSON, in order."""
    return hashlib.sha256(json.dumps(list(rows), default=repr).encode()).hexdigest()


def _name(f: Any) -> str:
    if isinstance(f, str):
        return f
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__name__)}"


def model_description(model: Model, params: Mapping[str, Tensor] | None = None) -> dict[str, Any]:
    """What identifies a model without pickling it: an MLP's settings, or its apply and parameter shapes
    (``params``: its parameters from ``regfn.random.key(0)``, when the caller has them)."""
    params = model.init(make_key(0)) if params is None else params
    leaves, _ = _pytree.tree_flatten_with_path(params)
    shapes = [[_pytree.keystr(path), list(leaf.shape), str(leaf.dtype)] for path, leaf in leaves]
    out: dict[str, Any] = {
        "apply": _name(model.apply),
        "n_params": sum(int(leaf.numel()) for _, leaf in leaves),
        "params_sha256": hashlib.sha256(json.dumps(shapes).encode()).hexdigest(),
    }
    settings = settings_of(model)
    if settings is not None:
        out["mlp"] = {
            "sizes": list(settings.sizes),
            "activation": _name(settings.activation),
            "output": _name(settings.output),
            "dtype": str(settings.dtype),
        }
    return out


def versions() -> dict[str, str]:
    """regfn, torch and Python versions."""
    from .._version import __version__

    return {"regfn": __version__, "torch": torch.__version__, "python": platform.python_version()}


def describe(
    rows: Sequence[Mapping[str, Any]],
    model: Model,
    loss: Loss,
    data: Dataset,
    val: Dataset | None,
    params: Mapping[str, Tensor] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """A sweep's record: configuration hash, model, loss, data fingerprints, versions and ``settings``
    (``params``: the model's parameters from ``regfn.random.key(0)``, when the caller has them).

    ``settings`` holds the sweep's arguments (optimizer, epochs, batch_size,
    log_every, chunk_size, compile, engine, ...).
    """
    return {
        "format": FORMAT,
        "configurations": configs_hash(rows),
        "model": model_description(model, params),
        "loss": loss.name or _name(loss.fn),
        "data": data_fingerprint(data),
        "val": data_fingerprint(val),
        **settings,
        **versions(),
    }


def differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The compared fields that differ, in words."""
    out = []
    for name in COMPARED:
        a, b = stored.get(name), current.get(name)
        if a != b:
            what = {
                "configurations": "configurations differ",
                "data": "training data differs",
                "val": "validation data differs",
                "cv": "cross-validation folds differ",
            }
            shown = (f"hash {str(a)[:12]} != {str(b)[:12]}") if name in what else f"{a!r} != {b!r}"
            out.append(f"{what.get(name, f'{name} differs')} ({shown}{_HINTS.get(name, '')})")
    return out


_HINTS = {
    "chunk_size": "; an automatic chunk size holds at most one rank's share, so it can change with the number "
    "of ranks: pass an int chunk_size to resume on another number"
}
"""What to do when a compared field differs, where that is not obvious."""


# ----------------------------------------------------------------- files


class Checkpoint:
    """A checkpoint directory: the chunk files of one sweep (see the module docstring).

    Attributes:
        directory: where the files live (created when missing).
        every: save a running chunk every this many epochs.
        offset: the global index of the driver's first configuration (a
            distributed rank's share starts past 0); file names use global indices.
    """

    def __init__(self, directory: str | os.PathLike[str], every: int, offset: int = 0):
        self.directory = pathlib.Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"regfn.sweep: checkpoint {self.directory} is a file, not a directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.every, self.offset = every, offset
        self.record: dict[str, Any] | None = None

    # -- the record

    def _files(self) -> list[pathlib.Path]:
        files = sorted(p for p in self.directory.glob("chunk-*.safetensors"))
        return files + sorted(p for p in self.directory.glob("schedule*.safetensors") if _SCHEDULE.fullmatch(p.name))

    def _damaged(self, path: pathlib.Path, why: str) -> ValueError:
        return ValueError(f"regfn.sweep: checkpoint {path} is damaged ({why}); delete it to restart that chunk")

    def _header(self, path: pathlib.Path) -> tuple[dict[str, Any], dict[str, Any]]:
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            return json.loads(meta[_RECORD]), json.loads(meta[_CHUNK])
        except Exception as err:
            raise self._damaged(path, f"{type(err).__name__}: {err}") from None

    def stored(self) -> dict[str, Any] | None:
        """The record of the files already in the directory (``None`` when there are none)."""
        files = self._files()
        return self._header(files[0])[0] if files else None

    def bind(self, record: dict[str, Any]) -> None:
        """Check every file against this sweep's ``record``; refuse, naming what differs, if one was another's."""
        for path in self._files():
            try:
                stored, _ = self._header(path)
            except ValueError:
                if path.exists():
                    raise
                continue  # another rank finished that chunk meanwhile (its running file was removed)
            diff = differences(stored, record)
            if diff:
                raise ValueError(
                    f"regfn.sweep: checkpoint {self.directory} was written by a different sweep: "
                    + "; ".join(diff)
                    + "; use another directory, or delete it to start over"
                )
        self.record = record

    # -- writing

    def _name(self, start: int, size: int, done: bool) -> pathlib.Path:
        first = self.offset + start
        return self.directory / f"chunk-{first:06d}-{size:06d}{'.done' if done else ''}.safetensors"

    def _write(self, path: pathlib.Path, tensors: dict[str, Tensor], chunk: dict[str, Any]) -> None:
        from safetensors.torch import save

        tensors = {n: t.detach().to("cpu", copy=True).contiguous() for n, t in tensors.items()}
        names = sorted(tensors)
        chunk = {**chunk, "checksum": tensor_hash([tensors[n] for n in names])}
        blob = save(tensors, metadata={_RECORD: json.dumps(self.record), _CHUNK: json.dumps(chunk)})
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def save_state(
        self, start: int, size: int, state: ChunkState, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]
    ) -> None:
        """Save a running chunk: its state tree, ``tensors`` (its rows' results so far) and ``meta`` (JSON)."""
        chunk = {"start": self.offset + start, "size": size, "epoch": state.epoch, **meta}
        self._write(self._name(start, size, done=False), {**flatten_tree("tree", state.tree), **tensors}, chunk)

    def save_done(
        self, start: int, size: int, keep: int, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]
    ) -> None:
        """Save a finished chunk's results (``tensors``, ``keep`` rows each; ``meta``: JSON) and drop its running state."""
        chunk = {"start": self.offset + start, "size": size, "keep": keep, **meta}
        self._write(self._name(start, size, done=True), dict(tensors), chunk)
        self._name(start, size, done=False).unlink(missing_ok=True)

    # -- reading

    def _load(self, path: pathlib.Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
        from safetensors.torch import load_file

        _, chunk = self._header(path)
        try:
            tensors = load_file(str(path))
        except Exception as err:
            raise self._damaged(path, f"{type(err).__name__}: {err}") from None
        if tensor_hash([tensors[n] for n in sorted(tensors)]) != chunk.get("checksum"):
            raise self._damaged(path, "its tensors do not match their checksum")
        return tensors, chunk

    def fill(self, fresh: Any, tensors: Mapping[str, Tensor], prefix: str, path: pathlib.Path) -> Any:
        """The tree ``fresh`` with every tensor leaf replaced by the stored ``prefix<path>`` (checked to fit)."""
        leaves, spec = _pytree.tree_flatten_with_path(fresh)
        values = []
        for p, like in leaves:
            if not isinstance(like, Tensor):
                values.append(like)
                continue
            stored = tensors.get(prefix + _pytree.keystr(p))
            if stored is None or stored.shape != like.shape or stored.dtype != like.dtype:
                raise self._damaged(path, f"its state does not fit the chunk at {prefix}{_pytree.keystr(p)}")
            values.append(stored.to(like.device))
        return _pytree.tree_unflatten(values, spec)

    def load_state(
        self, start: int, size: int, fresh: ChunkState
    ) -> tuple[ChunkState, dict[str, Tensor], dict[str, Any]] | None:
        """A running chunk's saved ``(state, tensors, meta)``, its state shaped like ``fresh``; ``None`` if none."""
        path = self._name(start, size, done=False)
        if not path.exists():
            return None
        tensors, chunk = self._load(path)
        state = ChunkState(self.fill(fresh.tree, tensors, "tree", path), int(chunk["epoch"]))
        return state, {n: t for n, t in tensors.items() if not n.startswith("tree")}, chunk

    def finished(self, start: int, keep: int) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        """The saved results of the configurations ``start .. start + keep`` from done files, with the first
        file's ``meta``; ``None`` unless every row is covered.

        The rows may come from several done files (a sweep resumed with
        another split of the configurations).
        """
        done: dict[int, tuple[pathlib.Path, int]] = {}
        for path in self.directory.glob("chunk-*.done.safetensors"):
            first, size = (int(s) for s in path.name.split(".")[0].split("-")[1:3])
            done[first] = (path, size)
        lo, hi = self.offset + start, self.offset + start + keep
        pieces: list[tuple[dict[str, Tensor], dict[str, Any], int, int]] = []
        pos = lo
        for first in sorted(done):
            path, size = done[first]
            if pos >= hi or first > pos:
                break
            if first + size <= pos:
                continue
            tensors, chunk = self._load(path)
            end = first + int(chunk["keep"])
            if end <= pos:
                continue
            pieces.append((tensors, chunk, pos - first, min(end, hi) - first))
            pos = min(end, hi)
        if pos < hi:
            return None
        names = pieces[0][0].keys()
        return {n: torch.cat([t[n][a:b] for t, _, a, b in pieces]) for n in names}, pieces[0][1]

    # -- a schedule's files: one per rank, two generations

    def schedule_path(self, rank: int = 0, world: int = 1, previous: bool = False) -> pathlib.Path:
        """The file of rank ``rank`` of ``world`` in a sweep with a schedule (its previous generation's)."""
        who = "" if world == 1 else f"-rank{rank}-of-{world}"
        return self.directory / f"schedule{who}{'.previous' if previous else ''}.safetensors"

    def schedules(self) -> dict[int, dict[int, dict[int, str]]]:
        """The schedule files here: world size -> rank -> generation -> file name."""
        out: dict[int, dict[int, dict[int, str]]] = {}
        for path in self.directory.glob("schedule*.safetensors"):
            found = _SCHEDULE.fullmatch(path.name)
            if found is None:
                continue
            rank, world = (int(found[1]), int(found[2])) if found[1] else (0, 1)
            try:
                _, meta = self._header(path)
            except ValueError:
                if path.exists():
                    raise
                continue
            out.setdefault(world, {}).setdefault(rank, {})[int(meta.get("generation", 0))] = path.name
        return out

    def save_schedule(self, tensors: dict[str, Tensor], meta: dict[str, Any], rank: int, world: int) -> None:
        """Save rank ``rank``'s part of a scheduled sweep: ``tensors`` and ``meta`` (JSON, with its
        ``"generation"``); the rank's file of an older generation first becomes its previous one."""
        path = self.schedule_path(rank, world)
        if path.exists() and int(self._header(path)[1].get("generation", 0)) < int(meta["generation"]):
            os.replace(path, self.schedule_path(rank, world, previous=True))
        self._write(path, tensors, meta)

    def load_schedule(self, name: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The saved ``(tensors, meta)`` of the schedule file ``name`` (checksum checked)."""
        return self._load(self.directory / name)

    def drop_schedules(self, keep: Iterable[pathlib.Path] = ()) -> None:
        """Remove every schedule file but ``keep``."""
        kept = {p.name for p in keep}
        for path in self.directory.glob("schedule*.safetensors"):
            if _SCHEDULE.fullmatch(path.name) and path.name not in kept:
                path.unlink(missing_ok=True)


def resume_point(files: Mapping[int, Mapping[int, Iterable[int]]], world: int) -> tuple[int, int] | None:
    """Where a scheduled sweep resumes: ``(world size, generation)`` of a complete set of files, or ``None``.

    ``files`` maps a world size to each rank's saved generations. A world
    size whose every rank holds a file counts; of the generations all its
    ranks hold, the latest. The latest such generation wins; a tie goes to
    ``world`` (the current world size), then to the larger world size.

    Examples:
        >>> resume_point({2: {0: [3, 4], 1: [4, 5]}}, 2)  # rank 0 died before generation 5
        (2, 4)
        >>> resume_point({2: {1: [5]}, 1: {0: [2, 3]}}, 2)  # two ranks that never both saved
        (1, 3)
        >>> resume_point({2: {0: [0]}}, 2) is None
        True
    """
    best: tuple[int, bool, int] | None = None
    for size, ranks in files.items():
        if any(r not in ranks for r in range(size)):
            continue
        held = set.intersection(*(set(ranks[r]) for r in range(size)))
        if held and (best is None or (max(held), size == world, size) > best):
            best = (max(held), size == world, size)
    return None if best is None else (best[2], best[0])
