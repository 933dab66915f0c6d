"""The subscriptions API: deployments to monitor, served here or by another engine, and their logged records.

Protected by the API key, under ``/ml/v4`` like the deployments API:

- ``POST /ml/v4/subscriptions``: subscribe a deployment that another engine serves (:mod:`utils.subscriptions`);
- ``GET /ml/v4/subscriptions``: the subscriptions (optionally by name);
- ``GET /ml/v4/subscriptions/{id}``: one subscription; a deployment's id gives the deployment's own subscription;
- ``POST /ml/v4/subscriptions/{id}/payload``: log records the engine scored (inputs, prediction, probabilities,
  optionally the transaction id and the moment), without scoring them (:mod:`utils.payload_log`);
- ``POST /ml/v4/subscriptions/{id}/feedback``: log labelled records, naming the prediction each labels;
- ``PUT /ml/v4/subscriptions/{id}/reference``: replace the reference (training) data, as CSV.

Records are checked against the subscription's schema with the same errors as scoring (every fault by field and
row); at most the service's row limit per request, within its body-size limit.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictFloat, StrictInt, Tag

from utils import config
from utils.contract import observed_ranges
from utils.data import FEATURES, PROTECTED_GROUPS
from utils.deployment import NAME_RULE
from utils.payload_log import log_feedback, log_payload
from utils.scoring import InputError
from utils.serving.metrics import note_accepted
from utils.serving.routes import ServiceDep, require_key
from utils.serving.schemas import EXAMPLE_ROW, ErrorBody
from utils.subscriptions import (
    COLUMN_NAME_PATTERN,
    COLUMN_TYPES,
    ENGINES,
    IDENTIFIER_PATTERN,
    MAX_COLUMN_NAME,
    MAX_COLUMNS,
    MAX_GROUP_TEXT,
    MAX_GROUP_VALUES,
    NAME_PATTERN,
    RESERVED_COLUMNS,
    TEXT_PATTERN,
    URL_PATTERN,
    Subscription,
    SubscriptionError,
    create_subscription,
    get_subscription,
    list_subscriptions,
    set_reference,
)

router = APIRouter(prefix="/ml/v4", tags=["Subscriptions"], dependencies=[Depends(require_key)])
ColumnType = Literal[tuple(COLUMN_TYPES)]  # type: ignore[valid-type]
Engine = Literal[ENGINES[1:]]  # type: ignore[valid-type]
_APPLICANT = dict(zip(FEATURES, EXAMPLE_ROW, strict=True))


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in sorted({400, 401, 503, *codes})}


Identifier = Annotated[str, Field(min_length=1, max_length=100, pattern=IDENTIFIER_PATTERN)]
#: The column names a declared schema may use (checked by :mod:`utils.subscriptions`).
_COLUMN_NAMES = {
    "minLength": 1,
    "maxLength": MAX_COLUMN_NAME,
    "pattern": COLUMN_NAME_PATTERN,
    "not": {"enum": list(RESERVED_COLUMNS)},
}
ClassName = Annotated[str, Field(min_length=1, max_length=50, pattern=TEXT_PATTERN)]
Number = Annotated[StrictInt | StrictFloat, Field(allow_inf_nan=False)]
GroupText = Annotated[str, Field(min_length=1, max_length=MAX_GROUP_TEXT, pattern=TEXT_PATTERN)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Below(_Closed):
    """Monitored: values under ``below``; reference: the others."""

    below: Number


class AtLeast(_Closed):
    """Monitored: values of ``at_least`` and over; reference: the others."""

    at_least: Number


class MonitoredValues(_Closed):
    """Monitored: these values; reference: every other value."""

    monitored: list[GroupText] = Field(
        min_length=1, max_length=MAX_GROUP_VALUES, json_schema_extra={"uniqueItems": True}
    )


class MonitoredFlag(_Closed):
    """Monitored: this value; reference: the other."""

    monitored: StrictBool


class ProtectedNumeric(_Closed):
    """A protected integer or number column, split at a threshold."""

    type: Literal["integer", "number"]
    protected: Below | AtLeast


class ProtectedString(_Closed):
    """A protected string column: the monitored values against every other."""

    type: Literal["string"]
    protected: MonitoredValues


class ProtectedBoolean(_Closed):
    """A protected boolean column: one value against the other."""

    type: Literal["boolean"]
    protected: MonitoredFlag


#: A declared column: its type, or a protected column with the groups fairness compares.
DeclaredColumn = (
    ColumnType | Annotated[ProtectedNumeric | ProtectedString | ProtectedBoolean, Field(discriminator="type")]
)


class _Subscribed(BaseModel):
    """What every subscription names."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, description=NAME_RULE)
    engine: Engine
    scoring_url: str | None = Field(
        None, max_length=500, pattern=URL_PATTERN, description="the engine's V2 .../infer URL, if any"
    )
    model_id: str | None = Field(
        None, max_length=200, pattern=TEXT_PATTERN, description="the model as the engine names it"
    )
    prediction_field: Identifier | None = Field(None, description="the engine's output with the decision")
    probability_field: Identifier | None = Field(None, description="the engine's output with the probabilities")


class SubscriptionRequest(_Subscribed):
    """A deployment served by another engine whose inputs follow the credit contract (label Risk, classes
    No Risk and Risk)."""

    input_schema: Literal["credit"] = "credit"
    protected_attributes: list[Literal[tuple(PROTECTED_GROUPS)]] | None = Field(  # type: ignore[valid-type]
        None, max_length=len(PROTECTED_GROUPS), json_schema_extra={"uniqueItems": True}
    )


class DeclaredSubscriptionRequest(_Subscribed):
    """A deployment served by another engine whose inputs are declared columns and types, with its label and its
    two classes (favourable first); its protected attributes are the columns declared with their groups. Every
    monitor applies: quality on feedback linked to logged predictions, fairness on the groups, drift on the declared
    columns against the reference data."""

    input_schema: dict[str, DeclaredColumn] = Field(
        min_length=1,
        max_length=MAX_COLUMNS,
        json_schema_extra={"propertyNames": _COLUMN_NAMES},
        description="column to type; a protected column is an object of its type and its monitored group",
    )
    label: Identifier
    classes: list[ClassName] = Field(
        min_length=2, max_length=2, json_schema_extra={"uniqueItems": True}, description="favourable first"
    )


def _schema_kind(body: object) -> str:
    """Which request a body is: ``declared`` when its input schema is an object of columns, else ``credit``."""
    declared = isinstance(body, dict) and isinstance(body.get("input_schema"), dict)
    return "declared" if declared else "credit"


#: A subscription request, read as the kind its ``input_schema`` says (errors then name that kind's fields).
AnySubscriptionRequest = Annotated[
    Annotated[SubscriptionRequest, Tag("credit")] | Annotated[DeclaredSubscriptionRequest, Tag("declared")],
    Discriminator(_schema_kind),
]


class SubscriptionInfo(BaseModel):
    subscription_id: str
    name: str
    engine: str
    created_at: str
    scoring_url: str | None
    deployment_id: str | None
    model_id: str
    input_schema: str | dict[str, str]
    label: str
    classes: list[str]
    favourable: str
    prediction_field: str
    probability_field: str
    protected_attributes: list[str]
    reference: str
    groups: dict[str, dict[str, Any]]


class SubscriptionList(BaseModel):
    resources: list[SubscriptionInfo]


class LoggedPrediction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any]
    prediction: str = Field(max_length=50)
    probabilities: list[float] = Field(max_length=10, description="one per class, in the subscription's order")
    transaction_id: str | None = Field(None, max_length=200)
    scored_at: datetime | None = Field(None, description="when the engine scored it (default: now); UTC if naive")


class PayloadLogRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[LoggedPrediction]


class LabelledRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any]
    label: str = Field(max_length=50)
    transaction_id: str | None = Field(None, max_length=200)


class FeedbackLogRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[LabelledRecord]


class LoggedResponse(BaseModel):
    subscription_id: str
    records: int
    ids: list[str] = Field(description="the transaction ids (payload) or feedback ids (feedback), in order")


SUBSCRIPTION_EXAMPLE = {
    "mlserver": {
        "summary": "A credit model served by MLServer",
        "value": {
            "name": "credit-risk-mlserver",
            "engine": "mlserver",
            "scoring_url": "http://127.0.0.1:8080/v2/models/credit-risk-forest/infer",
            "probability_field": "predict_proba",
        },
    },
    "declared": {
        "summary": "A model of declared columns, with protected groups",
        "value": {
            "name": "loan-default-kserve",
            "engine": "kserve",
            "input_schema": {
                "income": "number",
                "years_employed": "integer",
                "region": {"type": "string", "protected": {"monitored": ["rural"]}},
                "age": {"type": "integer", "protected": {"below": 26}},
            },
            "label": "default",
            "classes": ["repaid", "default"],
        },
    },
}
PAYLOAD_EXAMPLE = {
    "applicant": {
        "summary": "One scored applicant",
        "value": {"records": [{"inputs": _APPLICANT, "prediction": "No Risk", "probabilities": [0.8, 0.2]}]},
    }
}


@contextmanager
def _answered_as_input_error():
    """A refused subscription as the service's error answer (its status, message and field)."""
    try:
        yield
    except SubscriptionError as error:
        raise InputError(str(error), field=error.field, status=error.status) from None


def _subscription(service, subscription_id: str) -> Subscription:
    with _answered_as_input_error():
        return get_subscription(subscription_id, engine=service.engine)


async def raw_body(request: Request) -> bytes:
    """The request's body as it came."""
    return await request.body()


@functools.lru_cache(maxsize=32)
def _ranges(path: str, modified_ns: int) -> dict:
    """The reference data's ranges, read again when the file changes."""
    return observed_ranges(path)


@router.post("/subscriptions", status_code=201, response_model=SubscriptionInfo, responses=_errors(409, 413))
def subscribe(
    body: Annotated[AnySubscriptionRequest, Body(openapi_examples=SUBSCRIPTION_EXAMPLE)],
    service: ServiceDep,
) -> SubscriptionInfo:
    """Subscribe a deployment that another engine serves, for monitoring."""
    fields = body.model_dump(exclude={"name", "engine", "scoring_url"})
    with _answered_as_input_error():
        created = create_subscription(
            body.name,
            engine_name=body.engine,
            scoring_url=body.scoring_url,
            engine=service.engine,
            work=service.settings.work,
            **fields,
        )
    return SubscriptionInfo(**created.as_dict())


@router.get("/subscriptions", response_model=SubscriptionList, responses=_errors())
def subscriptions(service: ServiceDep, name: str | None = None) -> SubscriptionList:
    """The subscriptions, oldest first (a deployment's own appears once it has been used)."""
    found = list_subscriptions(engine=service.engine, name=name)
    return SubscriptionList(resources=[SubscriptionInfo(**s.as_dict()) for s in found])


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionInfo, responses=_errors(404))
def subscription(subscription_id: str, service: ServiceDep) -> SubscriptionInfo:
    """One subscription; a deployment's id gives the deployment's own."""
    return SubscriptionInfo(**_subscription(service, subscription_id).as_dict())


@router.post(
    "/subscriptions/{subscription_id}/payload", response_model=LoggedResponse, responses=_errors(404, 409, 413)
)
def log_subscription_payload(
    subscription_id: str,
    body: Annotated[PayloadLogRequest, Body(openapi_examples=PAYLOAD_EXAMPLE)],
    service: ServiceDep,
) -> LoggedResponse:
    """Log records that the subscription's engine scored (nothing is scored here)."""
    found = _subscription(service, subscription_id)
    path = config.layout(service.settings.work).resolve(found.reference)
    observed = _ranges(str(path), path.stat().st_mtime_ns) if found.credit and path.is_file() else None
    logged = [record.model_dump() for record in body.records]
    ids = log_payload(service.engine, found, logged, max_rows=service.settings.max_rows, observed=observed)
    note_accepted(found.subscription_id, len(ids))
    return LoggedResponse(subscription_id=found.subscription_id, records=len(ids), ids=ids)


@router.post("/subscriptions/{subscription_id}/feedback", response_model=LoggedResponse, responses=_errors(404, 413))
def log_subscription_feedback(subscription_id: str, body: FeedbackLogRequest, service: ServiceDep) -> LoggedResponse:
    """Log labelled records, each naming the logged prediction it labels (needed without a scoring URL)."""
    found = _subscription(service, subscription_id)
    labelled = [record.model_dump() for record in body.records]
    ids = log_feedback(service.engine, found, labelled, max_rows=service.settings.max_rows)
    return LoggedResponse(subscription_id=found.subscription_id, records=len(ids), ids=ids)


#: The body of ``PUT .../reference`` as the docs show it (the handler reads it, so FastAPI cannot tell).
REFERENCE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "description": "A header line naming the input columns and the label, then one record per line.",
            }
        },
    }
}


@router.put(
    "/subscriptions/{subscription_id}/reference",
    response_model=SubscriptionInfo,
    responses=_errors(404, 413),
    openapi_extra=REFERENCE_BODY,
)
def put_reference(subscription_id: str, body: Annotated[bytes, Depends(raw_body)], service: ServiceDep):
    """Replace the reference (training) data of a subscription served by another engine, as CSV."""
    with _answered_as_input_error():
        found = set_reference(subscription_id, body, engine=service.engine, work=service.settings.work)
    return SubscriptionInfo(**found.as_dict())
