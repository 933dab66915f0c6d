"""The request and response models of the scoring service (pydantic), and the example request of the docs.

They describe the wire format only; :mod:`utils.serving.service` does the work and :mod:`utils.serving.routes`
binds both to URLs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from utils.data import CLASS_ORDER, FEATURES, LABEL
from utils.deployment import NAME_PATTERN, SPACES
from utils.registry import MODEL_REF_PATTERN
from utils.scoring import MAX_ROWS
from utils.serving.binary_tensors import NUMPY_TYPES

#: The applicant of the docs' curl example, in the order of :data:`utils.data.FEATURES` (also the form's defaults).
EXAMPLE_ROW = [
    "no_checking", 13, "credits_paid_to_date", "car_new", 1343, "100_to_500", "1_to_4", 2, "female", "none", 3,
    "savings_insurance", 46, "none", "own", 2, "skilled", 1, "none", "yes",
]  # fmt: skip
EXAMPLE = {"input_data": [{"fields": list(FEATURES), "values": [EXAMPLE_ROW]}]}


class InputData(BaseModel):
    """One block of records: field names in any order, and one list of values per record."""

    fields: list[str] = Field(min_length=1, description="Field names, in the order of each row of values.")
    values: list[list[Any]] = Field(
        min_length=1, description=f"Records, one list per record; at most {MAX_ROWS} in a request."
    )


class ScoringRequest(BaseModel):
    """A Watson Machine Learning v4 scoring request."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})
    input_data: list[InputData] = Field(min_length=1)


class FeedbackRequest(ScoringRequest):
    """Labelled records in the WML v4 layout: the 20 fields and ``Risk``, and optionally ``transaction_id``, the
    id of the logged prediction a record labels."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"input_data": [{"fields": [*FEATURES, LABEL], "values": [[*EXAMPLE_ROW, "No Risk"]]}]}]
        }
    )


#: One feedback record as a JSON object: the 20 fields, ``Risk`` and optionally ``transaction_id``.
FEEDBACK_ROW_EXAMPLE = {**dict(zip(FEATURES, EXAMPLE_ROW, strict=True)), LABEL: "No Risk"}
#: The feedback body as the OpenAPI document shows it: WML v4 or a list of row objects as JSON, or CSV text.
FEEDBACK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            name: value
                            for name, value in FeedbackRequest.model_json_schema(
                                ref_template="#/components/schemas/{model}"
                            ).items()
                            if name != "$defs"  # InputData is among the components (ScoringRequest uses it)
                        },
                        {
                            "type": "array",
                            "title": "Feedback rows",
                            "description": "One object per record: the 20 fields, Risk, optionally transaction_id.",
                            "items": {"type": "object", "additionalProperties": True},
                            "minItems": 1,
                            "maxItems": MAX_ROWS,
                        },
                    ]
                },
                "examples": {
                    "wml": {
                        "summary": "One labelled applicant (WML v4)",
                        "value": FeedbackRequest.model_json_schema()["examples"][0],
                    },
                    "rows": {"summary": "One labelled applicant (a list of rows)", "value": [FEEDBACK_ROW_EXAMPLE]},
                },
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": ",".join([*FEATURES, LABEL]) + "\n" + ",".join(map(str, [*EXAMPLE_ROW, "No Risk"])) + "\n",
            },
        },
    }
}


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


#: The documented forms of a model id (``<name>-v<version>`` or ``<name>-latest``) and of a deployment name: the
#: OpenAPI schema is as strict as the checks behind it, which refuse the rest with a message stating the rule.
MODEL_REF = {"pattern": MODEL_REF_PATTERN}
DEPLOYMENT_NAME = {"pattern": NAME_PATTERN}


class DeploymentRequest(BaseModel):
    """Deploy a registered model version; an existing deployment of ``name`` in ``space`` is replaced."""

    model_id: str = Field(examples=["credit-risk-v1", "credit-risk-latest"], json_schema_extra=MODEL_REF)
    name: str = Field("credit-risk", min_length=1, max_length=100, json_schema_extra=DEPLOYMENT_NAME)
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


#: The tensor datatypes of the Open Inference Protocol that the service reads and writes.
V2_DATATYPES = ("BYTES", *NUMPY_TYPES)


class Tensor(BaseModel):
    """An Open Inference Protocol tensor: for inputs, one per field, shape ``[rows]``."""

    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=2)
    datatype: Literal[V2_DATATYPES]  # type: ignore[valid-type]
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


#: The outputs of an inference, in their order: datatype and shape (-1: as many as the records).
V2_OUTPUTS = {
    "prediction": ("BYTES", [-1]),
    "probability": ("FP64", [-1, len(CLASS_ORDER)]),
    "transaction_id": ("BYTES", [-1]),
}


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


class FaultBody(BaseModel):
    """One fault of a record: the field and row (0-based) at fault, and what is wrong."""

    field: str
    row: int | None = None
    error: str


class ErrorBody(BaseModel):
    """Every error: what is wrong, and the field and row (0-based) at fault where there is one.

    Records that break the data contract add ``faults``, every fault of each row at fault (the first rows at
    fault, up to a limit), and ``rows_omitted``, how many more rows at fault there are.
    """

    error: str
    field: str | None = None
    row: int | None = None
    faults: list[FaultBody] | None = None
    rows_omitted: int | None = None


#: The error responses every protected endpoint documents.
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 503)}
