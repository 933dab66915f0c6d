"""Group commit: the scored records of requests that arrive together share one data mart transaction.

Each server process has one :class:`GroupCommitter`, and at most one transaction of it runs at a time. A request
(in its worker thread, never on the event loop) queues its rows and waits for the writer's turn. The thread that
gets the turn writes everything queued so far, its own rows and those of the requests that came while the last
transaction ran (in the order they came, up to :data:`MAX_GROUP_ROWS`), with one call of ``write`` (one
transaction); then it answers each request of that group: with its count once the transaction is committed, or
with the commit's exception, raised in every request of that group and in no other. A request whose rows a
previous turn wrote finds its answer ready when its own turn comes.

So a 200 still means its records are committed, as with one transaction per request; under load one commit serves
every request that waited for it, and a lone request neither waits for a timer nor hands its rows to another
thread. Every queued row has a thread waiting for it, so nothing is left behind at shutdown: :meth:`close` refuses
new rows (:class:`CommitterClosed`) and waits until those queued are written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

#: Most rows one transaction takes (a group holds at least one request, however many rows it has).
MAX_GROUP_ROWS = 5000
#: How long :meth:`GroupCommitter.close` waits for the rows queued to be written, in seconds.
CLOSE_TIMEOUT_SECONDS = 30.0


class CommitterClosed(RuntimeError):
    """The service is stopping: the request's records were not stored."""


class GroupCommitter:
    """Stores rows in transactions shared by the requests that wait together; :meth:`commit` returns once stored.

    ``write`` stores a list of rows in one transaction (say ``functools.partial(datamart.insert_payload, engine)``)
    and raises when it stores nothing; ``write_now``, if given, stores them only if that needs no wait and returns
    None when it stored nothing (``datamart.insert_payload_now``), for :meth:`commit_now`. ``on_commit`` is told how
    many requests each committed group answered.
    """

    def __init__(
        self,
        write: Callable[[list], Any],
        *,
        write_now: Callable[[list], Any] | None = None,
        max_rows: int = MAX_GROUP_ROWS,
        on_commit: Callable[[int], None] | None = None,
    ):
        self._write = write
        self._write_now = write_now
        self._on_commit = on_commit
        self._max_rows = max_rows
        self._queued: list[tuple[Sequence, Future]] = []
        self._unanswered = 0  # requests queued or being written
        self._changed = threading.Condition()  # guards _queued, _unanswered, _closed; notified per group answered
        self._turn = threading.Lock()  # held by the one thread writing a group
        self._closed = False

    def commit(self, rows: Sequence) -> int:
        """Store ``rows`` in a transaction (shared with the requests waiting at the same time) and return their
        count once it is committed.

        Raises:
            CommitterClosed: the committer was closed; nothing of ``rows`` is stored.
            Exception: whatever ``write`` raised for the group; nothing of ``rows`` is stored.
        """
        future: Future = Future()
        with self._changed:
            if self._closed:
                raise CommitterClosed("the service is stopping; nothing was stored: send the request again")
            self._queued.append((rows, future))
            self._unanswered += 1
        with self._turn:
            while not future.done():  # else a previous turn wrote it; with a full group ahead, it takes two
                self._write_group()
        return future.result()

    def commit_now(self, rows: Sequence) -> bool:
        """Store ``rows`` in a transaction of their own with ``write_now``, if no group is being written and that
        needs no wait (so the event loop may call it); returns whether they are committed (False: nothing of
        ``rows`` is stored, :meth:`commit` them).

        Raises:
            CommitterClosed: the committer was closed; nothing of ``rows`` is stored.
            Exception: what ``write_now`` raised; nothing of ``rows`` is stored.
        """
        with self._changed:
            if self._closed:
                raise CommitterClosed("the service is stopping; nothing was stored: send the request again")
        if self._write_now is None or not self._turn.acquire(blocking=False):
            return False
        try:
            if self._write_now(list(rows)) is None:
                return False
        finally:
            self._turn.release()
        if self._on_commit is not None:
            self._on_commit(1)
        return True

    @property
    def unanswered(self) -> int:
        """How many requests wait for their rows to be written."""
        with self._changed:
            return self._unanswered

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> bool:
        """Refuse new rows and wait up to ``timeout`` seconds until the rows queued are written; returns whether
        they were."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._closed = True
            while self._unanswered and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return not self._unanswered

    def _write_group(self) -> None:
        with self._changed:
            taken, size = 0, 0
            while taken < len(self._queued) and (taken == 0 or size + len(self._queued[taken][0]) <= self._max_rows):
                size += len(self._queued[taken][0])
                taken += 1
            group, self._queued[:taken] = self._queued[:taken], []
        try:
            self._write([row for rows, _ in group for row in rows])
        except BaseException as error:  # the whole group is refused, each of its requests with the error
            for _, future in group:
                future.set_exception(error)
        else:
            for rows, future in group:
                future.set_result(len(rows))
            if self._on_commit is not None:
                self._on_commit(len(group))
        with self._changed:
            self._unanswered -= len(group)
            self._changed.notify_all()
