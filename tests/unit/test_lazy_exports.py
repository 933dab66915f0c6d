"""The packages that export their parts lazily (:mod:`utils.lazy`) export what they name, as eager imports did: the
mapping, ``__all__`` and the imports type checkers read agree, every name resolves, and ``dir()`` lists them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[2] / "utils"
LAZY_PACKAGES = sorted(
    f"utils.{path.parent.name}" for path in UTILS.glob("*/__init__.py") if "lazy_exports(" in path.read_text()
)


def _type_checking_imports(package: str) -> dict[str, str]:
    """Name -> module of the imports under ``if TYPE_CHECKING:`` in the package's ``__init__``."""
    tree = ast.parse((UTILS / package.split(".")[1] / "__init__.py").read_text())
    blocks = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    return {
        alias.asname or alias.name: node.module
        for block in blocks
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_the_packages_with_parts_export_lazily():
    assert {"utils.batch", "utils.checks", "utils.datamart", "utils.lifecycle", "utils.monitoring"} <= set(
        LAZY_PACKAGES
    )


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_lazy_package_exports_every_name_it_maps(package):
    module = importlib.import_module(package)
    exports = vars(module)["_EXPORTS"]
    assert sorted(module.__all__) == sorted(exports), "__all__ and _EXPORTS name the same objects"
    assert _type_checking_imports(package) == exports, "the TYPE_CHECKING imports match _EXPORTS"
    for name, source in exports.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name)
    assert set(exports) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_an_exported_function_keeps_its_name_when_its_module_of_that_name_loads():
    importlib.import_module("utils.checks.convergence")
    importlib.import_module("utils.lifecycle.monitor_config")
    from utils.checks import convergence
    from utils.lifecycle import monitor_config

    assert callable(convergence) and convergence.__module__ == "utils.checks.convergence"
    assert callable(monitor_config) and monitor_config.__module__ == "utils.lifecycle.monitor_config"
