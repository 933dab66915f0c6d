"""The endpoints: module-level routers whose handlers call :mod:`utils.serving.service`.

A handler reaches its process's :class:`~utils.serving.service.Service` through the dependency
:func:`get_service` (``request.app.state.service``, set by :func:`utils.serving.app.create_app`); the API key is
checked by the dependency :func:`require_key` on every router but the open ones (health, the form page).

Handlers that touch the data mart, the registry or a model are plain ``def``: FastAPI runs them in its thread
pool, so that a slow or locked data mart (a SQLite writer waits up to its busy timeout) never blocks the event
loop, and ``/v2/health/live`` answers at once whatever the data mart does. Only handlers that wait for nothing
are ``async def``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from utils.scoring import parse_v2_inputs
from utils.serving import service as ops
from utils.serving.errors import error_response
from utils.serving.form import render_form
from utils.serving.schemas import (
    ERRORS,
    DeploymentInfo,
    DeploymentList,
    DeploymentRequest,
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ScoringRequest,
    ScoringResponse,
    Space,
)
from utils.serving.service import API_KEY_ENV, Service

_BEARER = HTTPBearer(auto_error=False, description=f"The API key from ${API_KEY_ENV}, when the server has one.")
_V2 = "Open Inference Protocol (KServe V2)"


async def get_service(request: Request) -> Service:
    """The service of the app that received ``request``."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def require_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)], service: ServiceDep
) -> None:
    """Refuse the request with a 401 unless it carries the server's API key (when the server has one)."""
    key = service.settings.api_key
    if key and not (credentials and hmac.compare_digest(credentials.credentials.encode(), key.encode())):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong API key: send the header Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


page = APIRouter()
wml = APIRouter(prefix="/ml/v4", tags=["Watson Machine Learning v4"], dependencies=[Depends(require_key)])
v2 = APIRouter(prefix="/v2", tags=[_V2])
v2_protected = APIRouter(prefix="/v2", tags=[_V2], dependencies=[Depends(require_key)])
#: Every router, in the order the app includes them.
ROUTERS = (page, wml, v2, v2_protected)


@page.get("/", response_class=HTMLResponse, include_in_schema=False)
async def form_page(service: ServiceDep) -> str:
    return render_form(api_key_required=bool(service.settings.api_key))


@wml.post("/deployments/{deployment_id}/predictions", response_model=ScoringResponse, responses=ERRORS)
def predictions(deployment_id: str, body: ScoringRequest, service: ServiceDep) -> ScoringResponse:
    """Score records in the WML v4 format; every record is stored with its transaction id."""
    deployment = service.deployment(deployment_id)
    blocks = ops.parse_blocks(body.input_data, max_rows=service.settings.max_rows)
    scorer = service.scorer(deployment.model_id)
    return ops.wml_response(deployment, blocks, ops.score(service.engine, scorer, deployment, ops.concat(blocks)))


@wml.post("/deployments/{deployment_id}/feedback", response_model=FeedbackResponse, responses=ERRORS)
def feedback(deployment_id: str, body: FeedbackRequest, service: ServiceDep) -> FeedbackResponse:
    """Store labelled records (the 20 fields and ``Risk``) for quality monitoring."""
    return ops.record_feedback(service, deployment_id, body)


@wml.get("/deployments", response_model=DeploymentList, responses=ERRORS)
def deployments(service: ServiceDep, space: Space | None = None, name: str | None = None) -> DeploymentList:
    """The deployments, optionally of one space and/or name."""
    return ops.list_deployments(service, space, name)


@wml.post("/deployments", status_code=201, response_model=DeploymentInfo, responses=ERRORS)
def create_deployment(body: DeploymentRequest, service: ServiceDep) -> DeploymentInfo:
    """Deploy a registered model version, replacing the model of ``name`` in ``space`` if it exists."""
    return ops.create_deployment(service, body)


@wml.get("/deployments/{deployment_id}", response_model=DeploymentInfo, responses=ERRORS)
def deployment_info(deployment_id: str, service: ServiceDep) -> DeploymentInfo:
    """One deployment."""
    return ops.deployment_info(service, deployment_id)


@wml.delete("/deployments/{deployment_id}", status_code=204, responses=ERRORS)
def remove_deployment(deployment_id: str, service: ServiceDep) -> Response:
    """Delete a deployment (its payload and feedback records stay in the data mart)."""
    ops.remove_deployment(service, deployment_id)
    return Response(status_code=204)


@v2.get("/health/live")
async def live() -> dict[str, bool]:
    """The server process answers (on the event loop, touching nothing else: it never waits for the data mart)."""
    return {"live": True}


@v2.get("/health/ready", responses={503: {"model": ErrorBody}})
async def ready(service: ServiceDep) -> Any:
    """The server can reach its data mart (503 when it cannot, or does not answer within a short timeout)."""
    problem = await service.ready_problem()
    return error_response(503, problem) if problem else {"ready": True}


@v2.get("/models/{name}/ready", responses=ERRORS)
def model_ready(name: str, service: ServiceDep) -> dict[str, Any]:
    """The deployment (by id, or by name if unique) exists and its model is loaded."""
    service.scorer(service.by_model_name(name).model_id)
    return {"name": name, "ready": True}


@v2_protected.get("/models/{name}", response_model=ModelMetadata, responses=ERRORS)
def model_metadata(name: str, service: ServiceDep) -> ModelMetadata:
    """Inputs (one per field) and outputs of a deployed model."""
    return ops.model_metadata(service, name)


@v2_protected.post("/models/{name}/infer", response_model=InferenceResponse, responses=ERRORS)
def infer(name: str, body: InferenceRequest, service: ServiceDep) -> InferenceResponse:
    """Score records sent as one input tensor per field; every record is stored with its transaction id."""
    deployment = service.by_model_name(name)
    columns = parse_v2_inputs(body.inputs, max_rows=service.settings.max_rows)
    scorer = service.scorer(deployment.model_id)
    return ops.v2_response(name, deployment, body.id, ops.score(service.engine, scorer, deployment, columns))
