"""Checks that the running environment is the one the workshop pins."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from utils.config import PROJECT_ROOT

REQUIRED_PYTHON = (3, 11)


def pinned_versions(lock_file: str | Path = PROJECT_ROOT / "requirements.lock") -> dict[str, str]:
    """``name: version`` for every ``name==version`` line of a lock file."""
    pins = {}
    for line in Path(lock_file).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def version_mismatches(pins: dict[str, str]) -> pd.DataFrame:
    """Pinned packages that are missing or installed at another version (empty when all match)."""
    rows = []
    for name, wanted in sorted(pins.items(), key=lambda item: _normalise(item[0])):
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = None
        if found != wanted:
            rows.append({"package": name, "pinned": wanted, "installed": found or "missing"})
    return pd.DataFrame(rows, columns=["package", "pinned", "installed"])


def python_ok(version: tuple[int, ...] = tuple(sys.version_info[:2])) -> bool:
    """True when running on the Python version the lock was made for."""
    return tuple(version[:2]) == REQUIRED_PYTHON
