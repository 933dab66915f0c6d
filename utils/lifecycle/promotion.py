"""Promotion of a registered model version to the next space, and the history of who served where and when.

:func:`promote` deploys the *same* registered version (no retraining: the registry's file is what the next space
serves) and copies the monitor configuration of the deployment it comes from. Into ``prod`` it comes from the
pre-prod deployment of its approved evaluation, and only with one ("Checks for Model Production",
:func:`utils.deployment.approved_evaluation`); into ``preprod`` from the ``dev`` deployment serving it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from utils import datamart
from utils.deployment import PRODUCTION, SPACES, Deployment, approved_evaluation, deploy, find_deployments
from utils.lifecycle.monitor_config import MonitorConfig, monitor_config, set_monitor_config
from utils.lifecycle.records import LifecycleError
from utils.registry import ModelRegistry, registry_for


@dataclass(frozen=True)
class ServicePeriod:
    """A period during which a model version served a deployment; ``ended_at`` is None while it still does."""

    deployment_id: str
    name: str
    space: str
    model_id: str
    started_at: datetime
    ended_at: datetime | None
    deployed_by: str | None
    reason: str | None

    def as_dict(self) -> dict:
        """The period as JSON-able values (times in ISO 8601, UTC)."""
        record = asdict(self)
        record["started_at"] = self.started_at.isoformat()
        record["ended_at"] = None if self.ended_at is None else self.ended_at.isoformat()
        return record


def deployment_history(
    deployment_id: str | None = None,
    *,
    name: str | None = None,
    space: str | None = None,
    model_id: str | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
) -> list[ServicePeriod]:
    """Which version served when, oldest first: of one deployment (also after its removal), a name, a space or
    a model version.

    Raises:
        LifecycleError: ``deployment_id`` names a deployment that never existed.
    """
    engine = engine or datamart.connect(work=work)
    rows = datamart.read_deployment_history(engine, deployment_id, name=name, space=space, model_id=model_id)
    if deployment_id is not None and not rows:
        raise LifecycleError(
            f"no deployment with id {str(deployment_id)[:60]!r} in the deployment history",
            field="deployment_id",
            missing=True,
        )
    return [ServicePeriod(**{k: v for k, v in row.items() if k != "history_id"}) for row in rows]


@dataclass(frozen=True)
class Promotion:
    """A promoted version: its new deployment, the deployment it came from, and what allowed it."""

    deployment: Deployment
    source_deployment_id: str
    monitor_config: MonitorConfig
    evaluation_id: str | None = None
    approval_id: str | None = None


def _source(model_id: str, to_space: str, name: str | None, engine: Engine) -> tuple[str, str | None, str | None]:
    """The deployment ``model_id`` comes from, and the evaluation and approval that allow it into ``to_space``."""
    if to_space == PRODUCTION:
        evaluation, approval = approved_evaluation(model_id, engine=engine)
        return evaluation["deployment_id"], evaluation["evaluation_id"], approval["approval_id"]
    previous = SPACES[SPACES.index(to_space) - 1]
    serving = [d for d in find_deployments(space=previous, engine=engine) if d.model_id == model_id]
    if name is not None:
        serving = [d for d in serving if d.name == name] or serving
    if len(serving) != 1:
        found = "no deployment" if not serving else f"{len(serving)} deployments ({', '.join(d.name for d in serving)})"
        raise LifecycleError(f"{model_id!r} has {found} in {previous}: promotion to {to_space} needs exactly one")
    return serving[0].deployment_id, None, None


def promote(
    model_id: str,
    to_space: str = PRODUCTION,
    *,
    name: str | None = None,
    deployed_by: str | None = None,
    reason: str | None = None,
    engine: Engine | None = None,
    registry: ModelRegistry | None = None,
    work: str | os.PathLike | None = None,
) -> Promotion:
    """Deploy the registered version ``model_id`` into ``to_space`` (``preprod`` or ``prod``) as ``name`` (by
    default, the name it has in the space before) and copy the monitor configuration of that deployment.

    Raises:
        LifecycleError: an unknown space, ``dev`` (nothing comes before it), or no single deployment to come from.
        ProductionCheckError: into ``prod`` without an approved pre-prod evaluation (the message says what is
            missing).
        RegistryError, DeploymentError: as :func:`utils.deployment.deploy`.
    """
    if to_space not in SPACES[1:]:
        raise LifecycleError(f"a version is promoted into {' or '.join(SPACES[1:])}, not {to_space!r}")
    engine = engine or datamart.connect(work=work)
    registry = registry or registry_for(work)
    model_id = registry.get(model_id).model_id  # "-latest" means the version it names now
    source_id, evaluation_id, approval_id = _source(model_id, to_space, name, engine)
    source_name = datamart.read_deployment_history(engine, source_id)[-1]["name"]
    allowed = f" (evaluation {evaluation_id}, approval {approval_id})" if evaluation_id else ""
    deployed = deploy(
        model_id,
        name=name or source_name,
        space=to_space,
        engine=engine,
        registry=registry,
        deployed_by=deployed_by,
        reason=reason or f"promoted from deployment {source_id}{allowed}",
    )
    copied = monitor_config(source_id, engine=engine)
    config = set_monitor_config(deployed.deployment_id, copied.document, updated_by=deployed_by, engine=engine)
    return Promotion(deployed, source_id, config, evaluation_id, approval_id)
