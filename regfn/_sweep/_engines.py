"""The engines a sweep can run, by name: a new engine is one module and one line here."""

from __future__ import annotations

from collections.abc import Mapping

from ._engine import Engine
from ._sequential import SequentialEngine
from ._triton import TritonEngine
from ._vmap import VmapEngine

__all__ = ["ENGINES"]

ENGINES: Mapping[str, type[Engine]] = {
    VmapEngine.name: VmapEngine,
    TritonEngine.name: TritonEngine,
    SequentialEngine.name: SequentialEngine,
}
"""The engines a sweep can run, by name."""
