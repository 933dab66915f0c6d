"""The one place that resolves the project's paths, and the layout of the working directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DATA_DIR = PROJECT_ROOT / "data"
BUNDLED_DATA = DATA_DIR / "german_credit.csv"

#: Environment variable that moves the working directory (all generated artifacts).
WORK_DIR_ENV = "CREDIT_WORKDIR"
#: Where the scoring service serves the insights dashboard.
DASHBOARD_PATH = "/dashboard"
#: How every command line describes its ``--work-dir`` option.
WORK_DIR_HELP = f"working directory (default: ${WORK_DIR_ENV}, else work/ at the project root)"
#: Environment variable holding the data mart's SQLAlchemy URL (default: SQLite in the working directory).
DATAMART_URL_ENV = "CREDIT_DATAMART_URL"


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


class MissingInputError(FileNotFoundError):
    """A file or folder that a step reads is not there: the message says where it was looked for, and what makes it."""


def require_input(path: str | os.PathLike, made_by: str | None = None, *, work: Path | None = None) -> Path:
    """``path`` when it exists, else :class:`MissingInputError` naming it and ``made_by`` (the step that writes it).

    A relative ``path`` is taken relative to ``work`` (a working directory) when given, else to the current
    directory, and the message names that folder: a notebook run from another folder says where it looked.
    """
    given = Path(path).expanduser()
    base = work if work is not None else Path.cwd()
    found = in_work_dir(base, given)
    if found.exists():
        return found
    folder = "the working directory" if work is not None else "the current directory"
    where = "" if given.is_absolute() else f" in {folder} {base}"
    hint = f"; {made_by} makes it: run that first, with the same working directory" if made_by else ""
    raise MissingInputError(f"{given}: no such file or folder{where}{hint}")


@dataclass(frozen=True)
class WorkLayout:
    """Where each kind of artifact lives in a working directory; every module and notebook asks here."""

    root: Path

    def resolve(self, relative: str | os.PathLike) -> Path:
        """A path given relative to the working directory (absolute paths pass through)."""
        return in_work_dir(self.root, relative)

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to the working directory, for portable step outputs."""
        return relative_to_work(self.root, Path(path))

    def require(self, relative: str | os.PathLike, made_by: str | None = None) -> Path:
        """An input given relative to the working directory that must exist (see :func:`require_input`)."""
        return require_input(relative, made_by, work=self.root)

    @property
    def schema(self) -> Path:
        return self.root / "schema.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def train(self) -> Path:
        return self.data / "train.csv"

    @property
    def test(self) -> Path:
        return self.data / "test.csv"

    @property
    def preprocessor(self) -> Path:
        return self.root / "features" / "preprocessor.skops"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def datamart(self) -> Path:
        return self.root / "datamart.sqlite"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def batch(self) -> Path:
        return self.root / "batch"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def retraining(self) -> Path:
        return self.root / "retraining"

    @property
    def runs(self) -> Path:
        return self.root / "runs"


def layout(path: str | os.PathLike | None = None) -> WorkLayout:
    """The layout of the working directory that :func:`work_dir` resolves ``path`` to."""
    return WorkLayout(work_dir(path))


def dashboard_url(service: str, deployment_id: str | None = None) -> str:
    """The dashboard's address at the scoring service ``service`` (``http://127.0.0.1:8000``): the overview, or
    the page of one deployment."""
    path = f"{DASHBOARD_PATH}/deployments/{deployment_id}" if deployment_id else DASHBOARD_PATH
    return service.rstrip("/") + path
