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

The package is a stack, each module importing only those above it in this list:

- :mod:`~utils.serving.schemas`: the request and response models;
- :mod:`~utils.serving.service`: a process's state (:class:`Service`) and plain functions doing each endpoint's
  work, usable without HTTP;
- :mod:`~utils.serving.errors`: the JSON error handlers and the request body limit;
- :mod:`~utils.serving.form`: the loan-officer page, from ``templates/form.html``;
- :mod:`~utils.serving.routes`: the routers, reaching the service through a FastAPI dependency;
- :mod:`~utils.serving.app`: :func:`create_app`;
- :mod:`~utils.serving.server`: :func:`start_server`, :class:`ServerHandle` and the command line.

Command line::

    python -m utils.serving [--port 8000] [--workers N] [--host 127.0.0.1] [--work-dir DIR]
"""

from utils.serving.app import MAX_BODY_BYTES, create_app
from utils.serving.errors import error_response
from utils.serving.form import render_form
from utils.serving.schemas import (
    ERRORS,
    EXAMPLE,
    EXAMPLE_ROW,
    DeploymentInfo,
    DeploymentList,
    DeploymentRequest,
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    InferenceRequest,
    InferenceResponse,
    InputData,
    ModelMetadata,
    Predictions,
    ScoringRequest,
    ScoringResponse,
    Space,
    Tensor,
    TensorMetadata,
)
from utils.serving.server import (
    WORKER_HEALTHCHECK_SECONDS,
    ServerHandle,
    free_port,
    main,
    start_server,
    wait_until_ready,
)
from utils.serving.service import (
    API_KEY_ENV,
    DEPLOYMENT_REFRESH_SECONDS,
    MAX_LOADED_MODELS,
    ModelUnavailable,
    Scored,
    Service,
    ServiceSettings,
)

__all__ = [
    "API_KEY_ENV",
    "DEPLOYMENT_REFRESH_SECONDS",
    "ERRORS",
    "EXAMPLE",
    "EXAMPLE_ROW",
    "MAX_BODY_BYTES",
    "MAX_LOADED_MODELS",
    "WORKER_HEALTHCHECK_SECONDS",
    "DeploymentInfo",
    "DeploymentList",
    "DeploymentRequest",
    "ErrorBody",
    "FeedbackRequest",
    "FeedbackResponse",
    "InferenceRequest",
    "InferenceResponse",
    "InputData",
    "ModelMetadata",
    "ModelUnavailable",
    "Predictions",
    "Scored",
    "ScoringRequest",
    "ScoringResponse",
    "ServerHandle",
    "Service",
    "ServiceSettings",
    "Space",
    "Tensor",
    "TensorMetadata",
    "create_app",
    "error_response",
    "free_port",
    "main",
    "render_form",
    "start_server",
    "wait_until_ready",
]
