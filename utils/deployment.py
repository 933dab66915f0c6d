"""Deployments: a registered model version put into a space (dev, preprod, prod) for online scoring.

A deployment is a row in the data mart's ``deployments`` table; the scoring service
serves every deployment it finds there. A deployment is known by its id and by its
name within a space. Deploying a model under a name already deployed in that space
replaces the model in one UPDATE: the deployment keeps its id, and a request
arriving at any moment is scored by either the old model or the new one, never
refused. A model is checked before it is recorded: it must load from the registry
with only trusted types and predict the contract's classes.

"Checks for Model Production": a model version goes into ``prod`` only when its latest evaluation in ``preprod``
passed and the latest decision on that evaluation approved it (:func:`production_problem` says what is missing);
:mod:`utils.lifecycle` records the evaluations and decisions, and promotes approved versions.

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
from utils.choices import MAX_PERSON_LENGTH, PERSON_RULE, PREPRODUCTION, PRODUCTION, SPACES
from utils.registry import ModelRegistry, registry_for
from utils.scoring import Scorer

#: Verdicts of an evaluation, and decisions on one.
PASSED, FAILED = "passed", "failed"
APPROVED, REJECTED = "approved", "rejected"
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
#: :data:`NAME_RULE` but its length as a JSON Schema (ECMA) pattern, ``..`` excluded: what the API documents.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?$"
_PERSON = re.compile(r"[A-Za-z][A-Za-z0-9._@-]*(?: [A-Za-z0-9._@-]+)*")  # matched whole
#: :data:`PERSON_RULE` but its length as a JSON Schema (ECMA) pattern: what the API documents.
PERSON_PATTERN = f"^{_PERSON.pattern}$"
_COLUMNS = ("deployment_id", "name", "space", "model_id", "status", "created_at", "updated_at")


class DeploymentError(LookupError):
    """An unknown deployment, or a deployment request that cannot be carried out."""


class ProductionCheckError(DeploymentError):
    """A prod deployment of a version without an approved pre-prod evaluation; the message says what is missing."""


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


def check_person(name: object, role: str = "deployed_by") -> None:
    """Refuse a person's name (``role``: who it names) that does not follow :data:`PERSON_RULE`.

    Raises:
        DeploymentError: the name breaks the rule (the message names the role and states the rule).
    """
    valid = isinstance(name, str) and len(name) <= MAX_PERSON_LENGTH and _PERSON.fullmatch(name) is not None
    if not valid:
        shown = repr(name) if len(repr(name)) <= 60 else f"{repr(name)[:60]}..."
        raise DeploymentError(f"invalid {role} {shown}: {PERSON_RULE}")


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise DeploymentError(f"unknown space {space!r}; choose one of {', '.join(SPACES)}")


def approved_evaluation(model_id: str, *, engine: Engine) -> tuple[dict, dict]:
    """The latest pre-prod evaluation of ``model_id`` and the latest decision on it, when that one approves it.

    Raises:
        ProductionCheckError: no pre-prod evaluation, the latest failed, it has no decision, or it was rejected.
    """
    evaluated = datamart.read_evaluations(engine, model_id=model_id, space=PREPRODUCTION)
    refused = f"model {model_id!r} cannot be deployed to {PRODUCTION}"
    if not evaluated:
        raise ProductionCheckError(f"{refused}: it has no {PREPRODUCTION} evaluation; evaluate it in {PREPRODUCTION}")
    latest = evaluated[-1]
    about = f"its latest {PREPRODUCTION} evaluation {latest['evaluation_id']!r}"
    if latest["verdict"] != PASSED:
        raise ProductionCheckError(f"{refused}: {about} {latest['verdict']}; only a passed evaluation can be approved")
    decisions = datamart.read_approvals(engine, evaluation_id=latest["evaluation_id"])
    if not decisions:
        raise ProductionCheckError(f"{refused}: {about} passed but is not approved; a model validator must approve it")
    decision = decisions[-1]
    if decision["decision"] != APPROVED:
        raise ProductionCheckError(
            f"{refused}: {about} was {decision['decision']} by {decision['approver']!r} "
            f"(approval {decision['approval_id']!r}): {decision['reason']}"
        )
    return latest, decision


def production_problem(
    model_id: str, *, engine: Engine | None = None, work: str | os.PathLike | None = None
) -> str | None:
    """What keeps ``model_id`` out of prod ("Checks for Model Production"), or None when nothing does."""
    try:
        approved_evaluation(model_id, engine=engine or datamart.connect(work=work))
    except ProductionCheckError as error:
        return str(error)
    return None


def deploy(
    model_id: str,
    *,
    name: str = "credit-risk",
    space: str = "dev",
    engine: Engine | None = None,
    registry: ModelRegistry | None = None,
    work: str | os.PathLike | None = None,
    deployed_by: str | None = None,
    reason: str | None = None,
) -> Deployment:
    """Deploy a registered model version (``credit-risk-v2``, or ``credit-risk-latest``) under ``name`` in ``space``.

    If ``name`` is already deployed in ``space``, its model is replaced atomically and
    the deployment keeps its id. ``name`` must follow :data:`NAME_RULE`: 1 to 100 characters, ASCII letters,
    digits, ``-``, ``_`` and ``.``, starting with a letter or digit, never ``..`` (so no path separator, line end
    or NUL byte); it names the deployment's monitoring report files. ``deployed_by`` and ``reason``, when given,
    are kept in the deployment's history. A version goes into ``prod`` only with an approved pre-prod evaluation.
    The factsheets of the deployed version and of the one it replaces are regenerated.

    Raises:
        DeploymentError: unknown space, or a name that breaks :data:`NAME_RULE`.
        ProductionCheckError: ``space`` is prod and the version's evaluation in preprod is missing, failed, not
            approved or rejected (the message says which).
        RegistryError: the model is not in the registry, its file is damaged (not a zip or skops file) or was
            changed since registration, or it holds untrusted types.
        ValueError: the model does not predict the contract's classes.
    """
    _check_space(space)
    check_name(name)
    if deployed_by is not None:
        check_person(deployed_by)
    registry = registry or registry_for(work)
    model_id = registry.get(model_id).model_id  # resolves "-latest" to the version it means now
    Scorer(registry.load(model_id), model_id)  # refuses a model the service could not serve
    engine = engine or datamart.connect(work=work)
    if space == PRODUCTION:
        approved_evaluation(model_id, engine=engine)
    replaced = [row["model_id"] for row in datamart.read_deployments(engine, name=name, space=space)]
    record = {"deployed_by": deployed_by, "reason": reason}
    try:
        row = datamart.upsert_deployment(engine, name, space, model_id, READY, **record)
    except sa.exc.IntegrityError:  # a concurrent deploy inserted the same name and space first
        row = datamart.upsert_deployment(engine, name, space, model_id, READY, **record)
    for changed in dict.fromkeys([model_id, *replaced]):  # the new version's factsheet, and the replaced one's
        registry.write_factsheet(changed, engine=engine)
    return _from_row(row)


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
    deployment_id: str,
    *,
    engine: Engine | None = None,
    registry: ModelRegistry | None = None,
    work: str | os.PathLike | None = None,
) -> None:
    """Remove a deployment; its payload and feedback records stay in the data mart, and the factsheet of the
    version it served says until when it did.

    Raises:
        DeploymentError: no such deployment.
    """
    engine = engine or datamart.connect(work=work)
    row = datamart.read_deployment(engine, deployment_id)
    if row is None or not datamart.remove_deployment(engine, deployment_id):
        raise DeploymentError(f"no deployment with id {deployment_id!r}")
    (registry or registry_for(work)).write_factsheet(row["model_id"], engine=engine)
