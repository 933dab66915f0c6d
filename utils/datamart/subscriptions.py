"""Rows of ``subscriptions`` (deployments to monitor, served here or elsewhere) and of ``request_log`` (one row per
scoring or payload-logging request, for the performance monitor).

Rows come back as plain mappings with UTC times; :mod:`utils.subscriptions` holds the rules (names, engines,
schemas) and turns them into ``Subscription`` objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.journal import without_catch_up
from utils.datamart.records import insert_rows
from utils.datamart.schema import feedback_records, payload_records, request_log, subscriptions
from utils.times import as_utc, as_utc_or_none

_REQUEST_COLUMNS = ("endpoint", "received_at", "seconds", "status", "records", "rejected_rows", "reason")


def _row(row) -> dict:
    return {**row, "created_at": as_utc(row["created_at"])}


def insert_subscription(engine: Engine, row: Mapping) -> dict:
    """Store a new subscription; returns its row.

    Raises:
        sqlalchemy.exc.IntegrityError: a subscription with that name, or for that deployment, exists.
    """
    with engine.begin() as connection:
        connection.execute(subscriptions.insert(), [dict(row)])
    return dict(row)


def read_subscription(engine: Engine, *, subscription_id: str | None = None, deployment_id: str | None = None):
    """The row of one subscription by id or by the deployment it watches, or None."""
    table = subscriptions
    query = sa.select(table)
    if subscription_id is not None:
        query = query.where(table.c.subscription_id == subscription_id)
    if deployment_id is not None:
        query = query.where(table.c.deployment_id == deployment_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return None if row is None else _row(row)


def read_subscriptions(engine: Engine, *, name: str | None = None) -> list[dict]:
    """Every subscription (optionally of one name), oldest first."""
    query = sa.select(subscriptions).order_by(subscriptions.c.created_at, subscriptions.c.name)
    if name is not None:
        query = query.where(subscriptions.c.name == name)
    with engine.connect() as connection:
        return [_row(row) for row in connection.execute(query).mappings()]


def insert_requests(engine: Engine, rows: Iterable[Mapping]) -> int:
    """Store request-log rows (``deployment_id``, ``endpoint``, ``received_at``, ``seconds``, ``status``,
    ``records``, ``rejected_rows``, ``reason``) in one transaction; returns how many."""
    rows = [{"reason": None, **row, "received_at": as_utc(row["received_at"])} for row in rows]
    if rows:
        with without_catch_up(), engine.begin() as connection:  # a write: the payload journal's drainer ingests it
            insert_rows(connection, request_log, rows, beside_loop=True)
    return len(rows)


def read_requests(
    engine: Engine, deployment_id: str, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """The request-log rows of one deployment or subscription in [``start``, ``end``), oldest first."""
    table = request_log
    query = sa.select(*[table.c[name] for name in _REQUEST_COLUMNS]).where(table.c.deployment_id == deployment_id)
    if (start := as_utc_or_none(start)) is not None:
        query = query.where(table.c.received_at >= start)
    if (end := as_utc_or_none(end)) is not None:
        query = query.where(table.c.received_at < end)
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(table.c.request_id)).all()
    frame = pd.DataFrame(rows, columns=list(_REQUEST_COLUMNS))
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
    return frame


def update_subscription_spec(engine: Engine, subscription_id: str, spec: Mapping) -> bool:
    """Replace a subscription's ``spec``; returns whether the subscription exists."""
    table = subscriptions
    with engine.begin() as connection:
        changed = connection.execute(
            table.update().where(table.c.subscription_id == subscription_id).values(spec=dict(spec))
        ).rowcount
    return changed == 1


def read_linked_feedback(
    engine: Engine, deployment_id: str, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """The feedback records of ``deployment_id`` recorded in [``start``, ``end``) that name a logged prediction of
    it, oldest first: ``feedback_id``, ``recorded_at``, one column per input field, ``label`` and
    ``logged_probability_risk`` (the probability of the second class logged with that prediction)."""
    f, p = feedback_records, payload_records
    linked = sa.and_(p.c.transaction_id == f.c.transaction_id, p.c.deployment_id == f.c.deployment_id)
    query = (
        sa.select(f.c.feedback_id, f.c.recorded_at, f.c.inputs, f.c.label, p.c.probability_risk)
        .join(p, linked)
        .where(f.c.deployment_id == deployment_id)
        .order_by(f.c.record_id)
    )
    if start is not None:
        query = query.where(f.c.recorded_at >= as_utc(start))
    if end is not None:
        query = query.where(f.c.recorded_at < as_utc(end))
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    head = pd.DataFrame(
        {
            "feedback_id": [row["feedback_id"] for row in rows],
            "recorded_at": pd.to_datetime([as_utc(row["recorded_at"]) for row in rows], utc=True),
        }
    )
    inputs = pd.DataFrame([row["inputs"] for row in rows])
    tail = pd.DataFrame(
        {
            "label": [row["label"] for row in rows],
            "logged_probability_risk": pd.Series([row["probability_risk"] for row in rows], dtype=float),
        }
    )
    return pd.concat([head, inputs, tail], axis=1)
