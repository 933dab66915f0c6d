"""Group commit: the scored records of requests that arrive together share one data mart transaction.

Each server process has one :class:`GroupCommitter` (one writer thread). A request hands it its rows and waits;
the writer takes every batch of rows queued since its last commit (in the order they came, up to
:data:`MAX_GROUP_ROWS`), writes them with one call of ``write`` (one transaction), then answers each waiting
request: with its count once the transaction is committed, or with the commit's exception, raised in every request
of that group and in no other. A request that gets its answer therefore knows its records are stored, as with
one transaction per request; under load one commit serves many requests, and a lone request waits for no timer.

:meth:`GroupCommitter.close` (the server's shutdown) writes what is queued before the writer stops; a request that
comes later is refused with :class:`CommitterClosed` and nothing of it is stored.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

#: Most rows one transaction takes (a group holds at least one request, however many rows it has).
MAX_GROUP_ROWS = 5000
#: How long :meth:`GroupCommitter.close` waits for the writer to store what is queued, in seconds.
CLOSE_TIMEOUT_SECONDS = 30.0

_LOG = logging.getLogger(__name__)
_STOP = object()  # queued by close(): the writer stops once everything queued before it is written


class CommitterClosed(RuntimeError):
    """The service is stopping: the request's records were not stored."""


class GroupCommitter:
    """One writer thread that stores queued rows in shared transactions; :meth:`commit` returns once stored.

    ``write`` stores a list of rows in one transaction (say ``functools.partial(datamart.insert_payload, engine)``)
    and raises when it stores nothing. The thread starts with the first request, so that a process that never
    scores has none.
    """

    def __init__(self, write: Callable[[list], Any], *, max_rows: int = MAX_GROUP_ROWS, name: str = "group-commit"):
        self._write = write
        self._max_rows = max_rows
        self._name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, rows: Sequence) -> Future:
        """Queue ``rows`` for the next group; the future gives their count once committed, or the commit's error.

        Raises:
            CommitterClosed: :meth:`close` was called.
        """
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise CommitterClosed("the service is stopping; nothing was stored: send the request again")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((rows, future))
        return future

    def commit(self, rows: Sequence) -> int:
        """Store ``rows`` in the next group's transaction and return their count once it is committed.

        Raises:
            CommitterClosed: the committer was closed; nothing of ``rows`` is stored.
            Exception: whatever the group's ``write`` raised; nothing of ``rows`` is stored.
        """
        return self.submit(rows).result()

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Refuse new rows, store those queued, and stop the writer (waiting up to ``timeout`` seconds)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is None:
                return
            self._queue.put(_STOP)
        thread.join(timeout)
        if thread.is_alive():
            _LOG.error("%s: the writer did not finish within %g s", self._name, timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                return
            group, rows = [first], len(first[0])
            while rows < self._max_rows:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                group.append(item)
                rows += len(item[0])
            self._flush(group)

    def _flush(self, group: list[tuple[Sequence, Future]]) -> None:
        waiting = [(rows, future) for rows, future in group if future.set_running_or_notify_cancel()]
        if not waiting:
            return
        try:
            self._write([row for rows, _ in waiting for row in rows])
        except BaseException as error:  # the whole group is refused, each of its requests with the error
            for _, future in waiting:
                future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            for rows, future in waiting:
                future.set_result(len(rows))
