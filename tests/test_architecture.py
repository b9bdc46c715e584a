"""The package's shape: no import cycles, no oversized modules, optimizers added from outside.

The import graph is read from the source with :mod:`ast` (module-level and
function-level imports alike, relative imports resolved), not from
``sys.modules``, so an import that only runs inside a function counts too.
A package stands for its ``__init__``; importing a submodule is an edge to
that submodule only. Imports under ``if TYPE_CHECKING:`` never run and are
left out.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "regfn"
MAX_LINES = 500
# The Triton kernel's source: one generated kernel and its helpers, kept together on purpose.
TOO_LONG_ON_PURPOSE = {"regfn/_sweep/_triton_mlp.py"}


def _modules() -> dict[str, pathlib.Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _imports(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    """The package's modules that module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from pkg import sub` imports the submodule; `from mod import name` the module only.
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
        for target in targets:
            while target and target not in modules:  # `import regfn.optim._base as b` names the module itself
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_graph_sees_relative_function_level_and_submodule_imports():
    graph = import_graph()
    assert "regfn.optim._describe" in graph["regfn.optim._alias"]  # from ._describe import ...
    assert "regfn.cli._model" in graph["regfn.cli._verify"]  # inside run_verify
    assert "regfn.optim" in graph["regfn._sweep._program"]  # from .. import optim
    assert "regfn._checks" in graph["regfn.optim._describe"]  # from .._checks import ...


def test_no_import_cycles():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_optim_imports_nothing_of_the_sweep_or_the_registry():
    graph = import_graph()
    optim = [name for name in graph if name == "regfn.optim" or name.startswith("regfn.optim.")]
    for name in optim:
        outside = {t for t in graph[name] if not t.startswith("regfn.optim")}
        # and the C kernel, which regfn.random._native builds and loads (Adam's fused moments: optim._fused)
        allowed = {"regfn._checks", "regfn._tree", "regfn._unbatch", "regfn.random._native", "regfn.random._host"}
        assert outside <= allowed, (name, outside)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_is_over_500_lines(name):
    path = _modules()[name]
    rel = path.relative_to(ROOT).as_posix()
    if rel in TOO_LONG_ON_PURPOSE:
        pytest.skip(f"{rel}: see TOO_LONG_ON_PURPOSE")
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{rel} has {lines} lines (at most {MAX_LINES}): split it by job"
