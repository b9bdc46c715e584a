"""The files a ``regfn sweep`` run read, as recorded in its provenance, and how ``regfn verify`` checks them.

``regfn sweep`` records a sha256 of each file it read besides its own code:
the ``--model module:PATH.py:Class`` file, the files of PATH's folder that
importing it imported, and the ``--csv`` table. Each record is a dict
``{"role": ..., "path": ..., "sha256": ...}``: ``path`` is the path as given
on the command line for ``"model"`` and ``"csv"``, and relative to the model
file's folder for ``"model import"``. ``regfn verify`` hashes the files it is
about to read (before importing anything) and names every one that changed.

Examples:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "net.py").write_text("x = 1\\n")
    6
    >>> records = file_records([folder / "net.py"], None)
    >>> [r["role"] for r in records], len(records[0]["sha256"])
    (['model'], 64)
    >>> changed_files(records, folder / "net.py", None)
    []
    >>> _ = (folder / "net.py").write_text("x = 2\\n")
    >>> changed_files(records, folder / "net.py", None)[0].startswith("the model file")
    True
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Sequence
from typing import Any

__all__ = ["ROLES", "changed_files", "file_records", "file_sha256"]

ROLES = ("model", "model import", "csv")
"""The kinds of file a ``regfn sweep`` run records."""

_WHAT = {"model": "the model file", "model import": "the model's imported file", "csv": "the data file"}


def file_sha256(path: str | pathlib.Path) -> str | None:
    """sha256 of the file's bytes, or ``None`` when it is not a readable regular file."""
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def file_records(model_files: Sequence[pathlib.Path], csv: str | None) -> list[dict[str, Any]]:
    """The records of a run's files: the model file and its imports (``model_files``, the model first), the CSV."""
    records = []
    if model_files:
        main, *imports = model_files
        records.append({"role": "model", "path": str(main), "sha256": file_sha256(main)})
        folder = main.resolve().parent
        for path in imports:
            rel = path.resolve().relative_to(folder).as_posix()
            records.append({"role": "model import", "path": rel, "sha256": file_sha256(path)})
    if csv is not None:
        records.append({"role": "csv", "path": csv, "sha256": file_sha256(csv)})
    return records


def changed_files(
    records: Sequence[dict[str, Any]], model: str | pathlib.Path | None, csv: str | pathlib.Path | None
) -> list[str]:
    """What changed among the recorded files, in words (one finding each), read where this rerun reads them.

    ``model`` and ``csv`` are the paths the rerun uses (``None``: the run
    reads no such file); a recorded import is looked up next to ``model``
    (one whose path leaves that folder is a ``ValueError``).
    """
    from .._results_check import check_path

    found = []
    for record in records:
        role, recorded = record["role"], record["sha256"]
        where: str | pathlib.Path | None = csv if role == "csv" else model
        if where is None or role not in ROLES:
            continue
        if role == "model import":  # a file of the model's folder: never outside it
            path = pathlib.Path(where).parent / check_path(record["path"], "a recorded model import")
        else:
            path = pathlib.Path(where)
        now = file_sha256(path)
        if now is None:
            found.append(f"{_WHAT[role]} {path} is missing (it had sha256 {str(recorded)[:12]}...)")
        elif now != recorded:
            found.append(
                f"{_WHAT[role]} {path} changed since the sweep (sha256 {str(recorded)[:12]}... then, {now[:12]}... now)"
            )
    return found
