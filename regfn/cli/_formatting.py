"""How the command writes values: option defaults in ``--help`` as they would be typed, and numbers in tables."""

from __future__ import annotations

import argparse

__all__ = ["HelpFormatter", "count_of", "fmt", "show_default"]


def show_default(value: object) -> str:
    """A default as it would be typed: ``0,0.001`` for a list, ``6,4`` for widths."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def fmt(v: object) -> str:
    """A value in a table or a summary line: floats to 4 significant digits."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def count_of(n: int, word: str) -> str:
    """``1 config``, ``2 configs``, ``7,168 configs``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Raw epilogs, and each option's default printed once, as it would be typed.

    Not for ``None`` (the help says what happens), flags (their default is off),
    nor where the help already gives it (``default:`` in the text).
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or not action.option_strings
            or "default:" in text
        ):
            return text
        return f"{text} (default: {show_default(default).replace('%', '%%')})"
