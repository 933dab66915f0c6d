"""Opening the data mart: its URL, one engine per URL and process, and its schema brought to the newest revision.

Any SQLAlchemy URL works (``$CREDIT_DATAMART_URL``, e.g. ``postgresql+psycopg://...``); the default is a SQLite
file in the working directory, opened in WAL mode with a busy timeout so that several server processes can write
at once without losing a record.

A SQLite data mart is a file that can be deleted or replaced under a running process: its open connections go on
reading and writing the unlinked file, and every record written there is lost. So the engine remembers the
file's identity (device and inode) when it is made, and :func:`check_identity` (a cheap ``os.stat``) raises
:class:`DatamartUnavailable` once the path no longer names that file; the service calls it before it
acknowledges a write and in its readiness check. Such a process must be restarted.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import threading
import time
import weakref
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils import config
from utils.datamart import migrations, schema

#: Environment variable holding the data mart's SQLAlchemy URL.
DATAMART_URL_ENV = config.DATAMART_URL_ENV
#: How long a SQLite writer waits for another one to finish, in seconds.
SQLITE_BUSY_TIMEOUT = 30.0

#: The SQLite file each engine made by :func:`connect` opened: its absolute path, device and inode.
_FILES: weakref.WeakKeyDictionary[Engine, tuple[str, int, int]] = weakref.WeakKeyDictionary()


class DatamartUnavailable(RuntimeError):
    """The data mart cannot be used by this process any more (its SQLite file was removed or replaced)."""


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
    digits = f"{value:032x}"  # as str(uuid.UUID(int=value)) spells it, without its checks (a third of the time)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


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
        if (path := sqlite_file(engine)) is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    migrations.upgrade(engine)
    _remember_file(engine)
    return engine


def sqlite_file(engine: Engine) -> str | None:
    """The absolute path of a SQLite engine's database file (None: another database, or in memory)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)


_TURN_POLL_SECONDS = 0.0002


class _TurnFile:
    """A process's open lock file of one SQLite data mart, and the thread lock that gives its turn to one thread at
    a time (``flock`` excludes other open files, not the threads sharing this one). Opening the file once rather
    than per transaction saves a scoring request about a tenth of its data mart time."""

    def __init__(self, path: str):
        self.path = path
        self.threads = threading.Lock()
        self.pid = os.getpid()
        self.file = None
        self.immediate = threading.local()  # each thread's connection of immediate_connection()

    def opened(self):
        """The lock file, opened on first use (None when it cannot be: say a read-only folder)."""
        if self.file is None:
            try:
                self.file = open(f"{self.path}.writer", "a")  # noqa: SIM115 (closed with this object, below)
            except OSError:
                return None
            weakref.finalize(self, self.file.close)  # when its engine is gone, or at exit
        return self.file


#: Each SQLite engine's :class:`_TurnFile` in this process.
_TURNS: weakref.WeakKeyDictionary[Engine, _TurnFile] = weakref.WeakKeyDictionary()


def _turn_file(engine: Engine) -> _TurnFile | None:
    path = sqlite_file(engine)
    if path is None:
        return None
    turn = _TURNS.get(engine)
    if turn is None or turn.pid != os.getpid():  # a forked child opens its own file
        turn = _TURNS[engine] = _TurnFile(path)
    return turn


@contextlib.contextmanager
def writers_in_turn(engine: Engine):
    """Hold the data mart's writer turn across processes and threads: on a SQLite file, an exclusive ``flock`` of a
    lock file beside it (``<file>.writer``, kept open by the process) and a lock of the threads sharing it;
    elsewhere nothing (the database queues its writers itself).

    SQLite makes a writer that finds the file locked retry after sleeping (1, 2, 5, 10 ms ...); a writer waiting
    for the turn tries again every fifth of a millisecond, so it starts soon after the other process's transaction
    ends, and meanwhile more records queue up for its next group commit. After :data:`SQLITE_BUSY_TIMEOUT` it goes
    ahead without the turn, and SQLite's busy timeout decides.
    """
    turn = _turn_file(engine)
    if turn is None:
        yield
        return
    with turn.threads:
        lock = turn.opened()
        if lock is None:  # SQLite's locking alone, and its error if it cannot write either
            yield
            return
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT  # a holder that hangs: SQLite's own timeout decides
        while not (held := _took_turn(lock)) and time.monotonic() < deadline:
            time.sleep(_TURN_POLL_SECONDS)
        try:
            yield
        finally:
            if held:
                fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def writers_turn_if_free(engine: Engine):
    """Take the writer turn of a SQLite data mart (see :func:`writers_in_turn`) only if no thread or process holds
    it, without waiting; yields whether it was taken (never on other databases)."""
    turn = _turn_file(engine)
    lock = turn.opened() if turn is not None else None
    if lock is None or not turn.threads.acquire(blocking=False):
        yield False
        return
    try:
        if not _took_turn(lock):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        turn.threads.release()


def immediate_connection(engine: Engine):
    """This thread's own driver connection to a SQLite data mart for writes that must never wait (None for other
    databases): its busy timeout is zero, so a write that finds the file locked fails at once, and it never
    checkpoints the write-ahead log (a checkpoint writes the database file and waits for the disk); the pool's
    connections do, when a commit of theirs finds the log past SQLite's 1,000 pages."""
    turn = _turn_file(engine)
    if turn is None:
        return None
    connection = getattr(turn.immediate, "connection", None)
    if connection is None:
        connection = engine.raw_connection()
        connection.detach()  # out of the pool: this thread's for the process's life
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 0")
        cursor.execute("PRAGMA wal_autocheckpoint = 0")
        cursor.close()
        turn.immediate.connection = connection
    return connection


def forget_immediate_connection(engine: Engine) -> None:
    """Close this thread's :func:`immediate_connection` (after an error: the next write opens another)."""
    turn = _turn_file(engine)
    connection = getattr(turn.immediate, "connection", None) if turn is not None else None
    if connection is not None:
        turn.immediate.connection = None
        with contextlib.suppress(Exception):
            connection.close()


def _took_turn(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _remember_file(engine: Engine) -> None:
    """Remember the file's identity, and check it when each transaction begins and before it commits: a record
    is never acknowledged into a file that was removed or replaced under the process."""
    path = sqlite_file(engine)
    if path is not None:
        found = os.stat(path)
        _FILES[engine] = (path, found.st_dev, found.st_ino)
        for event in ("begin", "commit"):
            sa.event.listen(engine, event, lambda connection: check_identity(connection.engine))


def connect(url: str | None = None, *, work: str | os.PathLike | None = None) -> Engine:
    """The engine of the data mart at ``url`` (default :func:`datamart_url`), its schema at the newest revision.

    Engines are shared per URL within a process; the first call in a process upgrades an older data mart.

    Raises:
        migrations.SchemaError: the data mart was made by a newer version of this code.
    """
    return _engine(url or datamart_url(work))


def check_identity(engine: Engine) -> None:
    """Raise :class:`DatamartUnavailable` when the SQLite file ``engine`` opened was removed or replaced.

    A cheap ``os.stat``; nothing for other databases, or for engines not made by :func:`connect`.
    """
    known = _FILES.get(engine)
    if known is None:
        return
    path, device, inode = known
    try:
        found = os.stat(path)
    except OSError:
        found = None
    if found is None or (found.st_dev, found.st_ino) != (device, inode):
        raise DatamartUnavailable(
            "the data mart's file was removed or replaced while this process ran; records written now "
            "would be lost, so nothing is stored: restore the file or restart the service"
        )


def check(engine: Engine) -> None:
    """Raise when the data mart cannot be reached or written (cheap, for readiness checks).

    The write probe is a delete of no row in a transaction that is rolled back: it fails on a read-only file, disk
    or database and stores nothing. Another writer holding SQLite's lock is no fault (writes wait their turn), so
    the probe does not wait for it.

    Raises:
        DatamartUnavailable: its SQLite file was removed or replaced (see :func:`check_identity`), or the data
            mart can be read but not written.
        sqlalchemy.exc.SQLAlchemyError: the database does not answer.
    """
    check_identity(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA busy_timeout = 0")
        try:
            connection.execute(sa.delete(schema.deployments).where(sa.false()))
        except sa.exc.DBAPIError as error:
            if getattr(error.orig, "sqlite_errorname", None) != "SQLITE_BUSY":
                raise DatamartUnavailable(f"the data mart cannot be written: {type(error.orig).__name__}") from None
        finally:
            connection.rollback()
            if sqlite:
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
