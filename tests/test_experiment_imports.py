"""The modules that run an experiment's cells import each other without a cycle.

Every import statement counts: at the top of a module, under ``if TYPE_CHECKING:`` and
inside functions. A function-local import hides a cycle from the interpreter, not from
the reader: the modules still cannot be understood, tested or replaced one at a time.
The graph is followed from the four core modules to every ``experiments`` module they
reach. The registry imports the experiments by computed name
(``importlib.import_module(f"experiments.{name}")``): the modules of its ``NAMES`` count
as its imports, since :func:`experiments.execution.cell_frame` loads them through it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "experiments"
CORE = (
    "experiments.framework",
    "experiments.execution",
    "experiments.dask_backend",
    "experiments.dask_grid",
)


def _is_module(name: str) -> bool:
    """Whether ``name`` (``experiments.x``) is a module of the package."""
    parts = name.split(".")
    return parts[0] == "experiments" and len(parts) == 2 and (PACKAGE / f"{parts[1]}.py").is_file()


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement may load: ``from experiments import storage``
    loads the module ``experiments.storage``, ``from experiments.storage import x`` too."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative to the package: this test covers one flat package
        base = ".".join(filter(None, ["experiments", base]))
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def imports_of(module: str) -> set[str]:
    """The ``experiments`` modules that ``module`` imports anywhere in its source."""
    path = PACKAGE / f"{module.split('.')[1]}.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in _imported(node)
    }
    if module == "experiments.registry":
        found |= {f"experiments.{name}" for name in _registered(tree)}
    return {name for name in found if _is_module(name) and name != module}


def _registered(tree: ast.Module) -> tuple[str, ...]:
    """The experiment names of the registry's ``NAMES = (...)``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "NAMES" for target in node.targets
        ):
            names: tuple[str, ...] = ast.literal_eval(node.value)
            return names
    raise AssertionError("experiments/registry.py has no NAMES = (...)")


def import_graph(roots: tuple[str, ...]) -> dict[str, set[str]]:
    """Each module reachable from ``roots`` and the package modules it imports."""
    graph: dict[str, set[str]] = {}
    waiting = list(roots)
    while waiting:
        module = waiting.pop()
        if module not in graph:
            graph[module] = imports_of(module)
            waiting.extend(graph[module])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            cycle = visit(imported, [*path, module])
            if cycle:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return None


def test_the_core_modules_import_no_cycle() -> None:
    graph = import_graph(CORE)
    assert set(CORE) | {"experiments.registry", "experiments.theory"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_finds_cycles_of_every_kind_of_import() -> None:
    """The parser sees a TYPE_CHECKING import and a function-local one."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from experiments.execution import run_cells\n"
        "def f() -> None:\n    from experiments import storage\n"
    )
    names = {
        name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in _imported(node)
    }
    assert {"experiments.execution", "experiments.storage"} <= names
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
