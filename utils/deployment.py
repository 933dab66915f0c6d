"""Deployments: a registered model version put into a space (dev, preprod, prod) for online scoring.

A deployment is a row in the data mart's ``deployments`` table; the scoring service
serves every deployment it finds there. A deployment is known by its id and by its
name within a space. Deploying a model under a name already deployed in that space
replaces the model in one UPDATE: the deployment keeps its id, and a request
arriving at any moment is scored by either the old model or the new one, never
refused. A model is checked before it is recorded: it must load from the registry
with only trusted types and predict the contract's classes.

A deployment name (:data:`NAME_RULE`) has 1 to 100 characters: ASCII letters, digits, ``-``, ``_`` and ``.``,
starting with a letter or digit, never ``..``; it appears in file names (monitoring reports), so it can never hold
a path separator.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils import datamart
from utils.registry import ModelRegistry, registry_for
from utils.scoring import Scorer

#: The spaces a model can be deployed into, from trying out to production.
SPACES: tuple[str, ...] = ("dev", "preprod", "prod")
#: Status of a deployment that answers requests.
READY = "ready"
#: Longest deployment name, in characters.
MAX_NAME_LENGTH = 100
#: The rule a deployment name follows, as shown in the error that refuses one.
NAME_RULE = (
    f"a deployment name has 1 to {MAX_NAME_LENGTH} characters: ASCII letters, digits, '-', '_' and '.', "
    "starting with a letter or digit, and never '..'"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # matched whole (fullmatch): no line end, no NUL
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


def _from_row(row: dict) -> Deployment:
    return Deployment(**{name: row[name] for name in _COLUMNS})


def is_valid_name(name: object) -> bool:
    """Whether ``name`` follows :data:`NAME_RULE` (and so is safe in a file name)."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_NAME_LENGTH
        and _NAME.fullmatch(name) is not None
        and ".." not in name
    )


def check_name(name: object) -> None:
    """Refuse a deployment name that does not follow :data:`NAME_RULE`.

    Raises:
        DeploymentError: the name breaks the rule (the message states the rule, and shows the name cut short).
    """
    if not is_valid_name(name):
        shown = repr(name) if len(repr(name)) <= 60 else f"{repr(name)[:60]}..."
        raise DeploymentError(f"invalid deployment name {shown}: {NAME_RULE}")


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
    the deployment keeps its id. ``name`` must follow :data:`NAME_RULE`: 1 to 100 characters, ASCII letters,
    digits, ``-``, ``_`` and ``.``, starting with a letter or digit, never ``..`` (so no path separator, line end
    or NUL byte); it names the deployment's monitoring report files.

    Raises:
        DeploymentError: unknown space, or a name that breaks :data:`NAME_RULE`.
        RegistryError: the model is not in the registry, its file is damaged (not a zip or skops file) or was
            changed since registration, or it holds untrusted types.
        ValueError: the model does not predict the contract's classes.
    """
    _check_space(space)
    check_name(name)
    registry = registry or registry_for(work)
    model_id = registry.get(model_id).model_id  # resolves "-latest" to the version it means now
    Scorer(registry.load(model_id), model_id)  # refuses a model the service could not serve
    engine = engine or datamart.connect(work=work)
    try:
        return _from_row(datamart.upsert_deployment(engine, name, space, model_id, READY))
    except sa.exc.IntegrityError:  # a concurrent deploy inserted the same name and space first
        return _from_row(datamart.upsert_deployment(engine, name, space, model_id, READY))


def get_deployment(
    deployment_id: str, *, engine: Engine | None = None, work: str | os.PathLike | None = None
) -> Deployment:
    """The deployment ``deployment_id``.

    Raises:
        DeploymentError: no such deployment.
    """
    row = datamart.read_deployment(engine or datamart.connect(work=work), deployment_id)
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
    rows = datamart.read_deployments(engine or datamart.connect(work=work), name=name, space=space)
    return [_from_row(row) for row in rows]


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
    if not datamart.remove_deployment(engine or datamart.connect(work=work), deployment_id):
        raise DeploymentError(f"no deployment with id {deployment_id!r}")
