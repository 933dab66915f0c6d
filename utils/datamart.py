"""The data mart: a SQL database of deployments, scored payload records and feedback.

It stands in for the hosted PostgreSQL data mart of the original workshop. Any
SQLAlchemy URL works (``$CREDIT_DATAMART_URL``, e.g. ``postgresql+psycopg://...``
with that driver installed); the default is a SQLite file in the working directory,
opened in WAL mode with a busy timeout so that several server processes can write at
once without losing a record. This module is about storage only: it knows the tables,
writes rows in one transaction each call, and reads them back as pandas DataFrames.

Times are stored in UTC; the DataFrames carry timezone-aware UTC timestamps.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils import config

#: Environment variable holding the data mart's SQLAlchemy URL.
DATAMART_URL_ENV = "CREDIT_DATAMART_URL"
#: How long a SQLite writer waits for another one to finish, in seconds.
SQLITE_BUSY_TIMEOUT = 30.0

metadata = sa.MetaData()

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("space", sa.String(20), nullable=False),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("name", "space", name="uq_deployment_name_space"),
)

payload_records = sa.Table(
    "payload_records",
    metadata,
    sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("transaction_id", sa.String(64), nullable=False, unique=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("prediction", sa.String(50), nullable=False),
    sa.Column("probability_no_risk", sa.Float, nullable=False),
    sa.Column("probability_risk", sa.Float, nullable=False),
    sa.Index("ix_payload_deployment_time", "deployment_id", "scored_at"),
)

feedback_records = sa.Table(
    "feedback_records",
    metadata,
    sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("feedback_id", sa.String(64), nullable=False, unique=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("label", sa.String(50), nullable=False),
    sa.Index("ix_feedback_deployment_time", "deployment_id", "recorded_at"),
)

_PAYLOAD_COLUMNS = ("transaction_id", "deployment_id", "model_id", "scored_at")
_PAYLOAD_OUTPUTS = ("prediction", "probability_no_risk", "probability_risk")
_FEEDBACK_COLUMNS = ("feedback_id", "deployment_id", "recorded_at")


def datamart_url(work: str | os.PathLike | None = None) -> str:
    """The data mart URL: ``$CREDIT_DATAMART_URL``, else ``sqlite:///<work dir>/datamart.sqlite``."""
    return os.environ.get(DATAMART_URL_ENV) or f"sqlite:///{config.work_dir(work) / 'datamart.sqlite'}"


def utc_now() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new record id: a UUID in the version 7 layout (milliseconds since 1970 first, then random bits).

    Ids sort by time, so that inserts into the id index stay at its end instead of touching random pages.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | 0x7 << 76  # version 7
    value = (value & ~(0x3 << 62)) | 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
    create_schema(engine)
    return engine


def connect(url: str | None = None, *, work: str | os.PathLike | None = None) -> Engine:
    """The engine of the data mart at ``url`` (default :func:`datamart_url`), its tables created.

    Engines are shared per URL within a process.
    """
    return _engine(url or datamart_url(work))


def create_schema(engine: Engine) -> None:
    """Create the tables that do not exist yet (safe to call from several processes at once)."""
    try:
        metadata.create_all(engine)
    except sa.exc.DBAPIError:
        metadata.create_all(engine)  # another process created a table between our check and our CREATE


def insert_payload(engine: Engine, records: Iterable[Mapping]) -> int:
    """Store scored records in one transaction; returns how many.

    Each record holds ``transaction_id``, ``deployment_id``, ``model_id``, ``scored_at``,
    ``inputs`` (a JSON-able mapping of field to value), ``prediction``,
    ``probability_no_risk`` and ``probability_risk``.
    """
    rows = [{**record, "scored_at": _as_utc(record["scored_at"])} for record in records]
    if rows:
        with engine.begin() as connection:
            connection.execute(payload_records.insert(), rows)
    return len(rows)


def insert_feedback(engine: Engine, records: Iterable[Mapping]) -> int:
    """Store labelled feedback records in one transaction; returns how many.

    Each record holds ``feedback_id``, ``deployment_id``, ``recorded_at``, ``inputs`` and ``label``.
    """
    rows = [{**record, "recorded_at": _as_utc(record["recorded_at"])} for record in records]
    if rows:
        with engine.begin() as connection:
            connection.execute(feedback_records.insert(), rows)
    return len(rows)


def _window(table: sa.Table, time_column: str, deployment_id, start, end) -> sa.Select:
    query = sa.select(table).order_by(table.c.record_id)
    if deployment_id is not None:
        query = query.where(table.c.deployment_id == deployment_id)
    if start is not None:
        query = query.where(table.c[time_column] >= _as_utc(start))
    if end is not None:
        query = query.where(table.c[time_column] < _as_utc(end))
    return query


def _read(engine: Engine, query: sa.Select, head: tuple[str, ...], tail: tuple[str, ...], time_column: str):
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    base = pd.DataFrame([{c: row[c] for c in (*head, *tail)} for row in rows], columns=[*head, *tail])
    base[time_column] = pd.to_datetime(base[time_column], utc=True)
    if not rows:
        return base
    inputs = pd.DataFrame.from_records([row["inputs"] for row in rows])
    return pd.concat([base[list(head)], inputs, base[list(tail)]], axis=1)


def read_payload(
    engine: Engine,
    deployment_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Scored records, oldest first: ids and time, one column per input field, prediction, probabilities.

    ``start`` is inclusive and ``end`` exclusive; naive datetimes are taken as UTC.
    """
    query = _window(payload_records, "scored_at", deployment_id, start, end)
    return _read(engine, query, _PAYLOAD_COLUMNS, _PAYLOAD_OUTPUTS, "scored_at")


def read_feedback(
    engine: Engine,
    deployment_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Feedback records, oldest first: ids and time, one column per input field, and ``label``."""
    query = _window(feedback_records, "recorded_at", deployment_id, start, end)
    return _read(engine, query, _FEEDBACK_COLUMNS, ("label",), "recorded_at")


# --- Batch jobs (utils.batch) -------------------------------------------------------------------------------------
# A batch job and the chunks of it that are done. A chunk's row, its payload records and the job's counters are
# written in one transaction, so that a job killed at any moment resumes without losing or repeating a chunk.

batch_jobs = sa.Table(
    "batch_jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("deployment_id", sa.String(64)),
    sa.Column("input_path", sa.Text, nullable=False),
    sa.Column("output_path", sa.Text, nullable=False),
    sa.Column("rejects_path", sa.Text, nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("rows_total", sa.BigInteger),
    sa.Column("rows_read", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_scored", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, default=0),
    sa.Column("chunks_done", sa.Integer, nullable=False, default=0),
    sa.Column("seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_batch_jobs_created", "created_at"),
)

batch_job_chunks = sa.Table(
    "batch_job_chunks",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("chunk_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_row", sa.BigInteger, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_scored", sa.BigInteger, nullable=False),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False),
    sa.Column("output_bytes", sa.BigInteger, nullable=False),
    sa.Column("rejects_bytes", sa.BigInteger, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
)

_BATCH_JOB_TIMES = ("created_at", "started_at", "finished_at", "updated_at")


def _batch_job_row(values: Mapping) -> dict:
    row = dict(values)
    for name in _BATCH_JOB_TIMES:
        if row.get(name) is not None:
            row[name] = _as_utc(row[name])
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
    return {
        name: _as_utc(value) if name in _BATCH_JOB_TIMES and value is not None else value for name, value in row.items()
    }


def read_batch_jobs(engine: Engine) -> pd.DataFrame:
    """All batch jobs, newest first, one row each (``parameters`` left out)."""
    columns = [column for column in batch_jobs.c if column.name != "parameters"]
    query = sa.select(*columns).order_by(batch_jobs.c.created_at.desc(), batch_jobs.c.job_id.desc())
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame([dict(row) for row in rows], columns=[column.name for column in columns])
    for name in _BATCH_JOB_TIMES:
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
    row = {**chunk, "committed_at": _as_utc(chunk["committed_at"])}
    records = [{**record, "scored_at": _as_utc(record["scored_at"])} for record in payload]
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


# --- Monitoring measurements (utils.monitoring) -------------------------------------------------------------------
# One row per metric that a monitor computed over an evaluation window: its value, the threshold it is held to and
# whether it breached it. ``breached`` is NULL when there is no verdict: too few records in the window, or a metric
# without a threshold. ``subject`` names what the metric is about (a protected group, a feature), NULL for the window.

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("measurement_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("evaluation_id", sa.String(64), nullable=False),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("monitor", sa.String(30), nullable=False),
    sa.Column("metric", sa.String(60), nullable=False),
    sa.Column("subject", sa.String(100)),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("breached", sa.Boolean),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True)),
    sa.Column("window_end", sa.DateTime(timezone=True)),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_measurements_deployment_window", "deployment_id", "window_start"),
)

_MEASUREMENT_TIMES = ("window_start", "window_end", "evaluated_at")


def _measurement_row(record: Mapping) -> dict:
    row = dict(record)
    for name in _MEASUREMENT_TIMES:
        if row.get(name) is not None:
            row[name] = _as_utc(row[name])
    for name in ("value", "threshold"):
        if row.get(name) is not None and row[name] != row[name]:  # NaN is stored as NULL
            row[name] = None
    return row


def insert_measurements(engine: Engine, records: Iterable[Mapping]) -> int:
    """Store measurements in one transaction; returns how many.

    Each record holds ``evaluation_id``, ``deployment_id``, ``monitor``, ``metric``, ``records`` and
    ``evaluated_at``, and may hold ``subject``, ``value``, ``threshold``, ``breached``, ``window_start``
    and ``window_end`` (None or NaN for none).
    """
    rows = [_measurement_row(record) for record in records]
    if rows:
        with engine.begin() as connection:
            connection.execute(measurements.insert(), rows)
    return len(rows)


def read_measurements(
    engine: Engine,
    deployment_id: str | None = None,
    *,
    monitor: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Measurements by window start, then as stored; ``start``/``end`` select windows that start in [start, end)."""
    table = measurements
    query = sa.select(table).order_by(table.c.window_start, table.c.measurement_id)
    if deployment_id is not None:
        query = query.where(table.c.deployment_id == deployment_id)
    if monitor is not None:
        query = query.where(table.c.monitor == monitor)
    if start is not None:
        query = query.where(table.c.window_start >= _as_utc(start))
    if end is not None:
        query = query.where(table.c.window_start < _as_utc(end))
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame([dict(row) for row in rows], columns=[column.name for column in table.c])
    for name in _MEASUREMENT_TIMES:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame["breached"] = frame["breached"].astype("boolean")
    return frame
