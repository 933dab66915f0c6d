"""The lifecycle endpoints under the deployments API: history, monitor configuration, evaluations, approvals.

Protected by the API key like the deployments API, under the same ``/ml/v4`` prefix:

- ``GET /ml/v4/deployments/{id}/history``: which version served the deployment, from when to when;
- ``GET`` and ``PUT /ml/v4/deployments/{id}/monitor_config``: the monitors' configuration of the deployment;
- ``GET /ml/v4/deployments/{id}/evaluations``: the evaluations run on the deployment;
- ``POST /ml/v4/deployments/{id}/approvals``: approve or reject an evaluation run on the (pre-prod) deployment;
- ``GET /ml/v4/deployments/{id}/approvals``: the decisions on the deployment's evaluations;
- ``GET /ml/v4/models/{model_id}/evaluations`` and ``.../approvals``: those of a model version;
- ``POST /ml/v4/promotions``: deploy an approved version to the next space with its monitor configuration;
- ``GET /ml/v4/models/{model_id}/factsheet``: the version's factsheet, rendered now (JSON, or Markdown).

Handlers are a few lines calling :mod:`utils.lifecycle`; its errors become :class:`utils.scoring.InputError` (404
for an unknown record or model version, 409 when "Checks for Model Production" refuse, else 400 naming the field).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from utils import lifecycle
from utils.deployment import MAX_PERSON_LENGTH, PERSON_PATTERN, SPACES, DeploymentError, ProductionCheckError
from utils.factsheet import render_factsheet
from utils.lifecycle.records import EVALUATION_ID_PATTERN
from utils.registry import ModelNotFound, RegistryError
from utils.scoring import InputError
from utils.serving.routes import ServiceDep, require_key
from utils.serving.schemas import DEPLOYMENT_NAME, MODEL_REF, DeploymentInfo, ErrorBody

router = APIRouter(prefix="/ml/v4", tags=["Model lifecycle"], dependencies=[Depends(require_key)])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an operation documents: the API key's 401, the data mart's 503 and those it can give."""
    return {code: {"model": ErrorBody} for code in sorted({401, 503, *codes})}


class Period(BaseModel):
    deployment_id: str
    name: str
    space: str
    model_id: str
    started_at: str
    ended_at: str | None = Field(description="None while the version still serves the deployment")
    deployed_by: str | None
    reason: str | None


class History(BaseModel):
    deployment_id: str
    periods: list[Period]


#: A person's name as the OpenAPI schema documents it: as strict as the check behind it.
PERSON = {"pattern": PERSON_PATTERN, "maxLength": MAX_PERSON_LENGTH}


class MonitorConfigBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thresholds: dict[str, Any] | None = Field(None, description="Thresholds fields; those left out keep defaults")
    protected_groups: list[str] | dict[str, Any] | None = Field(None, description="attributes to monitor")
    schedule: dict[str, Any] | None = Field(None, description="every_minutes per monitor, delay_minutes")
    notifications: dict[str, Any] | None = Field(None, description="receivers (webhook, log) and delivery settings")
    updated_by: str | None = Field(None, description=lifecycle.PERSON_RULE, json_schema_extra=PERSON)


class MonitorConfigInfo(BaseModel):
    deployment_id: str
    document: dict[str, Any]
    stored: bool = Field(description="False when the deployment uses the monitors' defaults")
    updated_by: str | None
    updated_at: str | None


class EvaluationInfo(BaseModel):
    evaluation_id: str
    model_id: str
    deployment_id: str
    space: str
    baseline_model_id: str | None
    verdict: str
    summary: dict[str, Any]
    report_html: str
    report_json: str
    created_at: str


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_id: str = Field(description="the evaluated version, e.g. credit-risk-v2")
    evaluation_id: str = Field(pattern=EVALUATION_ID_PATTERN, description="the pre-prod evaluation's id, a UUID")
    decision: Literal[lifecycle.DECISIONS]  # type: ignore[valid-type]
    approver: str = Field(description=lifecycle.PERSON_RULE, json_schema_extra=PERSON)
    reason: str


class ApprovalInfo(BaseModel):
    approval_id: str
    model_id: str
    evaluation_id: str
    approver: str
    decision: str
    reason: str
    created_at: str
    superseded: bool = Field(description="True when a newer decision on the same evaluation counts instead")


class PromotionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_id: str = Field(json_schema_extra=MODEL_REF)
    to_space: Literal[SPACES[1:]] = SPACES[-1]  # type: ignore[valid-type]
    name: str | None = Field(None, max_length=100, json_schema_extra=DEPLOYMENT_NAME)
    deployed_by: str | None = Field(None, description=lifecycle.PERSON_RULE, json_schema_extra=PERSON)
    reason: str | None = None


class PromotionInfo(BaseModel):
    deployment: DeploymentInfo
    source_deployment_id: str
    monitor_config: MonitorConfigInfo
    evaluation_id: str | None
    approval_id: str | None


@contextmanager
def _answers(field: str | None = None):
    """Lifecycle errors as input errors: 404 for an unknown record, 409 for a refused production check."""
    try:
        yield
    except ProductionCheckError as error:
        raise InputError(str(error), field="model_id", status=409) from None
    except lifecycle.LifecycleError as error:
        raise InputError(str(error), field=error.field or field, status=404 if error.missing else 400) from None
    except RegistryError as error:
        status = 404 if isinstance(error, ModelNotFound) else 400
        raise InputError(str(error), field="model_id", status=status) from None
    except DeploymentError as error:  # a deployment or person name that breaks its rule (the message says which)
        raise InputError(str(error)) from None


@router.get("/deployments/{deployment_id}/history", response_model=History, responses=_errors(404))
def history(deployment_id: str, service: ServiceDep) -> History:
    """Which version served the deployment, oldest first (also after the deployment was removed)."""
    with _answers("deployment_id"):
        periods = lifecycle.deployment_history(deployment_id, engine=service.engine)
    return History(deployment_id=deployment_id, periods=[Period(**p.as_dict()) for p in periods])


@router.get("/deployments/{deployment_id}/monitor_config", response_model=MonitorConfigInfo, responses=_errors(404))
def get_monitor_config(deployment_id: str, service: ServiceDep) -> MonitorConfigInfo:
    """The monitors' configuration of the deployment (the defaults when none is stored)."""
    service.deployment(deployment_id, fresh=True)
    return MonitorConfigInfo(**lifecycle.monitor_config(deployment_id, engine=service.engine).as_dict())


@router.put(
    "/deployments/{deployment_id}/monitor_config", response_model=MonitorConfigInfo, responses=_errors(400, 404, 413)
)
def put_monitor_config(deployment_id: str, body: MonitorConfigBody, service: ServiceDep) -> MonitorConfigInfo:
    """Validate and store the monitors' configuration of the deployment."""
    document = body.model_dump(exclude={"updated_by"}, exclude_none=True)
    with _answers("body"):
        stored = lifecycle.set_monitor_config(
            deployment_id, document, updated_by=body.updated_by, engine=service.engine
        )
    return MonitorConfigInfo(**stored.as_dict())


@router.get("/deployments/{deployment_id}/evaluations", response_model=list[EvaluationInfo], responses=_errors())
def deployment_evaluations(deployment_id: str, service: ServiceDep) -> list[EvaluationInfo]:
    """The evaluations run on the deployment, oldest first."""
    found = lifecycle.list_evaluations(deployment_id=deployment_id, engine=service.engine)
    return [EvaluationInfo(**e.as_dict()) for e in found]


@router.post(
    "/deployments/{deployment_id}/approvals",
    status_code=201,
    response_model=ApprovalInfo,
    responses=_errors(400, 404, 413),
)
def decide(deployment_id: str, body: ApprovalRequest, service: ServiceDep) -> ApprovalInfo:
    """Approve or reject a pre-prod evaluation run on this deployment (a record: never changed, only superseded)."""
    with _answers("evaluation_id"):
        if lifecycle.get_evaluation(body.evaluation_id, engine=service.engine).deployment_id != deployment_id:
            raise InputError(f"evaluation {body.evaluation_id!r} was not run on this deployment", field="evaluation_id")
        made = lifecycle.decide(
            body.model_id,
            body.evaluation_id,
            decision=body.decision,
            approver=body.approver,
            reason=body.reason,
            engine=service.engine,
            registry=service.registry,
        )
    return ApprovalInfo(**made.as_dict())


@router.get("/deployments/{deployment_id}/approvals", response_model=list[ApprovalInfo], responses=_errors())
def deployment_approvals(deployment_id: str, service: ServiceDep) -> list[ApprovalInfo]:
    """The decisions on the evaluations run on the deployment, in the order they were made."""
    evaluated = {
        e.evaluation_id for e in lifecycle.list_evaluations(deployment_id=deployment_id, engine=service.engine)
    }
    found = [a for a in lifecycle.list_approvals(engine=service.engine) if a.evaluation_id in evaluated]
    return [ApprovalInfo(**a.as_dict()) for a in found]


@router.get("/models/{model_id}/evaluations", response_model=list[EvaluationInfo], responses=_errors())
def model_evaluations(model_id: str, service: ServiceDep) -> list[EvaluationInfo]:
    """The evaluations of a model version, oldest first."""
    return [EvaluationInfo(**e.as_dict()) for e in lifecycle.list_evaluations(model_id=model_id, engine=service.engine)]


@router.get("/models/{model_id}/approvals", response_model=list[ApprovalInfo], responses=_errors())
def model_approvals(model_id: str, service: ServiceDep) -> list[ApprovalInfo]:
    """The decisions on a model version's evaluations, in the order they were made."""
    return [ApprovalInfo(**a.as_dict()) for a in lifecycle.list_approvals(model_id=model_id, engine=service.engine)]


@router.post("/promotions", status_code=201, response_model=PromotionInfo, responses=_errors(400, 404, 409, 413))
def promote(body: PromotionRequest, service: ServiceDep) -> PromotionInfo:
    """Deploy the same registered version to the next space (into prod only when approved) and copy its monitor
    configuration."""
    with _answers("model_id"):
        done = lifecycle.promote(
            body.model_id,
            body.to_space,
            name=body.name,
            deployed_by=body.deployed_by,
            reason=body.reason,
            engine=service.engine,
            registry=service.registry,
        )
    service.scorer(done.deployment.model_id)
    service.forget_deployments()
    return PromotionInfo(
        deployment=DeploymentInfo(**done.deployment.as_dict()),
        source_deployment_id=done.source_deployment_id,
        monitor_config=MonitorConfigInfo(**done.monitor_config.as_dict()),
        evaluation_id=done.evaluation_id,
        approval_id=done.approval_id,
    )


MARKDOWN = "text/markdown"
#: The answer of the docs' example (shortened: a real factsheet holds every key of the version's metadata).
FACTSHEET_EXAMPLE = {
    "model_id": "credit-risk-v1",
    "model_type": "logistic_regression",
    "created_at": "2026-01-05T09:12:44+00:00",
    "metrics": {"auc_roc": 0.861, "accuracy": 0.8},
    "training_data": {"file": "train.csv", "sha256": "9f2c…", "rows": 3750, "description": "3,750 rows (…)"},
    "fairness": {
        "training_data": {"Sex": {"monitored": "female", "reference": "male", "disparate_impact": 0.93}},
        "test_decisions": {"Sex": {"monitored": "female", "reference": "male", "disparate_impact": 0.91}},
    },
    "intended_use": "Scores loan applicants described by the 20 German-credit features: …",
    "limitations": ["Trained and evaluated on German-credit-style data for teaching; …"],
    "evaluations": [{"evaluation_id": "6f1c…", "space": "preprod", "verdict": "passed", "summary": {}}],
    "approvals": [{"evaluation_id": "6f1c…", "decision": "approved", "approver": "Grace Hopper", "superseded": False}],
    "deployments": [
        {"name": "credit-risk", "space": "preprod", "started_at": "2026-01-05T09:20:01+00:00", "ended_at": None}
    ],
    "monitoring": [{"name": "credit-risk", "space": "preprod", "status": "ok", "alerts": [], "measurements": []}],
    "factsheet_generated_at": "2026-01-06T08:00:00+00:00",
}
_FACTSHEET_ANSWERS = {
    200: {
        "description": "The factsheet as JSON, or as Markdown when asked for",
        "content": {
            "application/json": {"example": FACTSHEET_EXAMPLE},
            MARKDOWN: {"schema": {"type": "string"}, "example": "# Model factsheet: credit-risk-v1\n\n…"},
        },
    },
    **_errors(400, 404),
}


@router.get("/models/{model_id}/factsheet", response_model=dict[str, Any], responses=_FACTSHEET_ANSWERS)
def factsheet(
    model_id: Annotated[str, Path(json_schema_extra=MODEL_REF)],  # documented; the registry's check names the rule
    request: Request,
    service: ServiceDep,
    format: Literal["json", "markdown"] | None = Query(None, description="markdown, or send Accept: text/markdown"),
) -> Any:
    """The version's factsheet, rendered now from its metadata and the data mart: intended use and limitations,
    training data, fairness at training time, evaluations, approval decisions, deployments, monitoring status."""
    try:
        document = service.registry.factsheet(model_id, engine=service.engine)  # "<name>-latest": its newest
    except ModelNotFound:
        raise InputError(f"no model version {model_id!r} in the registry", field="model_id", status=404) from None
    except RegistryError as error:  # a malformed id
        raise InputError(str(error), field="model_id") from None
    if format == "markdown" or (format is None and MARKDOWN in request.headers.get("accept", "")):
        return Response(render_factsheet(document), media_type=f"{MARKDOWN}; charset=utf-8")
    return document
