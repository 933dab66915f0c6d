"""Rows of alerts that reach people: notifications per receiver, and the windows the scheduler ran.

A notification is inserted once per change (``dedupe_key`` is unique) and then updated as its delivery goes on;
a scheduled window is recorded in the transaction that stores its measurements (:func:`store_scheduled_window`),
so a window counts as run exactly when its measurements are stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.measurements import measurement_rows
from utils.datamart.schema import measurements, monitor_runs, notifications
from utils.times import as_utc, utc_now


class WindowAlreadyRan(RuntimeError):
    """A scheduled window of a monitor was already recorded (by this scheduler before a restart, or another)."""


def insert_notification(engine: Engine, record: Mapping) -> bool:
    """Store a new notification (every column but the times, which are now); False when its ``dedupe_key`` is
    already stored, in which case nothing is written."""
    now = utc_now()
    try:
        with engine.begin() as connection:
            connection.execute(notifications.insert().values(**record, created_at=now, updated_at=now))
    except sa.exc.IntegrityError:
        return False
    return True


def update_notification(engine: Engine, notification_id: str, *, status: str, attempts: int, last_error=None) -> None:
    """Record the state of a notification's delivery: ``pending``, ``sent`` or ``failed``, after ``attempts``."""
    table = notifications
    values = {"status": status, "attempts": attempts, "last_error": last_error, "updated_at": utc_now()}
    with engine.begin() as connection:
        connection.execute(table.update().where(table.c.notification_id == notification_id).values(**values))


def read_notifications(engine: Engine, deployment_id: str | None = None, *, status: str | None = None) -> list[dict]:
    """Notifications, oldest first, optionally of one deployment and/or in one status."""
    table = notifications
    query = sa.select(table).order_by(table.c.created_at, table.c.notification_id)
    if deployment_id is not None:
        query = query.where(table.c.deployment_id == deployment_id)
    if status is not None:
        query = query.where(table.c.status == status)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [{**row, "created_at": as_utc(row["created_at"]), "updated_at": as_utc(row["updated_at"])} for row in rows]


def read_verdicts(
    engine: Engine, deployment_id: str, monitors: Iterable[str], *, ended_after: datetime, ended_by: datetime
) -> pd.DataFrame:
    """The measurements with a verdict (``breached`` not NULL) of ``monitors`` whose window ended in
    (``ended_after``, ``ended_by``], oldest window first: monitor, metric, subject, breached, window_end."""
    table = measurements
    query = (
        sa.select(table.c.monitor, table.c.metric, table.c.subject, table.c.breached, table.c.window_end)
        .where(table.c.deployment_id == deployment_id, table.c.monitor.in_(list(monitors)))
        .where(table.c.breached.is_not(None))
        .where(table.c.window_end > as_utc(ended_after), table.c.window_end <= as_utc(ended_by))
        .order_by(table.c.window_end, table.c.measurement_id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return pd.DataFrame([dict(row) for row in rows], columns=["monitor", "metric", "subject", "breached", "window_end"])


def store_scheduled_window(engine: Engine, runs: Iterable[Mapping], records: Iterable[Mapping]) -> int:
    """Store a scheduled window's measurements and its runs (``deployment_id``, ``monitor``, ``window_start``,
    ``window_end``, ``evaluation_id``, ``evaluated_at``) in one transaction; returns how many measurements.

    Raises:
        WindowAlreadyRan: a monitor's window is recorded already; nothing is written.
    """
    rows = measurement_rows(records)
    runs = [{**run, **{k: as_utc(run[k]) for k in ("window_start", "window_end", "evaluated_at")}} for run in runs]
    try:
        with engine.begin() as connection:
            connection.execute(monitor_runs.insert(), runs)
            if rows:
                connection.execute(measurements.insert(), rows)
    except sa.exc.IntegrityError as error:
        raise WindowAlreadyRan(f"a window of {sorted({r['monitor'] for r in runs})} already ran") from error
    return len(rows)


def read_monitor_runs(engine: Engine, deployment_id: str) -> pd.DataFrame:
    """The scheduled windows of a deployment that ran: monitor, window_start, window_end, evaluation_id,
    evaluated_at; by window, then monitor."""
    table = monitor_runs
    query = (
        sa.select(table).where(table.c.deployment_id == deployment_id).order_by(table.c.window_start, table.c.monitor)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame([dict(row) for row in rows], columns=[column.name for column in table.c])
    for name in ("window_start", "window_end", "evaluated_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame
