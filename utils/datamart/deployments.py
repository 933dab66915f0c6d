"""Rows of the ``deployments`` table (a model version put under a name into a space) and of its history.

Rows come back as plain mappings with UTC times; :mod:`utils.deployment` turns them into ``Deployment`` objects
and holds the rules (which spaces exist, what a valid name is). Every change of a deployment's model writes its
``deployment_history`` in the same transaction: the open period of the old version ends and one of the new begins;
removing the deployment ends its open period.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.engine import new_id
from utils.datamart.schema import deployment_history, deployments
from utils.times import as_utc, utc_now

_TIMES = ("created_at", "updated_at", "started_at", "ended_at")


def _row(row) -> dict:
    return {name: as_utc(value) if name in _TIMES and value is not None else value for name, value in row.items()}


def _close_period(connection, deployment_id: str, now) -> None:
    table = deployment_history
    open_period = (table.c.deployment_id == deployment_id) & table.c.ended_at.is_(None)
    connection.execute(table.update().where(open_period).values(ended_at=now))


def _record_period(connection, row: dict, now, deployed_by: str | None, reason: str | None) -> None:
    """Open a period for the deployment's model unless that model's period is open already (a re-deploy)."""
    table = deployment_history
    open_model = connection.execute(
        sa.select(table.c.model_id).where(table.c.deployment_id == row["deployment_id"], table.c.ended_at.is_(None))
    ).scalar()
    if open_model == row["model_id"]:
        return
    _close_period(connection, row["deployment_id"], now)
    connection.execute(
        table.insert().values(
            history_id=new_id(),
            deployment_id=row["deployment_id"],
            name=row["name"],
            space=row["space"],
            model_id=row["model_id"],
            started_at=now,
            deployed_by=deployed_by,
            reason=reason,
        )
    )


def upsert_deployment(
    engine: Engine,
    name: str,
    space: str,
    model_id: str,
    status: str,
    *,
    deployed_by: str | None = None,
    reason: str | None = None,
) -> dict:
    """Put ``model_id`` under ``name`` in ``space``: replace the model of that deployment in one UPDATE (it keeps
    its id), or insert a new one; a change of model ends the old version's period of history and opens the new
    one's, by ``deployed_by`` for ``reason`` (when given). Returns the deployment's row.

    Raises:
        sqlalchemy.exc.IntegrityError: a concurrent call inserted the same name and space first (call again).
    """
    table, now = deployments, utc_now()
    with engine.begin() as connection:
        # UPDATE first, so that the transaction holds the write lock before it reads.
        replaced = connection.execute(
            table.update()
            .where(table.c.name == name, table.c.space == space)
            .values(model_id=model_id, status=status, updated_at=now)
        )
        if replaced.rowcount == 0:
            connection.execute(
                table.insert().values(
                    deployment_id=str(uuid.uuid4()),
                    name=name,
                    space=space,
                    model_id=model_id,
                    status=status,
                    created_at=now,
                    updated_at=now,
                )
            )
        found = connection.execute(sa.select(table).where(table.c.name == name, table.c.space == space))
        row = _row(found.mappings().one())
        _record_period(connection, row, now, deployed_by, reason)
        return row


def read_deployment(engine: Engine, deployment_id: str) -> dict | None:
    """One deployment's row, or None when there is no such deployment."""
    query = sa.select(deployments).where(deployments.c.deployment_id == deployment_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return None if row is None else _row(row)


def read_deployments(engine: Engine, *, name: str | None = None, space: str | None = None) -> list[dict]:
    """Deployment rows, optionally only those named ``name`` and/or in ``space``; by space, then name."""
    table = deployments
    query = sa.select(table).order_by(table.c.space, table.c.name)
    if name is not None:
        query = query.where(table.c.name == name)
    if space is not None:
        query = query.where(table.c.space == space)
    with engine.connect() as connection:
        return [_row(row) for row in connection.execute(query).mappings()]


def remove_deployment(engine: Engine, deployment_id: str) -> bool:
    """Delete a deployment's row and end its open period of history (its records stay); False when there was none."""
    with engine.begin() as connection:
        deleted = connection.execute(deployments.delete().where(deployments.c.deployment_id == deployment_id))
        if deleted.rowcount > 0:
            _close_period(connection, deployment_id, utc_now())
    return deleted.rowcount > 0


def read_deployment_history(
    engine: Engine,
    deployment_id: str | None = None,
    *,
    name: str | None = None,
    space: str | None = None,
    model_id: str | None = None,
) -> list[dict]:
    """Periods of service, oldest first: of one deployment, and/or of a name, a space or a model version."""
    table = deployment_history
    query = sa.select(table).order_by(table.c.started_at, table.c.history_id)
    for column, value in (("deployment_id", deployment_id), ("name", name), ("space", space), ("model_id", model_id)):
        if value is not None:
            query = query.where(table.c[column] == value)
    with engine.connect() as connection:
        return [_row(row) for row in connection.execute(query).mappings()]
