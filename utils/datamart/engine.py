"""Opening the data mart: its URL, one engine per URL and process, and its schema brought to the newest revision.

Any SQLAlchemy URL works (``$CREDIT_DATAMART_URL``, e.g. ``postgresql+psycopg://...``); the default is a SQLite
file in the working directory, opened in WAL mode with a busy timeout so that several server processes can write
at once without losing a record.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils import config
from utils.datamart import migrations

#: Environment variable holding the data mart's SQLAlchemy URL.
DATAMART_URL_ENV = "CREDIT_DATAMART_URL"
#: How long a SQLite writer waits for another one to finish, in seconds.
SQLITE_BUSY_TIMEOUT = 30.0


def datamart_url(work: str | os.PathLike | None = None) -> str:
    """The data mart URL: ``$CREDIT_DATAMART_URL``, else a SQLite file in the working directory."""
    return os.environ.get(DATAMART_URL_ENV) or f"sqlite:///{config.layout(work).datamart}"


def new_id() -> str:
    """A new record id: a UUID in the version 7 layout (milliseconds since 1970 first, then random bits).

    Ids sort by time, so that inserts into the id index stay at its end instead of touching random pages.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | 0x7 << 76  # version 7
    value = (value & ~(0x3 << 62)) | 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor it them
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash of the app loses no commit
    cursor.close()


@functools.lru_cache(maxsize=32)
def _engine(url: str) -> Engine:
    compact = functools.partial(json.dumps, separators=(",", ":"))
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT} if url.startswith("sqlite") else {}  # the busy timeout
    engine = sa.create_engine(url, json_serializer=compact, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    migrations.upgrade(engine)
    return engine


def connect(url: str | None = None, *, work: str | os.PathLike | None = None) -> Engine:
    """The engine of the data mart at ``url`` (default :func:`datamart_url`), its schema at the newest revision.

    Engines are shared per URL within a process; the first call in a process upgrades an older data mart.

    Raises:
        migrations.SchemaError: the data mart was made by a newer version of this code.
    """
    return _engine(url or datamart_url(work))


def check(engine: Engine) -> None:
    """Raise when the data mart cannot be reached (a cheap query, for readiness checks)."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
