"""A Griffe extension for the API reference: the docstrings' Sphinx roles become links.

regfn's docstrings are Google style with reST cross-reference roles
(``:func:`regfn.sweep```, ``:class:`~regfn.optim.Transform```), which mkdocstrings
would show as text, and whose colons Google-style sections would misread ("A
:class:`X`" as a type ``A``). Before the docstrings are parsed, each role becomes an
optional cross-reference that mkdocs-autorefs resolves against the documented objects:
a link when the target is documented, the code alone when not. A leading ``~`` shows
the last component only, as in Sphinx; a relative target is looked up in the object's
public package, then in ``regfn``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`(~?)([\w.]+)(\(\))?`")


def _public_package(path: str) -> str:
    """``regfn.optim._alias.sgd`` -> ``regfn.optim``: the dotted path up to its first private part."""
    parts = []
    for part in path.split(".")[:-1]:
        if part.startswith("_"):
            break
        parts.append(part)
    return ".".join(parts) or "regfn"


def link_roles(text: str, package: str) -> str:
    """``text`` with every role replaced by an optional autoref to its target."""

    def link(match: re.Match[str]) -> str:
        short, target, call = match.group(1), match.group(2), match.group(3) or ""
        title = (target.rsplit(".", 1)[-1] if short else target) + call
        first, second = (target, target) if target.startswith("regfn") else (f"{package}.{target}", f"regfn.{target}")
        return (
            f'<autoref identifier="{html.escape(first)}" slug="{html.escape(second)}" optional>'
            f"<code>{html.escape(title)}</code></autoref>"
        )

    return ROLE.sub(link, text)


class SphinxRoles(griffe.Extension):
    """Rewrites every object's docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = link_roles(obj.docstring.value, _public_package(obj.path))
