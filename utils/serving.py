"""The online scoring service: a FastAPI app run by uvicorn, and helpers to start and stop it.

It serves every deployment recorded in the data mart (see :mod:`utils.deployment`):

- Watson Machine Learning v4 scoring: ``POST /ml/v4/deployments/{id}/predictions``;
- the Open Inference Protocol (KServe V2): ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2/models/{name}``, ``/v2/models/{name}/ready``, ``/v2/models/{name}/infer``;
- feedback (labelled records for quality monitoring): ``POST /ml/v4/deployments/{id}/feedback``;
- deployments: list, get, create or replace, delete under ``/ml/v4/deployments``;
- a loan-officer web form at ``/`` and the OpenAPI documentation at ``/docs``.

Every scored record is stored with a transaction id in the data mart before the
response goes out. Errors are JSON ``{"error": ..., "field": ..., "row": ...}``.
Settings come from the environment, so that every server worker reads the same:
``$CREDIT_WORKDIR`` (registry and default data mart), ``$CREDIT_DATAMART_URL`` and
``$CREDIT_API_KEY`` (when set, a bearer token every endpoint but health and the page needs).

Command line::

    python -m utils.serving [--port 8000] [--workers N] [--host 127.0.0.1] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import atexit
import hmac
import html
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import sqlalchemy as sa
import swagger_ui_bundle
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from utils import config, datamart
from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL, NUMERIC_RANGES
from utils.deployment import (
    SPACES,
    Deployment,
    DeploymentError,
    delete_deployment,
    deploy,
    find_deployments,
    get_deployment,
)
from utils.registry import ModelRegistry, RegistryError
from utils.scoring import MAX_ROWS, InputError, Scorer, check_row_count, parse_fields_values, parse_v2_inputs, records

#: Environment variable holding the API key; unset or empty means no key is needed.
API_KEY_ENV = "CREDIT_API_KEY"
#: Largest request body accepted, in bytes (far above :data:`MAX_ROWS` rows of JSON).
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Model versions kept loaded per server process.
MAX_LOADED_MODELS = 8
#: How long uvicorn's supervisor waits for a worker's answer before it replaces the worker, in seconds.
WORKER_HEALTHCHECK_SECONDS = 60
#: How long a server process reuses what it read about a deployment, in seconds: a deployment
#: replaced or deleted elsewhere takes effect in every process within this time.
DEPLOYMENT_REFRESH_SECONDS = 1.0

_LOG = logging.getLogger(__name__)
_BEARER = HTTPBearer(auto_error=False, description=f"The API key from ${API_KEY_ENV}, when the server has one.")
_EXAMPLE_ROW = [
    "no_checking", 13, "credits_paid_to_date", "car_new", 1343, "100_to_500", "1_to_4", 2, "female", "none", 3,
    "savings_insurance", 46, "none", "own", 2, "skilled", 1, "none", "yes",
]  # fmt: skip
_EXAMPLE = {"input_data": [{"fields": list(FEATURES), "values": [_EXAMPLE_ROW]}]}


# ---------------------------------------------------------------- API schemas


class InputData(BaseModel):
    """One block of records: field names in any order, and one list of values per record."""

    fields: list[str] = Field(description="Field names, in the order of each row of values.")
    values: list[list[Any]] = Field(description=f"Records, one list per record; at most {MAX_ROWS} in a request.")


class ScoringRequest(BaseModel):
    """A Watson Machine Learning v4 scoring request."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})
    input_data: list[InputData] = Field(min_length=1)


class FeedbackRequest(ScoringRequest):
    """Labelled records: the 20 fields and ``Risk``, in the WML v4 layout."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"input_data": [{"fields": [*FEATURES, LABEL], "values": [[*_EXAMPLE_ROW, "No Risk"]]}]}]
        }
    )


class Predictions(BaseModel):
    """Predictions for one block of records, in the order sent."""

    fields: list[str] = Field(examples=[["prediction", "probability"]])
    values: list[list[Any]] = Field(
        description=f"Per record: the predicted class and the probabilities of {list(CLASS_ORDER)}, in that order.",
        examples=[[["No Risk", [0.83, 0.17]]]],
    )
    transaction_ids: list[str] = Field(description="Per record: the id under which it is stored in the data mart.")


class ScoringResponse(BaseModel):
    """A Watson Machine Learning v4 scoring response, with the payload-logging transaction ids."""

    predictions: list[Predictions]
    deployment_id: str
    model_id: str


class FeedbackResponse(BaseModel):
    """How many labelled records were stored, and their ids."""

    deployment_id: str
    records: int
    feedback_ids: list[str]


Space = Literal[SPACES]  # type: ignore[valid-type]


class DeploymentRequest(BaseModel):
    """Deploy a registered model version; an existing deployment of ``name`` in ``space`` is replaced."""

    model_id: str = Field(examples=["credit-risk-v1", "credit-risk-latest"])
    name: str = Field("credit-risk", min_length=1, max_length=100)
    space: Space = "dev"


class DeploymentInfo(BaseModel):
    """A deployment as recorded in the data mart."""

    deployment_id: str
    name: str
    space: str
    model_id: str
    status: str
    created_at: str
    updated_at: str


class DeploymentList(BaseModel):
    """Deployments, by space and name."""

    resources: list[DeploymentInfo]


class Tensor(BaseModel):
    """An Open Inference Protocol tensor: for inputs, one per field, shape ``[rows]``."""

    name: str
    shape: list[int]
    datatype: str = Field(examples=["BYTES", "INT64", "FP64"])
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """An Open Inference Protocol inference request."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[Tensor] = Field(min_length=1)
    outputs: list[dict[str, Any]] | None = None


class InferenceResponse(BaseModel):
    """Outputs ``prediction`` ``[rows]``, ``probability`` ``[rows, 2]`` and ``transaction_id`` ``[rows]``."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[Tensor]


class TensorMetadata(BaseModel):
    """Name, type and shape of a model input or output (-1: any number of rows)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """Open Inference Protocol model metadata."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ErrorBody(BaseModel):
    """Every error: what is wrong, and the field and row (0-based) at fault where there is one."""

    error: str
    field: str | None = None
    row: int | None = None


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 503)}


# ---------------------------------------------------------------- the service


@dataclass
class ServiceSettings:
    """What a server process needs; :meth:`from_env` reads what the launcher set."""

    work: Path
    datamart_url: str
    api_key: str | None = None
    max_rows: int = MAX_ROWS

    @classmethod
    def from_env(cls) -> ServiceSettings:
        work = config.work_dir()
        return cls(work=work, datamart_url=datamart.datamart_url(work), api_key=os.environ.get(API_KEY_ENV) or None)


class _Service:
    """Per-process state: the data mart engine and the models loaded so far, by model id."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.engine: Engine = datamart.connect(settings.datamart_url)
        self.registry = ModelRegistry(settings.work / "registry")
        self._scorers: dict[str, Scorer] = {}
        self._lock = threading.Lock()
        self._deployments: dict[str, tuple[float, Deployment]] = {}

    def scorer(self, model_id: str) -> Scorer:
        """The scorer of ``model_id``, loaded from the registry (trusted types only) on first use."""
        found = self._scorers.get(model_id)
        if found is not None:
            return found
        with self._lock:
            if model_id not in self._scorers:
                try:
                    loaded = Scorer(self.registry.load(model_id), model_id)
                except Exception as error:  # a missing, corrupt or untrusted file: the service cannot score
                    _LOG.exception("model %s cannot be loaded", model_id)
                    raise HTTPException(503, f"the model {model_id} cannot be loaded: {error}") from error
                while len(self._scorers) >= MAX_LOADED_MODELS:
                    self._scorers.pop(next(iter(self._scorers)))
                self._scorers[model_id] = loaded
            return self._scorers[model_id]

    async def loaded_scorer(self, model_id: str) -> Scorer:
        """The scorer of ``model_id``; a model not yet loaded is loaded without blocking other requests."""
        found = self._scorers.get(model_id)
        return found if found is not None else await run_in_threadpool(self.scorer, model_id)

    def _cached(self, key: str, load: Callable[[], Deployment]) -> Deployment:
        now = time.monotonic()
        hit = self._deployments.get(key)
        if hit is not None and now - hit[0] < DEPLOYMENT_REFRESH_SECONDS:
            return hit[1]
        found = load()
        self._deployments[key] = (now, found)
        return found

    def forget_deployments(self) -> None:
        """Read deployments afresh from the data mart (after this process changed them)."""
        self._deployments.clear()

    def deployment(self, deployment_id: str, *, fresh: bool = False) -> Deployment:
        """A deployment by id (404 when there is none); ``fresh`` reads it from the data mart now."""
        if fresh:
            return self._by_id(deployment_id)
        return self._cached(f"id:{deployment_id}", lambda: self._by_id(deployment_id))

    def _by_id(self, deployment_id: str) -> Deployment:
        try:
            return get_deployment(deployment_id, engine=self.engine)
        except DeploymentError as error:
            raise InputError(str(error), field="deployment_id", status=404) from None

    def by_model_name(self, name: str) -> Deployment:
        """A deployment by name when exactly one deployment has that name, else by id."""
        return self._cached(f"name:{name}", lambda: self._by_name(name))

    def _by_name(self, name: str) -> Deployment:
        named = find_deployments(name=name, engine=self.engine)
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            spaces = ", ".join(f"{d.space}: {d.deployment_id}" for d in named)
            raise InputError(f"{name!r} is deployed in several spaces; use a deployment id ({spaces})", field="name")
        try:
            return get_deployment(name, engine=self.engine)
        except DeploymentError:
            raise InputError(f"no deployed model named {name!r}", field="name", status=404) from None

    async def score(self, deployment: Deployment, columns: dict[str, list]) -> tuple[list[str], list, list[str]]:
        """Score validated columns and store every record; returns predictions, probabilities, transaction ids."""
        scorer = await self.loaded_scorer(deployment.model_id)
        labels, proba = scorer.predict(columns)
        probabilities = proba.tolist()
        transaction_ids = [datamart.new_id() for _ in labels]
        now = datamart.utc_now()
        datamart.insert_payload(
            self.engine,
            [
                {
                    "transaction_id": transaction_id,
                    "deployment_id": deployment.deployment_id,
                    "model_id": deployment.model_id,
                    "scored_at": now,
                    "inputs": inputs,
                    "prediction": label,
                    "probability_no_risk": pair[0],
                    "probability_risk": pair[1],
                }
                for transaction_id, inputs, label, pair in zip(
                    transaction_ids, records(columns), labels, probabilities, strict=True
                )
            ],
        )
        return labels, probabilities, transaction_ids

    def warm_up(self) -> None:
        """Load the models of all current deployments, so that first requests are not slow."""
        try:
            for found in find_deployments(engine=self.engine):
                self.scorer(found.model_id)
        except Exception:  # a model that fails to load is reported by the requests that need it
            _LOG.exception("warm-up: could not load every deployed model")


def _concat(blocks: list[dict[str, list]]) -> dict[str, list]:
    if len(blocks) == 1:
        return blocks[0]
    return {name: [value for block in blocks for value in block[name]] for name in blocks[0]}


def _location(loc: tuple) -> tuple[str, int | None]:
    """Field path and row of a request validation error location such as ('body', 'input_data', 0, 'values', 3)."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path") else list(loc)
    row = None
    if "values" in parts:
        at = parts.index("values")
        if at + 1 < len(parts) and isinstance(parts[at + 1], int):
            row = parts[at + 1]
            parts = parts[: at + 1]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body", row


def _error(status_code: int, message: str, field: str | None = None, row: int | None = None, headers=None):
    body = {"error": message, "field": field, "row": row}
    return JSONResponse(body, status_code=status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def input_error(_: Request, error: InputError) -> JSONResponse:
        return _error(error.status, error.message, error.field, error.row)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            detail = first.get("ctx", {}).get("error", "")
            return _error(400, f"malformed JSON: {detail} at character {first['loc'][-1]}", "body")
        field, row = _location(tuple(first["loc"]))
        if field == "body" and isinstance(first.get("input"), bytes | str):
            return _error(400, "the body must be JSON: send the header Content-Type: application/json", field)
        return _error(400, f"{field}: {first['msg']}", field, row)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        field = "body" if error.status_code == 413 else None
        return _error(error.status_code, str(error.detail), field, headers=getattr(error, "headers", None))

    @app.exception_handler(sa.exc.SQLAlchemyError)
    async def datamart_unavailable(_: Request, error: sa.exc.SQLAlchemyError) -> JSONResponse:
        _LOG.exception("data mart error")
        return _error(503, f"the data mart cannot be written or read ({type(error).__name__}); nothing was stored")

    @app.exception_handler(Exception)
    async def server_error(_: Request, error: Exception) -> JSONResponse:
        _LOG.exception("unexpected error")
        return _error(500, f"internal server error ({type(error).__name__}); see the server log")


class _BodyLimit:
    """Refuse a request body over ``limit`` bytes with a JSON 413, whether its length is declared or not."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"the request body is over the limit of {self.limit} bytes; send fewer rows per request"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await _error(413, message, "body")(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, message)
            return event

        await self.app(scope, limited_receive, send)


def _install_offline_docs(app: FastAPI) -> None:
    """Interactive OpenAPI documentation at ``/docs`` from Swagger UI files shipped in a package."""
    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - API documentation",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The scoring service's ASGI app (settings from the environment by default)."""
    settings = settings or ServiceSettings.from_env()
    service = _Service(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        service.warm_up()
        yield

    app = FastAPI(
        title="German credit risk scoring service",
        version="1.0.0",
        description=(
            "Scores loan applicants with the models deployed from the workshop's registry, "
            "and stores every scored record in the data mart. Probabilities are given in the "
            f"class order {list(CLASS_ORDER)}. At most {settings.max_rows} records per request."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from the bundled Swagger UI files: no CDN, works offline
        redoc_url=None,
    )
    _install_offline_docs(app)
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    app.state.service = service
    _install_error_handlers(app)

    async def require_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        key = settings.api_key
        if key and not (credentials and hmac.compare_digest(credentials.credentials.encode(), key.encode())):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong API key: send the header Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    open_routes = APIRouter()
    wml = APIRouter(prefix="/ml/v4", tags=["Watson Machine Learning v4"], dependencies=[Depends(require_key)])
    v2 = APIRouter(prefix="/v2", tags=["Open Inference Protocol (KServe V2)"])
    v2_protected = APIRouter(
        prefix="/v2", tags=["Open Inference Protocol (KServe V2)"], dependencies=[Depends(require_key)]
    )

    page = render_form(api_key_required=bool(settings.api_key))

    @open_routes.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def form_page() -> str:
        return page

    @wml.post("/deployments/{deployment_id}/predictions", response_model=ScoringResponse, responses=_ERRORS)
    async def predictions(deployment_id: str, body: ScoringRequest) -> ScoringResponse:
        """Score records in the WML v4 format; every record is stored with its transaction id."""
        deployment = service.deployment(deployment_id)
        check_row_count(sum(len(block.values) for block in body.input_data), settings.max_rows)
        blocks = [parse_fields_values(block.fields, block.values) for block in body.input_data]
        labels, probabilities, transaction_ids = await service.score(deployment, _concat(blocks))
        predictions, start = [], 0
        for block in blocks:
            end = start + len(block[FEATURES[0]])
            values = [[label, pair] for label, pair in zip(labels[start:end], probabilities[start:end], strict=True)]
            predictions.append(
                Predictions(
                    fields=["prediction", "probability"], values=values, transaction_ids=transaction_ids[start:end]
                )
            )
            start = end
        return ScoringResponse(
            predictions=predictions, deployment_id=deployment.deployment_id, model_id=deployment.model_id
        )

    @wml.post("/deployments/{deployment_id}/feedback", response_model=FeedbackResponse, responses=_ERRORS)
    async def feedback(deployment_id: str, body: FeedbackRequest) -> FeedbackResponse:
        """Store labelled records (the 20 fields and ``Risk``) for quality monitoring."""
        deployment = service.deployment(deployment_id)
        check_row_count(sum(len(block.values) for block in body.input_data), settings.max_rows)
        columns = _concat([parse_fields_values(block.fields, block.values, label=True) for block in body.input_data])
        now = datamart.utc_now()
        rows = [
            {
                "feedback_id": datamart.new_id(),
                "deployment_id": deployment.deployment_id,
                "recorded_at": now,
                "label": record.pop(LABEL),
                "inputs": record,
            }
            for record in records(columns)
        ]
        datamart.insert_feedback(service.engine, rows)
        return FeedbackResponse(
            deployment_id=deployment.deployment_id, records=len(rows), feedback_ids=[r["feedback_id"] for r in rows]
        )

    @wml.get("/deployments", response_model=DeploymentList, responses=_ERRORS)
    def deployments(space: Space | None = None, name: str | None = None) -> DeploymentList:
        """The deployments, optionally of one space and/or name."""
        found = find_deployments(name=name, space=space, engine=service.engine)
        return DeploymentList(resources=[DeploymentInfo(**d.as_dict()) for d in found])

    @wml.post("/deployments", status_code=201, response_model=DeploymentInfo, responses=_ERRORS)
    def create_deployment(body: DeploymentRequest) -> DeploymentInfo:
        """Deploy a registered model version, replacing the model of ``name`` in ``space`` if it exists."""
        try:
            created = deploy(
                body.model_id, name=body.name, space=body.space, engine=service.engine, registry=service.registry
            )
        except (RegistryError, ValueError) as error:
            raise InputError(str(error), field="model_id") from None
        service.scorer(created.model_id)
        service.forget_deployments()
        return DeploymentInfo(**created.as_dict())

    @wml.get("/deployments/{deployment_id}", response_model=DeploymentInfo, responses=_ERRORS)
    def deployment_info(deployment_id: str) -> DeploymentInfo:
        """One deployment."""
        return DeploymentInfo(**service.deployment(deployment_id, fresh=True).as_dict())

    @wml.delete("/deployments/{deployment_id}", status_code=204, responses=_ERRORS)
    def remove_deployment(deployment_id: str) -> Response:
        """Delete a deployment (its payload and feedback records stay in the data mart)."""
        try:
            delete_deployment(deployment_id, engine=service.engine)
        except DeploymentError as error:
            raise InputError(str(error), field="deployment_id", status=404) from None
        service.forget_deployments()
        return Response(status_code=204)

    @v2.get("/health/live")
    async def live() -> dict[str, bool]:
        """The server process answers."""
        return {"live": True}

    @v2.get("/health/ready", responses={503: {"model": ErrorBody}})
    def ready() -> Any:
        """The server can reach its data mart."""
        try:
            with service.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as error:
            return _error(503, f"the data mart is not reachable: {type(error).__name__}")
        return {"ready": True}

    @v2.get("/models/{name}/ready", responses=_ERRORS)
    async def model_ready(name: str) -> dict[str, Any]:
        """The deployment (by id, or by name if unique) exists and its model is loaded."""
        await service.loaded_scorer(service.by_model_name(name).model_id)
        return {"name": name, "ready": True}

    @v2_protected.get("/models/{name}", response_model=ModelMetadata, responses=_ERRORS)
    def model_metadata(name: str) -> ModelMetadata:
        """Inputs (one per field) and outputs of a deployed model."""
        deployment = service.by_model_name(name)
        inputs = [
            TensorMetadata(name=field, datatype="BYTES" if field in CATEGORIES else "INT64", shape=[-1])
            for field in FEATURES
        ]
        outputs = [
            TensorMetadata(name="prediction", datatype="BYTES", shape=[-1]),
            TensorMetadata(name="probability", datatype="FP64", shape=[-1, len(CLASS_ORDER)]),
            TensorMetadata(name="transaction_id", datatype="BYTES", shape=[-1]),
        ]
        return ModelMetadata(
            name=name, versions=[deployment.model_id], platform="scikit-learn", inputs=inputs, outputs=outputs
        )

    @v2_protected.post("/models/{name}/infer", response_model=InferenceResponse, responses=_ERRORS)
    async def infer(name: str, body: InferenceRequest) -> InferenceResponse:
        """Score records sent as one input tensor per field; every record is stored with its transaction id."""
        deployment = service.by_model_name(name)
        columns = parse_v2_inputs(body.inputs, max_rows=settings.max_rows)
        labels, probabilities, transaction_ids = await service.score(deployment, columns)
        rows = len(labels)
        outputs = [
            Tensor(name="prediction", shape=[rows], datatype="BYTES", data=labels),
            Tensor(
                name="probability",
                shape=[rows, len(CLASS_ORDER)],
                datatype="FP64",
                data=[p for pair in probabilities for p in pair],
                parameters={"classes": list(CLASS_ORDER)},
            ),
            Tensor(name="transaction_id", shape=[rows], datatype="BYTES", data=transaction_ids),
        ]
        return InferenceResponse(model_name=name, model_version=deployment.model_id, id=body.id, outputs=outputs)

    for router in (open_routes, wml, v2, v2_protected):
        app.include_router(router)
    return app


# ---------------------------------------------------------------- the web form


def _form_field(name: str) -> str:
    default = _EXAMPLE_ROW[FEATURES.index(name)]
    if name in CATEGORIES:
        options = "".join(
            f'<option value="{html.escape(v)}"{" selected" if v == default else ""}>{html.escape(v)}</option>'
            for v in CATEGORIES[name]
        )
        control = f'<select id="{name}" name="{name}">{options}</select>'
    else:
        low, high = NUMERIC_RANGES[name]
        limits = f'min="{low}" max="{high}" step="1" value="{default}" required'
        control = f'<input id="{name}" name="{name}" type="number" {limits}>'
    return f'<label for="{name}">{name}</label>{control}'


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Loan application: credit risk</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}}
form{{display:grid;grid-template-columns:16rem 1fr;gap:.4rem 1rem;align-items:center}}
label{{font-weight:600}} select,input{{padding:.25rem;font-size:1rem}}
button{{grid-column:2;padding:.5rem;font-size:1rem}} #result{{margin-top:1.5rem;padding:1rem;border-radius:.4rem}}
.ok{{background:#e6f4ea}} .bad{{background:#fdecea}} .error{{background:#fff4e5}} [hidden]{{display:none}}
</style></head><body>
<h1>Loan application</h1>
<p>Enter one applicant and submit: the deployed model returns its decision and probability.</p>
<form id="applicant">
<label for="deployment">Deployment</label><select id="deployment" name="deployment"></select>
<label for="apikey"{key_hidden}>API key</label><input id="apikey" type="password"{key_hidden}>
{fields}
<button id="submit" type="submit">Score applicant</button>
</form>
<div id="result" hidden><div>Decision: <strong id="decision"></strong></div>
<div>Probability of this decision: <strong id="probability"></strong></div>
<div><small>Transaction id: <span id="transaction"></span></small></div></div>
<div id="message" class="error" hidden></div>
<script>
const FIELDS = {features};
const NUMERIC = {numeric};
const byId = (id) => document.getElementById(id);
function headers() {{
  const key = byId("apikey").value;
  const h = {{"Content-Type": "application/json"}};
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}}
function showError(body) {{
  const where = [];
  if (body.field != null) where.push("field " + body.field);
  if (body.row != null) where.push("row " + body.row);
  byId("message").textContent = body.error + (where.length ? " (" + where.join(", ") + ")" : "");
  byId("message").hidden = false;
}}
async function loadDeployments() {{
  const response = await fetch("/ml/v4/deployments", {{headers: headers()}});
  const body = await response.json();
  if (!response.ok) {{ showError(body); return; }}
  const select = byId("deployment");
  const label = (d) => d.name + " (" + d.space + ", " + d.model_id + ")";
  select.replaceChildren(...body.resources.map((d) => new Option(label(d), d.deployment_id)));
  byId("message").hidden = body.resources.length > 0;
  if (!body.resources.length) showError({{error: "No model is deployed yet."}});
}}
byId("apikey").addEventListener("change", loadDeployments);
byId("applicant").addEventListener("submit", async (event) => {{
  event.preventDefault();
  byId("message").hidden = true;
  byId("result").hidden = true;
  const values = FIELDS.map((f) => NUMERIC.includes(f) ? Number(byId(f).value) : byId(f).value);
  const response = await fetch("/ml/v4/deployments/" + encodeURIComponent(byId("deployment").value) + "/predictions", {{
    method: "POST", headers: headers(), body: JSON.stringify({{input_data: [{{fields: FIELDS, values: [values]}}]}})}});
  const body = await response.json();
  if (!response.ok) {{ showError(body); return; }}
  const [decision, probability] = body.predictions[0].values[0];
  const index = {classes}.indexOf(decision);
  byId("decision").textContent = decision;
  byId("probability").textContent = probability[index].toFixed(3);
  byId("transaction").textContent = body.predictions[0].transaction_ids[0];
  byId("result").className = decision === {classes}[0] ? "ok" : "bad";
  byId("result").hidden = false;
}});
loadDeployments();
</script></body></html>
"""


def render_form(*, api_key_required: bool = False) -> str:
    """The loan-officer page: one applicant, category fields as drop-downs, the decision shown on submit."""
    return _PAGE.format(
        fields="\n".join(_form_field(name) for name in FEATURES),
        features=json.dumps(list(FEATURES)),
        numeric=json.dumps(list(NUMERIC_RANGES)),
        classes=json.dumps(list(CLASS_ORDER)),
        key_hidden="" if api_key_required else " hidden",
    )


# ---------------------------------------------------------------- starting and stopping


def free_port(host: str = "127.0.0.1", port: int = 0) -> int:
    """``port`` if nothing listens on it on ``host`` (0: any free port); raises OSError when it is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        probe.bind((host, port))
        return probe.getsockname()[1]


def wait_until_ready(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Wait until the server at ``url`` answers ``/v2/health/ready``.

    Raises:
        RuntimeError: ``process`` exited first.
        TimeoutError: not ready within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server at {url} was not ready after {timeout:.0f} s")


@dataclass
class ServerHandle:
    """A server started by :func:`start_server`; ``stop()`` ends it (also on interpreter exit)."""

    url: str
    process: subprocess.Popen
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its workers (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        """What the server has written to its log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *_) -> None:
        self.stop()


def start_server(
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    workers: int = 1,
    work: str | os.PathLike | None = None,
    datamart_url: str | None = None,
    api_key: str | None = None,
    access_log: bool = True,
    timeout: float = 60.0,
) -> ServerHandle:
    """Start ``python -m utils.serving`` in a new process and wait until it is ready.

    ``port`` None picks a free one; ``api_key`` None keeps ``$CREDIT_API_KEY`` as it is.
    The server logs to ``<work dir>/logs/server-<port>.log``.
    """
    work_path = config.work_dir(work)
    try:
        port = free_port(host, port or 0)
    except OSError as error:
        raise RuntimeError(f"port {port} on {host} is taken ({error.strerror}): stop what runs there") from None
    env = {**os.environ, config.WORK_DIR_ENV: str(work_path)}
    if datamart_url:
        env[datamart.DATAMART_URL_ENV] = datamart_url
    if api_key is not None:
        env[API_KEY_ENV] = api_key
    command = [sys.executable, "-m", "utils.serving", "--host", host, "--port", str(port), "--workers", str(workers)]
    if not access_log:
        command.append("--no-access-log")
    log_path = work_path / "logs" / f"server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle = ServerHandle(f"http://{host}:{port}", process, log_path)
    atexit.register(handle.stop)
    try:
        wait_until_ready(handle.url, timeout, process)
    except (RuntimeError, TimeoutError) as error:
        handle.stop()
        raise RuntimeError(f"{error}\n--- server log ({log_path}) ---\n{handle.log()[-4000:]}") from None
    return handle


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the deployments with uvicorn."""
    parser = argparse.ArgumentParser(description="Serve the deployed credit-risk models over HTTP.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="server processes (about one per CPU core)")
    parser.add_argument("--work-dir", help="working directory (default: $CREDIT_WORKDIR, else <project>/work)")
    parser.add_argument("--datamart-url", help="SQLAlchemy URL of the data mart (default: $CREDIT_DATAMART_URL)")
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    # The workers read their settings from the environment.
    os.environ[config.WORK_DIR_ENV] = str(config.work_dir(args.work_dir))
    if args.datamart_url:
        os.environ[datamart.DATAMART_URL_ENV] = args.datamart_url
    datamart.connect()  # create the tables once, before the workers start
    uvicorn.run(
        "utils.serving:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=not args.no_access_log,
        log_level=args.log_level,
        # A worker imports scikit-learn and skops before it answers its supervisor: on a busy machine that
        # takes longer than uvicorn's default 5 s, and the worker would be killed and restarted forever.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


if __name__ == "__main__":
    main()
