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
- :mod:`~utils.serving.direct_route`: well-formed WML v4 scoring requests answered in front of FastAPI;
- :mod:`~utils.serving.routes`: the routers, reaching the service through a FastAPI dependency;
- :mod:`~utils.serving.app`: :func:`create_app`;
- :mod:`~utils.serving.server`: :func:`start_server`, :class:`ServerHandle` and the command line.

Command line::

    python -m utils.serving [--port 8000] [--workers N] [--host 127.0.0.1] [--work-dir DIR]
"""

from typing import TYPE_CHECKING

from utils.lazy import lazy_exports

#: Each public name and the module defining it, imported when the name is first used (see :mod:`utils.lazy`).
_EXPORTS = {
    "API_KEY_ENV": "utils.serving.service",
    "DEPLOYMENT_REFRESH_SECONDS": "utils.serving.service",
    "ERRORS": "utils.serving.schemas",
    "EXAMPLE": "utils.serving.schemas",
    "EXAMPLE_ROW": "utils.serving.schemas",
    "MAX_BODY_BYTES": "utils.serving.app",
    "MAX_LOADED_MODELS": "utils.serving.service",
    "WORKER_HEALTHCHECK_SECONDS": "utils.serving.server",
    "DeploymentInfo": "utils.serving.schemas",
    "DeploymentList": "utils.serving.schemas",
    "DeploymentRequest": "utils.serving.schemas",
    "ErrorBody": "utils.serving.schemas",
    "FeedbackRequest": "utils.serving.schemas",
    "FeedbackResponse": "utils.serving.schemas",
    "InferenceRequest": "utils.serving.schemas",
    "InferenceResponse": "utils.serving.schemas",
    "InputData": "utils.serving.schemas",
    "ModelMetadata": "utils.serving.schemas",
    "ModelUnavailable": "utils.serving.service",
    "Predictions": "utils.serving.schemas",
    "Scored": "utils.serving.service",
    "ScoringRequest": "utils.serving.schemas",
    "ScoringResponse": "utils.serving.schemas",
    "ServerHandle": "utils.serving.server",
    "Service": "utils.serving.service",
    "ServiceSettings": "utils.serving.service",
    "Space": "utils.serving.schemas",
    "Tensor": "utils.serving.schemas",
    "TensorMetadata": "utils.serving.schemas",
    "create_app": "utils.serving.app",
    "error_response": "utils.serving.errors",
    "free_port": "utils.serving.server",
    "main": "utils.serving.server",
    "render_form": "utils.serving.form",
    "start_server": "utils.serving.server",
    "wait_until_ready": "utils.serving.server",
}
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
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
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
