"""Schema migrations of the data mart, with Alembic: each change of the tables is a revision in ``versions/``.

:func:`upgrade` brings a data mart to the newest revision. It runs when a process first connects (the service,
the pipeline and the command lines), under a lock, so that several processes starting at once migrate only once:
SQLite's write lock (``BEGIN IMMEDIATE``), or a transaction-level advisory lock on PostgreSQL. A data mart made
before migrations existed holds the first revision's tables without Alembic's version table; it is stamped with
the first revision, then upgraded. A data mart at a revision this code does not know was made by newer code, and
is refused rather than touched.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

#: The revision that holds the tables of the data marts made before migrations.
FIRST_REVISION = "0001"
_POSTGRES_LOCK_KEY = 0x63726564  # any constant shared by every process of this project ("cred")


class SchemaError(RuntimeError):
    """A data mart whose schema this code cannot work with (made by a newer version)."""


def _config(connection: Connection | None = None) -> Config:
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(Path(__file__).parent))
    alembic_config.attributes["connection"] = connection
    return alembic_config


def head() -> str:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    """The data mart's revision (None: not under migrations yet, or empty)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _check_known(revision: str | None, url) -> None:
    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    if revision is not None and revision not in known:
        raise SchemaError(
            f"the data mart at {url!r} is at schema revision {revision!r}, which this code does not know "
            f"(its newest is {head()!r}): it was made by a newer version of the workshop; update the code "
            "or point $CREDIT_DATAMART_URL at another data mart"
        )


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, held until the commit
    elif connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_LOCK_KEY})


def upgrade(engine: Engine) -> str:
    """Bring the data mart to the newest revision; returns it.

    Raises:
        SchemaError: the data mart is at a revision this code does not know.
    """
    newest = head()
    revision = current(engine)
    _check_known(revision, engine.url.render_as_string(hide_password=True))
    if revision == newest:
        return newest
    with engine.connect() as connection:
        _lock(connection)
        revision = MigrationContext.configure(connection).get_current_revision()  # another process may have won
        if revision is None and sa.inspect(connection).has_table("deployments"):
            command.stamp(_config(connection), FIRST_REVISION)  # made before migrations: it has the first tables
        command.upgrade(_config(connection), "head")
        connection.commit()
    return newest
