"""The import structure of the ``fasbench`` package.

Module-level imports among fasbench modules must form an acyclic graph: a cycle makes the
result of an import depend on which module was imported first. Imports inside functions are
lazy (they run after every module has loaded) and are left out, as are ``from __future__``
and ``if TYPE_CHECKING:`` blocks.
"""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import fasbench

PACKAGE_DIR = Path(fasbench.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported: the module body and the
    blocks nested in it (try/except, if/else, with), but not function or class bodies,
    nor ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.With, ast.For, ast.While)):
                visit(node.body)
                visit(getattr(node, "orelse", []))

    visit(tree.body)
    return found


def _all_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The fasbench modules an import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
        return {_nearest_module(n) for n in names if n == "fasbench" or n.startswith("fasbench.")}
    if node.module == "__future__":
        return set()
    if node.level:  # relative import
        is_package = MODULES[module].name == "__init__.py"
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source != "fasbench" and not source.startswith("fasbench."):
        return set()
    out = set()
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        # ``from fasbench import x`` with x a submodule is an import of fasbench.x
        out.add(sub if sub in MODULES else _nearest_module(source))
    return out


def _nearest_module(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _graph(imports) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        deps = set()
        for node in imports(tree):
            deps |= _targets(module, node)
        deps.discard(module)
        graph[module] = deps
    return graph


def test_the_package_is_found():
    assert {"fasbench", "fasbench.cli", "fasbench.plugins", "fasbench.builtins"} <= set(MODULES)


def test_edges_are_found():
    """The parser sees the edges it must (a broken parser would make the next test vacuous)."""
    graph = _graph(_module_level_imports)
    assert "fasbench.errors" in graph["fasbench.cli"]
    assert "fasbench.hookspecs" in graph["fasbench.builtins"]  # from fasbench.hookspecs import hookimpl
    assert "fasbench.plugins" in graph["fasbench.engine.trainer"]  # from fasbench import plugins
    lazy = _graph(_all_imports)
    assert "fasbench.plugins" in lazy["fasbench.cli"]  # imported inside build_parser only
    assert "fasbench.plugins" not in graph["fasbench.cli"]


def test_module_level_imports_are_acyclic():
    graph = _graph(_module_level_imports)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        pytest.fail(f"import cycle among fasbench modules (module-level imports): {' -> '.join(cycle)}")
    assert set(order) >= set(MODULES)


def test_builtins_never_import_the_cli():
    """Built-in commands are registered like a plugin's, without calling back into the CLI."""
    graph = _graph(_all_imports)
    assert "fasbench.cli" not in graph["fasbench.builtins"], "fasbench.builtins imports fasbench.cli"
    # nor through a module it imports (lazily or not)
    seen, todo = set(), ["fasbench.builtins"]
    while todo:
        module = todo.pop()
        for dep in graph[module] - seen:
            seen.add(dep)
            todo.append(dep)
    assert "fasbench.cli" not in seen, "fasbench.builtins reaches fasbench.cli through its imports"
