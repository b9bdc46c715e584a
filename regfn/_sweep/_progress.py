"""A sweep's progress: a bar on a terminal, one line per chunk or rung elsewhere.

On a terminal, tqdm draws a bar over configuration-epochs (with its rate
and ETA). When the stream is not a terminal (a log file, CI), a bar's
frames would pile up as carriage returns, so the sweep prints one plain
line whenever a chunk ends or a schedule decides instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "is_terminal"]


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (where a bar redraws itself in place)."""
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty())


class Progress:
    """Configuration-epochs done out of ``total`` (a context manager; silent when ``quiet``).

    Examples:
        >>> import io
        >>> out = io.StringIO()  # not a terminal: lines, not frames
        >>> with Progress(40, quiet=False, stream=out) as progress:
        ...     progress.chunk(4).update(5)
        ...     progress.note("chunk of 4 done")
        >>> out.getvalue().split(" (")[0]
        'sweep: 20/40 config-epochs, chunk of 4 done'
    """

    def __init__(self, total: int, quiet: bool, stream: TextIO | None = None):
        self.total, self.quiet = total, quiet
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.bar: Any = None
        self.lines = False
        self.t0 = time.perf_counter()

    def __enter__(self) -> Progress:
        if self.quiet:
            return self
        if not is_terminal(self.stream):
            self.lines = True
            return self
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return self
        self.bar = tqdm(
            total=self.total, unit="config-epoch", unit_scale=True, desc="sweep", leave=False, file=self.stream
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def update(self, n: int) -> None:
        """``n`` more configuration-epochs done."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def recount(self, done: int) -> None:
        """Set the count back to ``done`` (rows are trained again, in smaller chunks)."""
        self.done = done
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()

    def note(self, what: str) -> None:
        """Off a terminal, one line: the count so far, ``what`` happened, and the seconds since the start."""
        if self.lines:
            share = f"{self.done:,}/{self.total:,} config-epochs"
            print(f"sweep: {share}, {what} ({time.perf_counter() - self.t0:.1f} s)", file=self.stream, flush=True)

    def chunk(self, configs: int) -> _Chunk:
        """The progress as an engine sees it: epochs of one chunk of ``configs`` real configurations."""
        return _Chunk(self, configs)


class _Chunk:
    def __init__(self, progress: Progress, configs: int):
        self.progress, self.configs = progress, configs

    def update(self, epochs: int) -> None:
        self.progress.update(epochs * self.configs)
