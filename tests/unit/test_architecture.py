"""The shape of ``utils``: a stack without import loops, small modules and functions, storage behind one door,
and one spelling of the decision rule and of UTC time."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[2] / "utils"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(UTILS.rglob("*.py")):
        parts = path.relative_to(UTILS.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), filename=str(path))
    return found


MODULES = _modules()


def _imports(name: str, tree: ast.Module) -> set[str]:
    """The ``utils`` modules that ``name`` imports (a package's own ``__init__`` imports its parts)."""
    package = name if name in {n.rsplit(".", 1)[0] for n in MODULES if "." in n} and _is_package(name) else None
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names}
    return {t for t in targets if t in MODULES and t != name and t != package}


def _is_package(name: str) -> bool:
    return (UTILS.parent / name.replace(".", "/") / "__init__.py").exists()


def _top(name: str) -> str:
    """The floor a module belongs to: ``utils.batch.jobs`` -> ``utils.batch``; ``utils.scoring`` stays."""
    return ".".join(name.split(".")[:2])


def test_modules_import_each_other_without_loops():
    graph = {name: _imports(name, tree) for name, tree in MODULES.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        pytest.fail(f"import loop: {' -> '.join(error.args[1])}")


def test_floors_stack_without_upward_imports():
    """Collapsed to their top-level package or module, the imports still form a stack (no two floors import each
    other, directly or around a loop)."""
    graph: dict[str, set[str]] = {}
    for name, tree in MODULES.items():
        graph.setdefault(_top(name), set()).update(_top(t) for t in _imports(name, tree) if _top(t) != _top(name))
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        pytest.fail(f"floors import each other: {' -> '.join(error.args[1])}")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_small(name):
    tree = MODULES[name]
    lines = max((getattr(node, "end_lineno", 0) or 0) for node in ast.walk(tree))
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def _outside(package: str) -> dict[str, ast.Module]:
    return {name: tree for name, tree in MODULES.items() if not name.startswith(package)}


def test_only_the_data_mart_touches_its_tables():
    """Outside ``utils.datamart``, SQLAlchemy appears only for its exception classes and the Engine type."""
    for name, tree in _outside("utils.datamart").items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sqlalchemy"):
                assert node.module in {"sqlalchemy.engine", "sqlalchemy.exc"}, f"{name} imports {node.module}"
                assert node.module != "sqlalchemy.engine" or {a.name for a in node.names} == {"Engine"}, name
            if isinstance(node, ast.ImportFrom) and node.module == "utils.datamart.schema":
                pytest.fail(f"{name} imports the data mart's tables")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sa":
                assert node.attr == "exc", f"{name} uses sqlalchemy.{node.attr} (line {node.lineno})"


def test_the_decision_threshold_is_spelled_once():
    for name, tree in _outside("utils.decision").items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                constants = [c.value for c in operands if isinstance(c, ast.Constant)]
                assert 0.5 not in constants, f"{name} compares with 0.5 (line {node.lineno}): use utils.decision"


def test_utc_conversion_is_spelled_once():
    for name, tree in _outside("utils.times").items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            dropping = [ast.unparse(a) for a in node.args] == ["None"]  # a naive copy for display is no conversion
            if node.func.attr in {"tz_localize", "tz_convert", "astimezone"} and not dropping:
                pytest.fail(f"{name} converts time zones itself (line {node.lineno}): use utils.times")
            if node.func.attr in {"now", "utcnow"}:
                pytest.fail(f"{name} reads the clock itself (line {node.lineno}): use utils.times.utc_now")
