"""Rows of the ``deployments`` table: a model version put under a name into a space.

Rows come back as plain mappings with UTC times; :mod:`utils.deployment` turns them into ``Deployment`` objects
and holds the rules (which spaces exist, what a valid name is).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.datamart.schema import deployments
from utils.times import as_utc, utc_now

_TIMES = ("created_at", "updated_at")


def _row(row) -> dict:
    return {name: as_utc(value) if name in _TIMES else value for name, value in row.items()}


def upsert_deployment(engine: Engine, name: str, space: str, model_id: str, status: str) -> dict:
    """Put ``model_id`` under ``name`` in ``space``: replace the model of that deployment in one UPDATE (it keeps
    its id), or insert a new one. Returns the row.

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
        row = connection.execute(sa.select(table).where(table.c.name == name, table.c.space == space)).mappings()
        return _row(row.one())


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
    """Delete a deployment's row (its records stay); False when there was none."""
    with engine.begin() as connection:
        deleted = connection.execute(deployments.delete().where(deployments.c.deployment_id == deployment_id))
    return deleted.rowcount > 0
