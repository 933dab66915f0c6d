"""Batch jobs and their committed chunks (:mod:`utils.batch`).

A chunk's row, its payload records and the job's new counters are written in one transaction
(:func:`commit_batch_chunk`), so that a job killed at any moment resumes without losing or repeating a chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.records import payload_rows
from utils.datamart.schema import batch_job_chunks, batch_jobs, payload_records
from utils.times import as_utc, utc_now

_TIMES = ("created_at", "started_at", "finished_at", "updated_at")


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


def commit_batch_chunk(engine: Engine, chunk: Mapping, payload: Iterable[Mapping] = ()) -> int:
    """Record a finished chunk of a batch job, its payload records and the job's new counters in one transaction.

    ``chunk`` holds ``job_id``, ``chunk_index``, ``first_row``, ``rows_read``, ``rows_scored``,
    ``rows_rejected``, ``output_bytes``, ``rejects_bytes``, ``seconds`` and ``committed_at``;
    ``payload`` the records as for :func:`insert_payload`. The job's row counts, ``chunks_done``
    and ``seconds`` grow by the chunk's. Returns how many payload records were stored.

    Raises:
        sqlalchemy.exc.IntegrityError: the chunk or a payload transaction id is already recorded;
            nothing of this call is stored then.
    """
    row = {**chunk, "committed_at": as_utc(chunk["committed_at"])}
    records = payload_rows(payload)
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
        if records:
            connection.execute(payload_records.insert(), records)
    return len(records)


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
