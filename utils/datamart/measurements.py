"""Monitor measurements: one row per metric of an evaluation window (see ``schema.measurements``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.schema import measurements
from utils.times import as_utc

_TIMES = ("window_start", "window_end", "evaluated_at")


def _measurement_row(record: Mapping) -> dict:
    row = dict(record)
    for name in _TIMES:
        if row.get(name) is not None:
            row[name] = as_utc(row[name])
    for name in ("value", "threshold"):
        if row.get(name) is not None and row[name] != row[name]:  # NaN is stored as NULL
            row[name] = None
    return row


def measurement_rows(records: Iterable[Mapping]) -> list[dict]:
    """Measurement records as rows to insert: times in UTC, NaN values as NULL."""
    return [_measurement_row(record) for record in records]


def insert_measurements(engine: Engine, records: Iterable[Mapping]) -> int:
    """Store measurements in one transaction; returns how many.

    Each record holds ``evaluation_id``, ``deployment_id``, ``monitor``, ``metric``, ``records`` and
    ``evaluated_at``, and may hold ``subject``, ``value``, ``threshold``, ``breached``, ``window_start``
    and ``window_end`` (None or NaN for none).
    """
    rows = measurement_rows(records)
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
        query = query.where(table.c.window_start >= as_utc(start))
    if end is not None:
        query = query.where(table.c.window_start < as_utc(end))
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame([dict(row) for row in rows], columns=[column.name for column in table.c])
    for name in _TIMES:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame["breached"] = frame["breached"].astype("boolean")
    return frame


def read_latest_measurements(engine: Engine, deployment_id: str, *, since: datetime | None = None) -> list[dict]:
    """The measurements of a deployment's newest evaluation (latest ``evaluated_at``; of those evaluated at or after
    ``since`` when given), as stored; none when it has none."""
    table = measurements
    newest = sa.select(table.c.evaluation_id).where(table.c.deployment_id == deployment_id)
    if since is not None:
        newest = newest.where(table.c.evaluated_at >= as_utc(since))
    newest = newest.order_by(table.c.evaluated_at.desc(), table.c.measurement_id.desc()).limit(1)
    query = (
        sa.select(table)
        .where(table.c.deployment_id == deployment_id, table.c.evaluation_id == newest.scalar_subquery())
        .order_by(table.c.measurement_id)
    )
    with engine.connect() as connection:
        return [_measurement_row(row) for row in connection.execute(query).mappings()]
