"""Rows of the model's life across spaces: risk evaluations, approval decisions and monitor configurations.

Evaluations and approvals are records: they are inserted and read, never changed, and this module has no function
that updates or deletes them. A newer approval of the same evaluation supersedes the older ones (the one inserted
last counts). The rules (which verdicts and decisions exist, who may approve, what production needs) are in
:mod:`utils.lifecycle` and :mod:`utils.deployment`; rows come back as plain mappings with UTC times.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.schema import approvals, evaluations, monitor_configs
from utils.times import as_utc, utc_now


def _row(row) -> dict:
    record = dict(row)
    for name in ("created_at", "updated_at"):
        if record.get(name) is not None:
            record[name] = as_utc(record[name])
    return record


def insert_evaluation(engine: Engine, record: dict) -> dict:
    """Store an evaluation (every column of ``evaluations`` but ``created_at``, which is now); returns its row."""
    row = {**record, "created_at": utc_now()}
    with engine.begin() as connection:
        connection.execute(evaluations.insert().values(**row))
    return _row(row)


def read_evaluation(engine: Engine, evaluation_id: str) -> dict | None:
    """One evaluation's row, or None when there is none."""
    query = sa.select(evaluations).where(evaluations.c.evaluation_id == evaluation_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return None if row is None else _row(row)


def read_evaluations(
    engine: Engine, *, model_id: str | None = None, deployment_id: str | None = None, space: str | None = None
) -> list[dict]:
    """Evaluations, oldest first, optionally only of a model version, a deployment and/or a space."""
    table = evaluations
    query = sa.select(table).order_by(table.c.created_at, table.c.evaluation_id)
    for column, value in (("model_id", model_id), ("deployment_id", deployment_id), ("space", space)):
        if value is not None:
            query = query.where(table.c[column] == value)
    with engine.connect() as connection:
        return [_row(row) for row in connection.execute(query).mappings()]


def insert_approval(engine: Engine, record: dict) -> dict:
    """Store an approval decision (``approval_id``, ``model_id``, ``evaluation_id``, ``approver``, ``decision``,
    ``reason``; ``created_at`` is now); returns its row."""
    row = {**record, "created_at": utc_now()}
    with engine.begin() as connection:
        connection.execute(approvals.insert().values(**row))
    return _row(row)


def read_approvals(engine: Engine, *, model_id: str | None = None, evaluation_id: str | None = None) -> list[dict]:
    """Approval decisions in the order they were made, optionally only of a model version and/or an evaluation;
    each with ``superseded``: True when a newer decision on the same evaluation exists (and counts instead)."""
    table = approvals
    query = sa.select(table).order_by(table.c.record_id)
    for column, value in (("model_id", model_id), ("evaluation_id", evaluation_id)):
        if value is not None:
            query = query.where(table.c[column] == value)
    with engine.connect() as connection:
        rows = [
            {k: v for k, v in _row(row).items() if k != "record_id"} for row in connection.execute(query).mappings()
        ]
    # The decisions on one evaluation are all of its version: a filter by version keeps all of them.
    latest = {row["evaluation_id"]: row["approval_id"] for row in rows}
    return [{**row, "superseded": latest[row["evaluation_id"]] != row["approval_id"]} for row in rows]


def write_monitor_config(engine: Engine, deployment_id: str, config: dict, updated_by: str | None = None) -> dict:
    """Store the monitor configuration of a deployment (replacing any); returns its row."""
    table, now = monitor_configs, utc_now()
    values = {"config": config, "updated_by": updated_by, "updated_at": now}
    with engine.begin() as connection:
        changed = connection.execute(table.update().where(table.c.deployment_id == deployment_id).values(**values))
        if changed.rowcount == 0:
            connection.execute(table.insert().values(deployment_id=deployment_id, **values))
    return {"deployment_id": deployment_id, **values}


def read_monitor_config(engine: Engine, deployment_id: str) -> dict | None:
    """The stored monitor configuration row of a deployment, or None when it has none."""
    query = sa.select(monitor_configs).where(monitor_configs.c.deployment_id == deployment_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return None if row is None else _row(row)
