"""How a server process makes scored records durable before it answers: on a SQLite file data mart, one append to
the payload journal (:mod:`utils.datamart.journal`), ingested into the data mart a few milliseconds later by the
journal's drainer; elsewhere, or while the journal cannot take records, a group commit
(:mod:`utils.serving.group_commit`).

Either way a 200 means the records are durable as the data mart's commits are (see docs/operating.md), and a
request whose records could not be stored is answered 503 with nothing of them stored.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from utils.datamart import journal
from utils.serving.group_commit import GroupCommitter


class PayloadWriter:
    """A server process's payload writer: the journal's :class:`~utils.datamart.journal.Drainer` on a SQLite file
    (None elsewhere), and ``committer``, the process's :class:`GroupCommitter`. ``on_drain`` is told how many
    requests each ingesting transaction of the journal took."""

    def __init__(self, engine: Engine, committer: GroupCommitter, on_drain: Callable[[int], None] | None = None):
        self.engine, self.committer = engine, committer
        self.journal = journal.Drainer(engine, on_drain) if journal.journal_folder(engine) is not None else None

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
            except (OSError, ValueError) as error:  # nothing was appended: the group commit says what is wrong
                drainer.failed(error)
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
