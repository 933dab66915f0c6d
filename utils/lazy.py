"""Lazy package exports (PEP 562): a package names each public object and the module defining it, and imports that
module when the name is first used.

So ``python -m utils.batch --help`` runs ``utils/batch/__init__.py`` without importing scikit-learn, skops, aif360
or alibi-detect, while ``from utils.batch import run_batch_job`` works as before. A package's ``__init__`` holds one
mapping, ``_EXPORTS`` (name -> module, sorted), the same names in ``__all__``, and the same imports under
``if TYPE_CHECKING:`` for editors and type checkers (``tests/unit/test_lazy_exports.py`` checks the three agree)::

    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from types import ModuleType


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``, which exports each name of ``exports`` from the
    module it maps to, imported on first use (and then kept in the package's namespace)."""

    class LazyPackage(ModuleType):
        def __setattr__(self, name: str, value: object) -> None:
            # Loading a submodule binds it in its package (``utils.checks.convergence``, the module); an exported
            # object of the same name (the function ``convergence``) keeps the name, as when the package imported
            # its parts eagerly.
            if isinstance(value, ModuleType) and exports.get(name) == value.__name__ == f"{package}.{name}":
                value = getattr(value, name)
            super().__setattr__(name, value)

    sys.modules[package].__class__ = LazyPackage

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
