"""Batch jobs and their committed chunks (:mod:`utils.batch`).

A chunk's payload records are stored first, in transactions of at most :data:`PAYLOAD_COMMIT_ROWS` records
each (:func:`store_batch_payload`), so that another writer (an online scoring request) never waits long for
SQLite's write lock; then the chunk's row and the job's new counters, in one small transaction
(:func:`commit_batch_chunk`). A chunk is committed once its row is there. A job killed between two of these
transactions leaves some of the chunk's payload records without its row: the next attempt at the chunk stores
its records again, each replacing the stored record of the same transaction id (``<job id>:<row>``, the same on
every attempt), so a resumed job neither loses nor repeats a chunk or a payload record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.records import insert_rows, payload_rows
from utils.datamart.schema import batch_job_chunks, batch_jobs, payload_records
from utils.times import as_utc, utc_now

_TIMES = ("created_at", "started_at", "finished_at", "updated_at")
#: Payload records stored per transaction: about 0.1 to 0.3 s of SQLite's write lock.
PAYLOAD_COMMIT_ROWS = 5_000
_IDS_PER_STATEMENT = 500  # bound parameters of one DELETE: well under every database's limit


def _batch_job_row(values: Mapping) -> dict:
    row = dict(values)
    for name in _TIMES:
        if row.get(name) is not None:
            row[name] = as_utc(row[name])
    return row


def insert_batch_job(engine: Engine, job: Mapping) -> None:
    """Record a new batch job.

    ``job`` holds ``job_id``, ``status``, ``model_id``, ``input_path``, ``output_path``,
    ``rejects_path``, ``parameters`` (a JSON-able mapping) and ``created_at``, and may hold
    any other column of ``batch_jobs``; ``updated_at`` defaults to ``created_at``.
    """
    row = _batch_job_row(job)
    row.setdefault("updated_at", row["created_at"])
    with engine.begin() as connection:
        connection.execute(batch_jobs.insert(), row)


def update_batch_job(engine: Engine, job_id: str, **values) -> bool:
    """Set columns of a batch job (``updated_at`` defaults to now); False when there is no such job."""
    row = _batch_job_row({"updated_at": utc_now(), **values})
    with engine.begin() as connection:
        result = connection.execute(batch_jobs.update().where(batch_jobs.c.job_id == job_id).values(**row))
    return result.rowcount > 0


def read_batch_job(engine: Engine, job_id: str) -> dict | None:
    """One batch job as a mapping of column to value (times in UTC), or None when there is no such job."""
    with engine.connect() as connection:
        row = connection.execute(sa.select(batch_jobs).where(batch_jobs.c.job_id == job_id)).mappings().first()
    if row is None:
        return None
    return {name: as_utc(value) if name in _TIMES and value is not None else value for name, value in row.items()}


def read_batch_jobs(engine: Engine) -> pd.DataFrame:
    """All batch jobs, newest first, one row each (``parameters`` left out)."""
    columns = [column for column in batch_jobs.c if column.name != "parameters"]
    query = sa.select(*columns).order_by(batch_jobs.c.created_at.desc(), batch_jobs.c.job_id.desc())
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame([dict(row) for row in rows], columns=[column.name for column in columns])
    for name in _TIMES:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def store_batch_payload(engine: Engine, records: Sequence[Mapping], batch_rows: int | None = None) -> int:
    """Store a batch chunk's payload records, at most ``batch_rows`` (default :data:`PAYLOAD_COMMIT_ROWS`) per
    transaction; each record replaces a stored one of the same transaction id. Returns how many were stored.

    A record of the same id can only be this chunk's own, left by an attempt that stopped before the chunk was
    committed: storing the chunk's records again leaves exactly one record per row.
    """
    rows = payload_rows(records)
    size = max(1, batch_rows or PAYLOAD_COMMIT_ROWS)
    for start in range(0, len(rows), size):
        _replace_payload(engine, rows[start : start + size])
    return len(rows)


def _replace_payload(engine: Engine, rows: list[dict]) -> None:
    """One transaction: delete the stored records with the rows' transaction ids, insert the rows."""
    ids = [row["transaction_id"] for row in rows]
    with engine.begin() as connection:
        # The DELETE first, so that the transaction takes the write lock before anything else.
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            piece = ids[start : start + _IDS_PER_STATEMENT]
            connection.execute(payload_records.delete().where(payload_records.c.transaction_id.in_(piece)))
        insert_rows(connection, payload_records, rows)


def _refuse_committed(engine: Engine, job_id: str, chunk_index: int) -> None:
    """Raise IntegrityError when the chunk is committed already."""
    table = batch_job_chunks
    query = sa.select(table.c.chunk_index).where(table.c.job_id == job_id, table.c.chunk_index == chunk_index)
    with engine.connect() as connection:
        if connection.execute(query).first() is not None:
            reason = LookupError(f"chunk {chunk_index} of batch job {job_id} is already committed")
            raise sa.exc.IntegrityError(str(query), {"job_id": job_id, "chunk_index": chunk_index}, reason)


def commit_batch_chunk(
    engine: Engine, chunk: Mapping, payload: Iterable[Mapping] = (), *, batch_rows: int | None = None
) -> int:
    """Record a finished chunk of a batch job: its payload records, then its row and the job's new counters.

    ``chunk`` holds ``job_id``, ``chunk_index``, ``first_row``, ``rows_read``, ``rows_scored``,
    ``rows_rejected``, ``output_bytes``, ``rejects_bytes``, ``seconds`` and ``committed_at``;
    ``payload`` the records as for :func:`insert_payload`. The records are stored by
    :func:`store_batch_payload`, ``batch_rows`` at a time; then the chunk's row and the job's counters
    (row counts, ``chunks_done`` and ``seconds`` grow by the chunk's) in one transaction. A call that stops
    part-way leaves the chunk uncommitted, and some of its records stored, which a new call for the chunk
    replaces. Returns how many payload records were stored.

    Raises:
        sqlalchemy.exc.IntegrityError: the chunk is already committed; nothing of this call is stored then.
    """
    row = {**chunk, "committed_at": as_utc(chunk["committed_at"])}
    _refuse_committed(engine, row["job_id"], row["chunk_index"])
    stored = store_batch_payload(engine, list(payload), batch_rows)
    table = batch_jobs
    with engine.begin() as connection:
        # The UPDATE first, so that the transaction takes the write lock before anything else.
        connection.execute(
            table.update()
            .where(table.c.job_id == row["job_id"])
            .values(
                rows_read=table.c.rows_read + row["rows_read"],
                rows_scored=table.c.rows_scored + row["rows_scored"],
                rows_rejected=table.c.rows_rejected + row["rows_rejected"],
                chunks_done=table.c.chunks_done + 1,
                seconds=table.c.seconds + row["seconds"],
                updated_at=row["committed_at"],
            )
        )
        connection.execute(batch_job_chunks.insert(), row)
    return stored


def read_batch_chunks(engine: Engine, job_id: str) -> pd.DataFrame:
    """The committed chunks of a batch job, by chunk index."""
    query = (
        sa.select(batch_job_chunks).where(batch_job_chunks.c.job_id == job_id).order_by(batch_job_chunks.c.chunk_index)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame([dict(row) for row in rows], columns=[column.name for column in batch_job_chunks.c])
    frame["committed_at"] = pd.to_datetime(frame["committed_at"], utc=True)
    return frame
