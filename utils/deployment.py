"""Deployments: a registered model version put into a space (dev, preprod, prod) for online scoring.

A deployment is a row in the data mart's ``deployments`` table; the scoring service
serves every deployment it finds there. A deployment is known by its id and by its
name within a space. Deploying a model under a name already deployed in that space
replaces the model in one UPDATE: the deployment keeps its id, and a request
arriving at any moment is scored by either the old model or the new one, never
refused. A model is checked before it is recorded: it must load from the registry
with only trusted types and predict the contract's classes.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils import config, datamart
from utils.registry import ModelRegistry
from utils.scoring import Scorer

#: The spaces a model can be deployed into, from trying out to production.
SPACES: tuple[str, ...] = ("dev", "preprod", "prod")
#: Status of a deployment that answers requests.
READY = "ready"
_COLUMNS = ("deployment_id", "name", "space", "model_id", "status", "created_at", "updated_at")


class DeploymentError(LookupError):
    """An unknown deployment, or a deployment request that cannot be carried out."""


@dataclass(frozen=True)
class Deployment:
    """One deployment as recorded in the data mart."""

    deployment_id: str
    name: str
    space: str
    model_id: str
    status: str
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict:
        """The deployment as JSON-able values (times in ISO 8601, UTC)."""
        record = asdict(self)
        record["created_at"] = self.created_at.isoformat()
        record["updated_at"] = self.updated_at.isoformat()
        return record


def registry_for(work: str | os.PathLike | None = None) -> ModelRegistry:
    """The model registry of the working directory (``<work dir>/registry``)."""
    return ModelRegistry(config.work_dir(work) / "registry")


def _from_row(row) -> Deployment:
    values = {name: row[name] for name in _COLUMNS}
    for moment in ("created_at", "updated_at"):
        stamp = values[moment]
        values[moment] = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    return Deployment(**values)


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise DeploymentError(f"unknown space {space!r}; choose one of {', '.join(SPACES)}")


def deploy(
    model_id: str,
    *,
    name: str = "credit-risk",
    space: str = "dev",
    engine: Engine | None = None,
    registry: ModelRegistry | None = None,
    work: str | os.PathLike | None = None,
) -> Deployment:
    """Deploy a registered model version (``credit-risk-v2``, or ``credit-risk-latest``) under ``name`` in ``space``.

    If ``name`` is already deployed in ``space``, its model is replaced atomically and
    the deployment keeps its id.

    Raises:
        DeploymentError: unknown space or empty name.
        RegistryError: the model is not in the registry or holds untrusted types.
        ValueError: the model does not predict the contract's classes.
    """
    _check_space(space)
    if not name or len(name) > 100:
        raise DeploymentError("a deployment name must have 1 to 100 characters")
    registry = registry or registry_for(work)
    model_id = registry.get(model_id).model_id  # resolves "-latest" to the version it means now
    Scorer(registry.load(model_id), model_id)  # refuses a model the service could not serve
    engine = engine or datamart.connect(work=work)
    try:
        return _record(engine, name, space, model_id)
    except sa.exc.IntegrityError:  # a concurrent deploy inserted the same name and space first
        return _record(engine, name, space, model_id)


def _record(engine: Engine, name: str, space: str, model_id: str) -> Deployment:
    table = datamart.deployments
    now = datamart.utc_now()
    with engine.begin() as connection:
        # UPDATE first, so that the transaction holds the write lock before it reads.
        replaced = connection.execute(
            table.update()
            .where(table.c.name == name, table.c.space == space)
            .values(model_id=model_id, status=READY, updated_at=now)
        )
        if replaced.rowcount == 0:
            connection.execute(
                table.insert().values(
                    deployment_id=str(uuid.uuid4()),
                    name=name,
                    space=space,
                    model_id=model_id,
                    status=READY,
                    created_at=now,
                    updated_at=now,
                )
            )
        row = connection.execute(sa.select(table).where(table.c.name == name, table.c.space == space)).mappings()
        return _from_row(row.one())


def get_deployment(
    deployment_id: str, *, engine: Engine | None = None, work: str | os.PathLike | None = None
) -> Deployment:
    """The deployment ``deployment_id``.

    Raises:
        DeploymentError: no such deployment.
    """
    engine = engine or datamart.connect(work=work)
    table = datamart.deployments
    with engine.connect() as connection:
        row = connection.execute(sa.select(table).where(table.c.deployment_id == deployment_id)).mappings().first()
    if row is None:
        raise DeploymentError(f"no deployment with id {deployment_id!r}")
    return _from_row(row)


def find_deployments(
    *,
    name: str | None = None,
    space: str | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
) -> list[Deployment]:
    """Deployments, optionally only those named ``name`` and/or in ``space``; by space, then name."""
    if space is not None:
        _check_space(space)
    engine = engine or datamart.connect(work=work)
    table = datamart.deployments
    query = sa.select(table).order_by(table.c.space, table.c.name)
    if name is not None:
        query = query.where(table.c.name == name)
    if space is not None:
        query = query.where(table.c.space == space)
    with engine.connect() as connection:
        return [_from_row(row) for row in connection.execute(query).mappings()]


def list_deployments(
    space: str | None = None, *, engine: Engine | None = None, work: str | os.PathLike | None = None
) -> pd.DataFrame:
    """One row per deployment (all spaces, or only ``space``), for display."""
    found = find_deployments(space=space, engine=engine, work=work)
    return pd.DataFrame([asdict(d) for d in found], columns=list(_COLUMNS))


def delete_deployment(
    deployment_id: str, *, engine: Engine | None = None, work: str | os.PathLike | None = None
) -> None:
    """Remove a deployment; its payload and feedback records stay in the data mart.

    Raises:
        DeploymentError: no such deployment.
    """
    engine = engine or datamart.connect(work=work)
    table = datamart.deployments
    with engine.begin() as connection:
        deleted = connection.execute(table.delete().where(table.c.deployment_id == deployment_id))
    if deleted.rowcount == 0:
        raise DeploymentError(f"no deployment with id {deployment_id!r}")
