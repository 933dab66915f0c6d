"""How a server process makes scored records durable before it answers: on a SQLite file data mart, one append to
the payload journal (:mod:`utils.datamart.journal`), ingested into the data mart within a fifth of a second by the
journal's drainer; elsewhere, or while the journal cannot take records, a group commit
(:mod:`utils.serving.group_commit`).

Either way a 200 means the records are durable as the data mart's commits are (see docs/operating.md), and a
request whose records could not be stored is answered 503 with nothing of them stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from utils import datamart
from utils.datamart import journal
from utils.serving.group_commit import GroupCommitter

#: The drainer ingests what this process appended once this many bytes wait (a few hundred records), or once the
#: oldest has waited :data:`DRAIN_INTERVAL_SECONDS`; it looks every :data:`LOOK_SECONDS`, and waits
#: :data:`RETRY_SECONDS` after a failed drain. A drain costs about 2 ms of CPU besides its records while the event
#: loop runs Python beside it (each of its calls that gives up the GIL must wait to take it back), so it gathers
#: hundreds of records rather than a few: reads see the records at once anyway (:func:`journal.catch_up`).
DRAIN_BYTES_WAITING = 256 * 1024
DRAIN_INTERVAL_SECONDS, LOOK_SECONDS, RETRY_SECONDS = 0.2, 0.01, 0.5

_LOG = logging.getLogger(__name__)


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


class Drainer:
    """A server process's ingestion of the payload journal of ``engine``: a daemon thread that drains it when what
    this process appended is :data:`DRAIN_BYTES_WAITING` or :data:`DRAIN_INTERVAL_SECONDS` old, and once more at
    :meth:`close`.

    :attr:`problem` says why the journal must not take records now (None: it may): not started, stopping, or the
    last drain failed (say, the data mart became read-only); the thread then retries every
    :data:`RETRY_SECONDS`, and the service commits records directly meanwhile, which answers what is wrong.
    ``on_drain`` is told how many requests each ingesting transaction took.
    """

    def __init__(self, engine: Engine, on_drain: Callable[[int], None] | None = None):
        self.engine = engine
        self._problem: str | None = "the payload journal is not started"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drained = 0  # appended_bytes() at the last drain that succeeded
        if on_drain is not None:
            journal.tell_drains(engine, on_drain)

    @property
    def problem(self) -> str | None:
        """Why the journal must not take records now (None: it may)."""
        return "the service is stopping" if self._stop.is_set() else self._problem

    def start(self) -> None:
        """Ingest what the journal holds (a dead process's records too), check that the data mart can be written,
        and start the thread."""
        journal.open_journal(self.engine)  # closed by an earlier service of this process on the same data mart
        self._round()
        self._thread = threading.Thread(target=self._run, name="payload-journal", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        waiting_since = None  # when this process appended the oldest bytes not drained
        while not self._stop.wait(LOOK_SECONDS if self._problem is None else RETRY_SECONDS):
            waiting = journal.appended_bytes(self.engine) - self._drained
            if waiting and waiting_since is None:
                waiting_since = time.monotonic()
            due = waiting_since is not None and time.monotonic() - waiting_since >= DRAIN_INTERVAL_SECONDS
            if self._problem is not None or waiting >= DRAIN_BYTES_WAITING or due:
                self._round()
                waiting_since = None

    def _round(self) -> None:
        appended = journal.appended_bytes(self.engine)
        try:
            ingested = journal.drain(self.engine)
            if self._problem is not None and not ingested:  # records ingested prove the data mart writable
                datamart.check(self.engine)
        except Exception as error:
            self.failed(error)
            return
        if self._problem is not None and self._thread is not None:
            _LOG.warning("the payload journal is ingested again")
        self._problem, self._drained = None, appended

    def failed(self, error: BaseException) -> None:
        """The journal could not be appended to or ingested: records are committed directly until a drain works."""
        problem = _first_line(error)
        if problem != self._problem:
            _LOG.error("the payload journal cannot be used (records are committed directly until it can): %s", problem)
        self._problem = problem

    def close(self) -> None:
        """Take no more records, stop the thread and ingest everything this process appended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        journal.close_journal(self.engine, final=True)
        try:
            journal.drain(self.engine)
        except Exception as error:  # the records stay in the journal, for the next process that drains it
            _LOG.error("the payload journal could not be ingested at shutdown: %s", _first_line(error))


class PayloadWriter:
    """A server process's payload writer: the journal's :class:`Drainer` on a SQLite file
    (None elsewhere), and ``committer``, the process's :class:`GroupCommitter`. ``on_drain`` is told how many
    requests each ingesting transaction of the journal took."""

    def __init__(self, engine: Engine, committer: GroupCommitter, on_drain: Callable[[int], None] | None = None):
        self.engine, self.committer = engine, committer
        self.journal = Drainer(engine, on_drain) if journal.journal_folder(engine) is not None else None

    def store_now(self, rows: list[dict]) -> bool:
        """Make scored records durable without waiting (the event loop may call it); returns whether they are (False:
        nothing of them is stored; :meth:`store` them in a worker thread).

        On a SQLite file they are appended to the payload journal, unless it cannot take them now (not started, the
        service stopping, the data mart not writable at the last drain, or the append fails: say a full disk); then,
        as on PostgreSQL, :meth:`GroupCommitter.commit_now` commits them if that needs no wait.

        Raises:
            DatamartUnavailable: the SQLite file was removed or replaced (nothing is stored).
            CommitterClosed: the service is stopping (nothing is stored).
        """
        drainer = self.journal
        if drainer is not None and drainer.problem is None:
            try:
                journal.append(self.engine, rows)
                return True
            except OSError as error:  # nothing was appended: the group commit says what is wrong
                drainer.failed(error)
            except ValueError:  # a record the journal cannot take (the commit refuses it, saying why)
                pass
        return self.committer.commit_now(rows)

    def store(self, rows: list[dict]) -> int:
        """Make scored records durable (:meth:`store_now`, else a group commit, which may wait); returns how many.

        Raises:
            DatamartUnavailable, CommitterClosed: as :meth:`store_now`.
            Exception: what the group commit raised (nothing is stored).
        """
        return len(rows) if self.store_now(rows) else self.committer.commit(rows)

    def start(self) -> None:
        """Ingest what the journal holds (a dead process's records too) and start its drainer: the journal takes
        records once the data mart is found writable."""
        if self.journal is not None:
            self.journal.start()

    def close(self) -> None:
        """Take no more records, and store every record taken: the journal ingested, the queued groups committed."""
        if self.journal is not None:
            self.journal.close()
        self.committer.close()
