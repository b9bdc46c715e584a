"""Bad command-line input: :class:`CLIError`, the parser that raises it, and the one line it prints.

:func:`regfn.cli.main` prints a :class:`CLIError` (or a ``ValueError``,
``TypeError`` or ``OSError``) as one line ``regfn: error: <message>`` and
returns exit status 2.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["CLIError", "CLIParser", "first_line"]


class CLIError(Exception):
    """Bad input from the command line; printed as ``regfn: error: <message>``."""


class CLIParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and do not exit the interpreter."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see '{self.prog} --help')")


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or its type's name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
