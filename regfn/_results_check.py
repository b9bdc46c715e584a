"""A results file's fields checked before :func:`regfn.verify` acts on any of them.

A ``results.json`` may come from someone else. :func:`read_results` refuses,
with one ``ValueError`` line that names the field, a file that is too large,
not a regular file, not JSON, or whose fields have the wrong types, sizes
out of range, shapes that disagree (a curve longer than the recorded epochs
allow), or paths that leave the folder they are read from (absolute, or
with ``..``). Nothing in the file is imported, run or written.

Examples:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.json"
    >>> _ = path.write_text('{"rows": "many"}')
    >>> try:
    ...     read_results(path)
    ... except ValueError as err:
    ...     print(str(err).split(": ", 1)[1])
    not a regfn results.json (rows: a list of dicts expected, got str)
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from .results import SweepResult

__all__ = ["MAX_RESULTS_BYTES", "check_path", "check_result", "read_results"]

MAX_RESULTS_BYTES = 2**30
"""The largest results file :func:`read_results` reads (1 GiB: about 4 million configurations' rows and curves)."""

_MAX_INT = 2**62  # epochs, sizes, chunk sizes: beyond any real sweep, within every integer type regfn uses
_MAX_EPOCHS = 10**7
_MAX_ARGV = 10_000  # items of a recorded command line, and characters of one item
_HEX = re.compile(r"[0-9a-f]{64}")


class _Bad(Exception):
    """A field that fails the check: ``(field, what was expected)``."""


def _int(value: Any, name: str, low: int = 0, high: int = _MAX_INT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Bad(name, f"an int in [{low}, {high}] expected, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, int | float | bool | type(None)) else type(value).__name__
    return text if len(text) <= 40 else text[:40] + "..."


def _kind(value: Any, kind: type | tuple[type, ...], name: str, what: str) -> Any:
    if not isinstance(value, kind):
        raise _Bad(name, f"{what} expected, got {type(value).__name__}")
    return value


def _scalar(value: Any, name: str, depth: int = 0) -> None:
    """A row's value: a number, a string, a bool or null, or (a PBT history, the folds' values) a shallow
    list or dict of them."""
    if isinstance(value, float) and not math.isfinite(value):
        return
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
        raise _Bad(name, f"a number within +-2**62 expected, got {_shown(value)}")
    if isinstance(value, list | dict) and depth < 3:
        for v in value.values() if isinstance(value, dict) else value:
            _scalar(v, name, depth + 1)
        return
    _kind(value, (int, float, str, bool, type(None)), name, "a number, a string, a bool or null")


def _device(text: Any) -> None:
    import torch

    _kind(text, str, "provenance.device", "a device name")
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise _Bad("provenance.device", f"a device name (cpu, cuda:0, ...) expected, got {text[:40]!r}") from None


def check_path(text: Any, name: str) -> str:
    """``text`` if it is a relative path that stays in its folder (no ``..``, not absolute); else a ``ValueError``."""
    _kind(text, str, name, "a path")
    path = pathlib.PurePath(text)
    if not text or "\0" in text or path.is_absolute() or ".." in path.parts or text.startswith("~"):
        raise ValueError(f"{name}: {text[:80]!r} leaves the folder it is read from (absolute, '~' or '..')")
    return text


def _rows(d: Mapping[str, Any]) -> int:
    rows = _kind(d.get("rows"), list, "rows", "a list of dicts")
    for i, row in enumerate(rows):
        _kind(row, dict, f"rows[{i}]", "a dict")
        for name, value in row.items():
            _scalar(value, f"rows[{i}].{name}")
    epochs = _kind(d.get("curve_epochs"), list, "curve_epochs", "a list of ints")
    for i, e in enumerate(epochs):
        _int(e, f"curve_epochs[{i}]", 0, _MAX_EPOCHS)
    curves = _kind(d.get("curves"), dict, "curves", "a dict of lists")
    for name, curve in curves.items():
        _kind(curve, list, f"curves.{name}", "a list per row")
        if len(curve) != len(rows):
            raise _Bad(f"curves.{name}", f"one list per row ({len(rows)}) expected, got {len(curve)}")
        for i, points in enumerate(curve):
            _kind(points, list, f"curves.{name}[{i}]", "a list of numbers")
            if len(points) != len(epochs):
                raise _Bad(
                    f"curves.{name}[{i}]", f"{len(epochs)} points (the curve epochs) expected, got {len(points)}"
                )
            for v in points:
                _kind(v, (int, float, type(None)), f"curves.{name}[{i}]", "numbers or null")
    for field in ("hyperparameters",):
        for v in _kind(d.get(field, []), list, field, "a list of names"):
            _kind(v, str, field, "a list of names")
    for field in ("timings", "settings", "schedule", "provenance"):
        _kind(d.get(field, {}), dict, field, "a dict")
    return len(rows)


def _provenance(prov: Mapping[str, Any], n_rows: int, curve_epochs: list[int]) -> None:
    if not prov:
        return
    configs = _kind(prov.get("configurations"), list, "provenance.configurations", "a list of dicts")
    if len(configs) != n_rows:
        raise _Bad("provenance.configurations", f"one per row ({n_rows}) expected, got {len(configs)}")
    for i, config in enumerate(configs):
        _kind(config, dict, f"provenance.configurations[{i}]", "a dict")
        for name, value in config.items():
            _scalar(value, f"provenance.configurations[{i}].{name}")
    for field in ("spec", "versions", "arguments"):
        _kind(prov.get(field), dict, f"provenance.{field}", "a dict")
    _kind(prov["spec"].get("model"), dict, "provenance.spec.model", "a dict (the model's description)")
    _device(prov.get("device"))
    for field in ("data_sha256", "val_sha256"):
        value = prov.get(field)
        if value is not None and not (isinstance(value, str) and _HEX.fullmatch(value)):
            raise _Bad(f"provenance.{field}", "a sha256 (64 hex digits) or null expected")
    args = prov["arguments"]
    name = "provenance.arguments"
    for field in ("loss", "optimizer", "engine"):
        _kind(args.get(field), str, f"{name}.{field}", "a name")
    epochs = _int(args.get("epochs"), f"{name}.epochs", 1, _MAX_EPOCHS)
    log_every = _int(args.get("log_every"), f"{name}.log_every", 1, _MAX_EPOCHS)
    if args.get("batch_size") is not None:
        _int(args["batch_size"], f"{name}.batch_size", 1)
    _int(args.get("chunk_size"), f"{name}.chunk_size", 1)
    _kind(args.get("compile"), bool, f"{name}.compile", "true or false")
    if args.get("threads") is not None:
        _int(args["threads"], f"{name}.threads", 1, 512)
    for field in ("cv", "schedule"):
        _kind(args.get(field), (dict, type(None)), f"{name}.{field}", "a dict or null")
    if args.get("schedule") is None:  # the log points of a plain sweep: multiples of log_every, and the last epoch
        n = epochs // log_every + (epochs % log_every != 0)
        if len(curve_epochs) != n or curve_epochs[-1:] != [epochs]:
            raise _Bad("curve_epochs", f"the {n} log points of {epochs} epochs logged every {log_every} expected")
    argv = prov.get("argv")
    if argv is not None:
        _kind(argv, list, "provenance.argv", "a list of strings")
        if len(argv) > _MAX_ARGV or any(not isinstance(a, str) or len(a) > _MAX_ARGV for a in argv):
            raise _Bad("provenance.argv", f"at most {_MAX_ARGV} strings of at most {_MAX_ARGV} characters expected")
    for i, record in enumerate(_kind(prov.get("files", []), list, "provenance.files", "a list")):
        where = f"provenance.files[{i}]"
        _kind(record, dict, where, "a dict")
        _kind(record.get("role"), str, f"{where}.role", "a role")
        _kind(record.get("path"), str, f"{where}.path", "a path")
        value = record.get("sha256")
        if value is not None and not (isinstance(value, str) and _HEX.fullmatch(value)):
            raise _Bad(f"{where}.sha256", "a sha256 (64 hex digits) or null expected")


def check_result(d: Mapping[str, Any]) -> None:
    """Check a results file's parsed JSON ``d``; raise ``ValueError`` naming the first bad field."""
    try:
        _kind(d, dict, "the file", "a JSON object")
        n_rows = _rows(d)
        _provenance(d.get("provenance", {}), n_rows, d["curve_epochs"])
    except _Bad as bad:
        field, what = bad.args
        raise ValueError(f"not a regfn results.json ({field}: {what})") from None


def read_results(path: str | pathlib.Path) -> SweepResult:
    """The result in ``path``, after :func:`check_result`; a ``ValueError`` (one line, naming ``path``) if refused."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_RESULTS_BYTES:
        raise ValueError(f"{path}: {size:,} bytes, more than a results file holds (at most {MAX_RESULTS_BYTES:,})")
    try:
        d = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not a regfn results.json ({type(err).__name__})") from None
    try:
        check_result(d)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return SweepResult.from_dict(d, path)
