"""The payload journal of a SQLite data mart: scored records made durable by one append, ingested soon after.

A scoring request's records must be durable before it is answered 200. A SQLite transaction per request cost the
service a third of its CPU for a one-record request; an append to a file costs a fraction of that. So on a SQLite
file data mart, the service appends each request's records to a journal beside the file, and the records are
inserted into ``payload_records`` in batches, in the writers' turn, soon after (:func:`drain`).

**Files.** ``<data mart file>.journal/`` holds one file per writing process, named by its process id and random
hex (``<pid>-<hex>.journal``, never from anything a client sends). The process opens it once (``O_APPEND``) and
holds a shared ``flock`` on it for its life, so a drainer tells a live writer from a dead one with a non-blocking
exclusive ``flock``; past :data:`ROTATE_BYTES` the writer moves to a new file.

**Frames.** Each append is one frame, written with one ``os.write``: a header of :data:`HEADER` (the magic
``PJ``, the frame format :data:`FORMAT`, the ``marshal`` version, the CRC-32 of the INSERT the rows are for, the
payload's length and its CRC-32), then the rows, ``marshal``-encoded: a list of the driver's parameter rows of
``payload_records`` (:func:`~utils.datamart.records.payload_driver_rows`), so that ingesting them takes no Python
work per row. ``marshal`` is the fastest encoding of such lists (strings, numbers, bytes, None) that Python has;
it is not meant for data from others, and reads only the journal's own files, written by this code beside the data
mart and checked by their CRC. A frame of another format, ``marshal``
version or table layout is refused with :class:`JournalVersionError`, never guessed at.

**Durability** is SQLite's with ``synchronous=NORMAL``, which the data mart runs: when the 200 is sent, the frame
is in the operating system's page cache, so the crash or kill of any process loses no acknowledged record; a power
loss or an operating-system crash may lose the last moments' frames, as it may lose SQLite's last commits.

**Ingestion.** :func:`drain` reads each file from the offset recorded in ``payload_journal_offsets`` (revision
0008), inserts the complete frames' rows (:func:`~utils.datamart.records.in_statements`) and records the new
offsets in the same transaction, so that a crash at any moment neither loses nor repeats a record (a record
already stored is skipped besides). An incomplete last frame is left for later (a reader may see a write half
copied). Once a file is fully ingested and its writer gone, it is removed and its row with it; a dead writer's
unreadable tail (say, torn by a power loss) is logged and skipped. Who drains: the service's drainer thread
(:mod:`utils.serving.payload_writer`), within a fifth of a second after its journal grew, and at shutdown; and any
process before it reads the data mart through an engine of :func:`connect` (read-your-writes: the ``begin`` event of
every transaction looks for journal bytes not yet known to be ingested) or :func:`~utils.datamart.columnar.read_window`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import secrets
import struct
import threading
import weakref
import zlib
from collections.abc import Callable, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.engine import DatamartUnavailable, check_identity, sqlite_file, writers_in_turn
from utils.datamart.engine import connect as engine_of
from utils.datamart.records import in_statements, payload_driver_rows

#: A frame's header: magic, frame format, marshal version, layout (CRC-32 of the INSERT), payload length and CRC-32.
HEADER = struct.Struct("<2sBBIII")
MAGIC, FORMAT = b"PJ", 1
#: A writer moves to a new file once its file holds this many bytes.
ROTATE_BYTES = 64 * 1024 * 1024
#: Most journal bytes one ingesting transaction takes (a drain takes as many transactions as it needs).
DRAIN_BYTES = 16 * 1024 * 1024
_SUFFIX = ".journal"
_LOG = logging.getLogger(__name__)

_SELECT_OFFSETS = "SELECT file_name, ingested_bytes FROM payload_journal_offsets"
_SET_OFFSET = (
    "INSERT INTO payload_journal_offsets (file_name, ingested_bytes) VALUES (?, ?) "
    "ON CONFLICT (file_name) DO UPDATE SET ingested_bytes = excluded.ingested_bytes"
)
_FORGET_FILE = "DELETE FROM payload_journal_offsets WHERE file_name = ?"
#: A record already stored is not stored again (say, journal files left beside a data mart restored from a backup).
_ONCE = " ON CONFLICT (transaction_id) DO NOTHING"


class JournalVersionError(RuntimeError):
    """A journal frame written by another version of this code (frame format, ``marshal`` or table layout)."""


def journal_folder(engine: Engine) -> str | None:
    """The journal folder of a SQLite file data mart (None: another database, or in memory: no journal)."""
    path = sqlite_file(engine)
    return None if path is None else f"{path}{_SUFFIX}"


def _layout(dialect) -> int:
    """The CRC-32 of the INSERT whose parameters a frame holds: a frame for other columns is refused."""
    return zlib.crc32(payload_driver_rows(dialect, [])[0].encode())


def encode(rows: list, layout: int) -> bytes:
    """One frame of driver parameter rows for the INSERT of CRC-32 ``layout`` (see the module's docstring)."""
    payload = marshal.dumps(rows)
    return HEADER.pack(MAGIC, FORMAT, marshal.version, layout, len(payload), zlib.crc32(payload)) + payload


class JournalClosed(OSError):
    """The service is stopping: its journal takes no more records."""


class _Writer:
    """A process's open journal file, moved to a new one past :data:`ROTATE_BYTES` or after a failed write."""

    def __init__(self, folder: str, layout: int):
        self.folder, self.layout, self.pid = folder, layout, os.getpid()
        self.lock = threading.Lock()
        self.closed = False
        self.fd: int | None = None
        self.size = 0  # bytes in the open file
        self.written = 0  # bytes appended by this writer, in all its files

    def append(self, frame: bytes) -> None:
        with self.lock:
            if self.closed:
                raise JournalClosed("the payload journal is closed: the service is stopping")
            if self.fd is None or self.size >= ROTATE_BYTES:
                self._open()
            try:
                written = os.write(self.fd, frame)
            except OSError:
                self.close_file()  # what it may have written is a torn tail, skipped once the file is ownerless
                raise
            if written != len(frame):
                self.close_file()
                raise OSError(f"the payload journal took {written} of {len(frame)} bytes (disk full?)")
            self.size += written
            self.written += written

    def _open(self) -> None:
        """A new file, locked before it takes its name: a drainer never sees it without its writer's lock."""
        self.close_file()
        os.makedirs(self.folder, exist_ok=True)
        name = f"{self.pid}-{secrets.token_hex(8)}"
        opening = os.path.join(self.folder, f".{name}.new")
        fd = os.open(opening, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.rename(opening, os.path.join(self.folder, f"{name}{_SUFFIX}"))
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.size = fd, 0

    def close_file(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # the lock goes with it: the file is a dead writer's, ingested and removed


#: Each engine's journal writer in this process; what this process knows each journal file is ingested up to; who
#: is told how many frames (requests) each ingesting transaction took.
_WRITERS: weakref.WeakKeyDictionary[Engine, _Writer] = weakref.WeakKeyDictionary()
_KNOWN: weakref.WeakKeyDictionary[Engine, dict[str, int]] = weakref.WeakKeyDictionary()
_ON_DRAIN: weakref.WeakKeyDictionary[Engine, Callable[[int], None]] = weakref.WeakKeyDictionary()
_DRAINING = threading.local()
_SHARED = threading.Lock()


def _writer(engine: Engine) -> _Writer:
    writer = _WRITERS.get(engine)
    if writer is None or writer.pid != os.getpid():  # a forked child writes a file of its own
        with _SHARED:
            writer = _WRITERS[engine] = _Writer(journal_folder(engine), _layout(engine.dialect))
    return writer


def append(engine: Engine, records: Iterable[Mapping]) -> int:
    """Append scored records (as :func:`~utils.datamart.records.insert_payload` takes them) to the journal of a
    SQLite file data mart, durable as a commit with ``synchronous=NORMAL`` once this returns; returns how many.

    Raises:
        DatamartUnavailable: the data mart's file was removed or replaced (nothing was appended).
        OSError: the journal cannot be written (say, a full disk or a read-only folder; nothing was appended).
        ValueError: a record holds a value ``marshal`` cannot encode (nothing was appended).
    """
    _, rows = payload_driver_rows(engine.dialect, records)
    if not rows:
        return 0
    check_identity(engine)  # a record is never acknowledged for a file that is gone
    writer = _writer(engine)
    writer.append(encode(rows, writer.layout))
    return len(rows)


def tell_drains(engine: Engine, on_drain: Callable[[int], None]) -> None:
    """Have ``on_drain`` told how many frames (requests) each ingesting transaction of ``engine``'s journal took in
    this process (the service's metric of requests sharing a commit)."""
    _ON_DRAIN[engine] = on_drain


def appended_bytes(engine: Engine) -> int:
    """How many journal bytes this process has appended for ``engine``."""
    writer = _WRITERS.get(engine)
    return 0 if writer is None or writer.pid != os.getpid() else writer.written


def close_journal(engine: Engine, *, final: bool = False) -> None:
    """Close this process's journal file of ``engine``, so that the next drain ingests it and removes it; a later
    append opens a new one, unless ``final`` (then it raises :class:`JournalClosed` until :func:`open_journal`)."""
    writer = _writer(engine)
    with writer.lock:
        writer.close_file()
        writer.closed = final


def open_journal(engine: Engine) -> None:
    """Let this process append to the journal of ``engine`` again, after a final :func:`close_journal`."""
    writer = _writer(engine)
    with writer.lock:
        writer.closed = False


def _names(folder: str) -> dict[str, int]:
    """The journal files of ``folder`` and their sizes (none when the folder does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return {e.name: e.stat().st_size for e in entries if e.name.endswith(_SUFFIX)}
    except FileNotFoundError:
        return {}


def behind(engine: Engine) -> bool:
    """Whether a journal file of ``engine`` holds bytes this process does not know to be ingested (a scan of the
    folder and a ``stat`` per file: a few microseconds)."""
    folder = journal_folder(engine)
    if folder is None:
        return False
    known = _KNOWN.get(engine, {})
    return any(size > known.get(name, 0) for name, size in _names(folder).items())


def _frames(data: memoryview, layout: int) -> tuple[list, int, int, str | None]:
    """The rows of the complete frames at the start of ``data``, the bytes and the number of those frames, and what
    stopped the reading before an incomplete frame or the end (None: nothing)."""
    rows, at, frames = [], 0, 0
    while len(data) - at >= HEADER.size:
        magic, form, version, written_for, length, crc = HEADER.unpack_from(data, at)
        if magic != MAGIC:
            return rows, at, frames, "no frame"
        if (form, version, written_for) != (FORMAT, marshal.version, layout):
            raise JournalVersionError(
                f"a payload journal frame of format {form}, marshal version {version} and layout {written_for:#x} "
                f"cannot be read by this code (format {FORMAT}, marshal {marshal.version}, layout {layout:#x}): it "
                "was written by another version of the workshop; ingest it with that version, or move the file away"
            )
        end = at + HEADER.size + length
        if end > len(data):
            break
        payload = data[at + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return rows, at, frames, "a CRC mismatch"
        rows.extend(marshal.loads(payload))
        at, frames = end, frames + 1
    return rows, at, frames, None


def _owner_gone(fd: int) -> bool:
    """Whether no process holds a journal file open for writing (its writer's shared lock is gone)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True  # the lock goes when the file is closed


def _take(path: str, offset: int, budget: int, layout: int) -> tuple[list, int, int, str]:
    """The rows of the complete frames of a journal file from ``offset`` (at most ``budget`` bytes read), where
    ingestion then stands, the number of frames, and the file's state: ``live`` (its writer holds it), ``done``
    (fully ingested before, its writer gone: to be removed) or ``ending`` (its writer gone: removed once done)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        gone = _owner_gone(fd)  # before the size: a file whose writer is gone grows no more
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(size - offset, budget), offset) if size > offset else b""
    finally:
        os.close(fd)
    rows, used, frames, problem = _frames(memoryview(data), layout)
    end = offset + used
    if gone and end < size and offset + len(data) >= size:  # the writer will not finish it: a corrupt tail
        what = problem or "an incomplete frame"
        _LOG.warning(
            "payload journal %s: %s at byte %d of %d, its writer gone: the rest is skipped", path, what, end, size
        )
        end = size
    state = "live" if not gone else "done" if not data and offset >= size else "ending"
    return rows, max(end, offset), frames, state


def _drain_once(engine: Engine, folder: str, files: list[str]) -> tuple[int, bool]:
    """One ingesting transaction (see the module's docstring); returns how many frames it ingested and whether
    another one has work (a file holds more than one takes, or a file whose writer is gone is now ingested)."""
    statement = payload_driver_rows(engine.dialect, [])[0]
    layout, known = _layout(engine.dialect), _KNOWN.get(engine, {})
    check_identity(engine)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")  # the offsets are read in the transaction that moves them
        offsets = dict(cursor.execute(_SELECT_OFFSETS).fetchall())
        rows, frames, moved, done, budget, more = [], 0, {}, [], DRAIN_BYTES, False
        for name in files:
            try:
                taken, end, count, state = _take(os.path.join(folder, name), offsets.get(name, 0), budget, layout)
            except FileNotFoundError:  # removed since the folder was read (by a drainer that waited past its turn)
                continue
            rows += taken
            frames, budget = frames + count, budget - (end - offsets.get(name, 0))
            if state == "done":
                done.append(name)
            else:
                moved[name] = end
            more = more or state == "ending" or budget <= 0
            if budget <= 0:
                break
        for many, flat in in_statements(connection.driver_connection, statement, rows, _ONCE):
            cursor.execute(many, flat)
        changed = {name: end for name, end in moved.items() if end != offsets.get(name, 0)}
        cursor.executemany(_SET_OFFSET, list(changed.items()))
        forgotten = [name for name in offsets if name in done or not os.path.exists(os.path.join(folder, name))]
        cursor.executemany(_FORGET_FILE, [(name,) for name in forgotten])
        for name in done:  # removed before the commit: a crash between leaves a row naming no file, never a file
            with contextlib.suppress(FileNotFoundError):  # that would be read again from its start
                os.unlink(os.path.join(folder, name))
        check_identity(engine)
        connection.commit()
    except BaseException:
        connection.invalidate()
        raise
    finally:
        connection.close()
    kept = {name: ingested for name, ingested in known.items() if name in files and name not in done}
    _KNOWN[engine] = {**kept, **moved}  # what another process removed is forgotten
    return frames, more


def drain(engine: Engine) -> int:
    """Ingest every journal file of ``engine``'s data mart into ``payload_records``, in the writers' turn, and
    remove the files done (see the module's docstring); returns how many frames (requests) it ingested.

    Raises:
        JournalVersionError: a frame written by another version of this code (nothing of it is ingested).
        DatamartUnavailable: the data mart's file was removed or replaced.
        sqlite3.Error: the data mart cannot be written (nothing of that transaction is ingested).
    """
    folder = journal_folder(engine)
    if folder is None or getattr(_DRAINING, "active", False):
        return 0
    _DRAINING.active, total = True, 0
    try:
        with writers_in_turn(engine):
            while files := sorted(_names(folder)):
                frames, more = _drain_once(engine, folder, files)
                if frames and (tell := _ON_DRAIN.get(engine)) is not None:
                    tell(frames)
                total += frames
                if not more:
                    break
    finally:
        _DRAINING.active = False
    return total


def catch_up(engine: Engine) -> None:
    """Drain the journal if a file of it holds bytes this process does not know to be ingested (:func:`behind`):
    before a read, so that it sees every record acknowledged so far."""
    if not getattr(_DRAINING, "active", False) and behind(engine):
        drain(engine)


@contextlib.contextmanager
def without_catch_up():
    """Reads in this block do not drain the journal first (they never wait for the writers' turn): for reads that
    need no payload record, such as a readiness check or a deployment's lookup while a request is scored."""
    before = getattr(_DRAINING, "active", False)
    _DRAINING.active = True
    try:
        yield
    finally:
        _DRAINING.active = before


def _catch_up_on_begin(connection) -> None:
    """The ``begin`` event of an engine of :func:`connect`: :func:`catch_up`, a failure to write the data mart
    logged (the read goes on without the records still in the journal), any other raised."""
    try:
        catch_up(connection.engine)
    except (JournalVersionError, DatamartUnavailable):
        raise
    except Exception as error:
        _LOG.warning("the payload journal could not be ingested before a read: %s: %s", type(error).__name__, error)


_WATCHED: weakref.WeakSet[Engine] = weakref.WeakSet()


def connect(url: str | None = None, *, work: str | os.PathLike | None = None) -> Engine:
    """The data mart's engine (:func:`utils.datamart.engine.connect`), whose every transaction on a SQLite file first
    ingests what the payload journal holds beyond what this process knows to be ingested: read-your-writes."""
    engine = engine_of(url, work=work)
    if engine not in _WATCHED and journal_folder(engine) is not None:
        with _SHARED:
            if engine not in _WATCHED:
                sa.event.listen(engine, "begin", _catch_up_on_begin)
                _WATCHED.add(engine)
    return engine
