"""The one place that resolves the project's paths."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DATA_DIR = PROJECT_ROOT / "data"
BUNDLED_DATA = DATA_DIR / "german_credit.csv"

#: Environment variable that moves the working directory (all generated artifacts).
WORK_DIR_ENV = "CREDIT_WORKDIR"


def work_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve and create the working directory.

    Order: the explicit ``path``, then ``$CREDIT_WORKDIR``, then ``<project>/work``.
    """
    chosen = path or os.environ.get(WORK_DIR_ENV) or PROJECT_ROOT / "work"
    resolved = Path(chosen).expanduser().resolve()
    resolved.mkdir(parents=True, exist_ok=True)
    return resolved


def in_work_dir(work: Path, relative: str | os.PathLike) -> Path:
    """Resolve a path given relative to the working directory (absolute paths pass through)."""
    path = Path(relative).expanduser()
    return path if path.is_absolute() else work / path


def relative_to_work(work: Path, path: Path) -> str:
    """Express ``path`` relative to the working directory, for portable step outputs."""
    try:
        return Path(path).resolve().relative_to(work).as_posix()
    except ValueError:
        return str(path)
