"""The endpoints: module-level routers whose handlers call :mod:`utils.serving.service`.

A handler reaches its process's :class:`~utils.serving.service.Service` through the dependency
:func:`get_service` (``request.app.state.service``, set by :func:`utils.serving.app.create_app`); the API key is
checked by the dependency :func:`require_key` on every router but the open ones (health, the form page).

Handlers that touch the data mart, the registry or a model are plain ``def``: FastAPI runs them in its thread
pool, so that a slow or locked data mart (a SQLite writer waits up to its busy timeout) never blocks the event
loop, and ``/v2/health/live`` answers at once whatever the data mart does. Only handlers that wait for nothing
are ``async def``. The V2 ``infer`` endpoint reads its body itself (JSON with or without a ``Content-Type``, or
Triton's binary tensor data extension, :mod:`utils.serving.binary_tensors`) in the async dependency
:func:`inference_request`, and answers in JSON or binary as the request asks. Well-formed WML v4 scoring requests are
answered before they reach these routers, by :mod:`utils.serving.direct_route`; ``predictions`` answers the rest
and documents the operation.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from utils.data import CATEGORIES, CLASS_ORDER, FEATURES
from utils.deployment import Deployment
from utils.scoring import InputError, parse_v2_inputs
from utils.serving import binary_tensors
from utils.serving import service as ops
from utils.serving.direct_route import json_response, key_accepted
from utils.serving.errors import error_response, parse_json, validate_body
from utils.serving.form import render_form
from utils.serving.schemas import (
    EXAMPLE,
    EXAMPLE_ROW,
    FEEDBACK_BODY,
    V2_OUTPUTS,
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
    Tensor,
)
from utils.serving.service import API_KEY_ENV, ModelUnavailable, Service

_BEARER = HTTPBearer(auto_error=False, description=f"The API key from ${API_KEY_ENV}, when the server has one.")
_V2 = "Open Inference Protocol (KServe V2)"
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an operation documents: only those it can give."""
    return {code: {"model": ErrorBody} for code in codes}


def _example(summary: str, value: Any) -> dict[str, dict[str, Any]]:
    return {"applicant": {"summary": summary, "value": value}}


#: Request bodies of the docs, each valid as it stands (what "Try it out" sends).
SCORING_EXAMPLE = _example("One applicant", EXAMPLE)
DEPLOYMENT_EXAMPLE = _example(
    "Deploy version 1 in dev", {"model_id": "credit-risk-v1", "name": "credit-risk", "space": "dev"}
)
INFERENCE_EXAMPLE = _example(
    "One applicant, one tensor per field",
    {
        "id": "example-1",
        "inputs": [
            {"name": name, "shape": [1], "datatype": "BYTES" if name in CATEGORIES else "INT64", "data": [value]}
            for name, value in zip(FEATURES, EXAMPLE_ROW, strict=True)
        ],
    },
)


async def get_service(request: Request) -> Service:
    """The service of the app that received ``request``."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def _authorised(service: Service, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """The server has no API key, or the request carries it."""
    return key_accepted(service.settings.api_key, credentials.credentials if credentials else None)


async def require_key(credentials: CredentialsDep, service: ServiceDep) -> None:
    """Refuse the request with a 401 unless it carries the server's API key (when the server has one)."""
    if not _authorised(service, credentials):
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


@wml.post(
    "/deployments/{deployment_id}/predictions",
    response_model=ScoringResponse,
    responses=_errors(400, 401, 404, 413, 503),
)
def predictions(
    deployment_id: str, body: Annotated[ScoringRequest, Body(openapi_examples=SCORING_EXAMPLE)], service: ServiceDep
) -> Response:
    """Score records in the WML v4 format; every record is stored with its transaction id."""
    return json_response(ops.predict(service, deployment_id, body))


async def feedback_body(request: Request) -> ops.Feedback:
    """The feedback a body holds: CSV bytes (``Content-Type: text/csv``), else JSON: WML v4 blocks or a list of
    row objects."""
    raw = await request.body()
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() == "text/csv":
        return raw
    payload = parse_json(raw)
    return payload if isinstance(payload, list) else validate_body(FeedbackRequest, payload)


@wml.post(
    "/deployments/{deployment_id}/feedback",
    response_model=FeedbackResponse,
    responses=_errors(400, 401, 404, 413, 503),
    openapi_extra=FEEDBACK_BODY,
)
def feedback(
    deployment_id: str, body: Annotated[ops.Feedback, Depends(feedback_body)], service: ServiceDep
) -> FeedbackResponse:
    """Store labelled records (the 20 fields and ``Risk``, optionally the ``transaction_id`` each labels) for
    quality monitoring: WML v4 ``fields``/``values``, a JSON list of row objects, or CSV (``text/csv``)."""
    return ops.record_feedback(service, deployment_id, body)


@wml.get("/deployments", response_model=DeploymentList, responses=_errors(400, 401, 503))
def deployments(service: ServiceDep, space: Space | None = None, name: str | None = None) -> DeploymentList:
    """The deployments, optionally of one space and/or name."""
    return ops.list_deployments(service, space, name)


@wml.post(
    "/deployments", status_code=201, response_model=DeploymentInfo, responses=_errors(400, 401, 404, 409, 413, 503)
)
def create_deployment(
    body: Annotated[DeploymentRequest, Body(openapi_examples=DEPLOYMENT_EXAMPLE)], service: ServiceDep
) -> DeploymentInfo:
    """Deploy a registered model version, replacing the model of ``name`` in ``space`` if it exists."""
    return ops.create_deployment(service, body)


@wml.get("/deployments/{deployment_id}", response_model=DeploymentInfo, responses=_errors(401, 404, 503))
def deployment_info(deployment_id: str, service: ServiceDep) -> DeploymentInfo:
    """One deployment."""
    return ops.deployment_info(service, deployment_id)


@wml.delete("/deployments/{deployment_id}", status_code=204, responses=_errors(401, 404, 503))
def remove_deployment(deployment_id: str, service: ServiceDep) -> Response:
    """Delete a deployment (its payload and feedback records stay in the data mart)."""
    ops.remove_deployment(service, deployment_id)
    return Response(status_code=204)


@v2.get("/health/live")
async def live() -> dict[str, bool]:
    """The server process answers (on the event loop, touching nothing else: it never waits for the data mart)."""
    return {"live": True}


@v2.get("/health/ready", responses=_errors(503))
async def ready(service: ServiceDep) -> Any:
    """The server can reach its data mart (503 when it cannot, or does not answer within a short timeout)."""
    problem = await service.ready_problem()
    return error_response(503, problem) if problem else {"ready": True}


@v2.get("/models/{name}/ready", responses=_errors(400, 404, 503))
def model_ready(name: str, service: ServiceDep, credentials: CredentialsDep) -> dict[str, Any]:
    """The deployment (by id, or by name if unique) exists and its model is loaded.

    Open to all; without the API key (when the server has one) an error names no deployment or model."""
    try:
        service.scorer(service.by_model_name(name).model_id)
    except (InputError, ModelUnavailable) as error:
        if _authorised(service, credentials):
            raise
        status_code = error.status if isinstance(error, InputError) else 503
        raise InputError(f"{name!r} is not one ready deployment", field="name", status=status_code) from None
    return {"name": name, "ready": True}


@v2_protected.get("/models/{name}", response_model=ModelMetadata, responses=_errors(400, 401, 404, 503))
def model_metadata(name: str, service: ServiceDep) -> ModelMetadata:
    """Inputs (one per field) and outputs of a deployed model."""
    return ops.model_metadata(service, name)


async def inference_request(request: Request) -> InferenceRequest:
    """The body of an inference request: JSON (any or no ``Content-Type``), or a JSON header and binary tensors."""
    header_length = request.headers.get(binary_tensors.HEADER_LENGTH)
    header, binary = binary_tensors.split_body(await request.body(), header_length)
    return validate_body(InferenceRequest, binary_tensors.attach_binary_inputs(parse_json(header), binary))


#: The body of ``infer`` as the docs show it (the dependency reads it, so FastAPI cannot tell). The binary tensor
#: data extension (a JSON header of ``Inference-Header-Content-Length`` bytes, then each input's bytes) is described
#: in words: no schema can say which byte strings hold one, and "any bytes" would be looser than what is accepted.
INFERENCE_BODY = {
    "required": True,
    "description": f"JSON, with or without a Content-Type; or Triton's binary tensor data extension: a JSON header of "
    f"{binary_tensors.HEADER_LENGTH} bytes, then each input with parameters.binary_data_size, in order.",
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/InferenceRequest"},
            "examples": INFERENCE_EXAMPLE,
        },
    },
}


def _v2_reply(reply: InferenceResponse, binary: dict[str, bool]) -> Response:
    content, header_length = binary_tensors.encode_response(reply.model_dump(mode="json"), binary)
    if header_length is None:
        return Response(content, media_type="application/json")
    headers = {binary_tensors.HEADER_LENGTH: str(header_length)}
    return Response(content, media_type="application/octet-stream", headers=headers)


def v2_response(name: str, deployment: Deployment, request_id: str | None, scored: ops.Scored) -> InferenceResponse:
    """The Open Inference Protocol response: ``prediction``, ``probability`` (flattened) and ``transaction_id``."""
    rows = len(scored.labels)
    outputs = [
        Tensor(name="prediction", shape=[rows], datatype="BYTES", data=scored.labels),
        Tensor(
            name="probability",
            shape=[rows, len(CLASS_ORDER)],
            datatype="FP64",
            data=[p for pair in scored.probabilities for p in pair],
            parameters={"classes": list(CLASS_ORDER)},
        ),
        Tensor(name="transaction_id", shape=[rows], datatype="BYTES", data=scored.transaction_ids),
    ]
    return InferenceResponse(model_name=name, model_version=deployment.model_id, id=request_id, outputs=outputs)


@v2_protected.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses=_errors(400, 401, 404, 413, 503),
    openapi_extra={"requestBody": INFERENCE_BODY},
)
def infer(name: str, body: Annotated[InferenceRequest, Depends(inference_request)], service: ServiceDep) -> Response:
    """Score records sent as one input tensor per field (shape ``[rows]`` or ``[rows, 1]``), in JSON or with the
    binary tensor data extension; every record is stored with its transaction id. Outputs go as binary data when
    ``parameters.binary_data_output`` or an output's ``parameters.binary_data`` is true."""
    deployment = service.by_model_name(name)
    binary = binary_tensors.binary_outputs(body.parameters, body.outputs, list(V2_OUTPUTS))
    columns = parse_v2_inputs(body.inputs, max_rows=service.settings.max_rows)
    scorer = service.scorer(deployment.model_id)
    scored = ops.score(service.payload_writer.store, scorer, deployment, columns)
    return _v2_reply(v2_response(name, deployment, body.id, scored), binary)
