"""The scoring service's ASGI app: :func:`create_app` puts the routers, error handlers and docs together."""

from __future__ import annotations

from contextlib import asynccontextmanager

import anyio
import swagger_ui_bundle
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from utils.data import CLASS_ORDER
from utils.serving.direct_route import DirectPredictions
from utils.serving.errors import BodyLimit, install_error_handlers
from utils.serving.insights_routes import ROUTERS as INSIGHTS_ROUTERS
from utils.serving.insights_routes import install_page_errors
from utils.serving.lifecycle_routes import router as lifecycle_router
from utils.serving.metrics import install_metrics
from utils.serving.routes import ROUTERS, require_key
from utils.serving.schemas import InferenceRequest
from utils.serving.service import Service, ServiceSettings
from utils.serving.subscription_routes import router as subscription_router

#: Largest request body accepted, in bytes (far above :data:`utils.scoring.MAX_ROWS` rows of JSON).
MAX_BODY_BYTES = 8 * 1024 * 1024


@asynccontextmanager
async def _lifespan(app: FastAPI):
    service: Service = app.state.service
    service.warm_up()
    await anyio.to_thread.run_sync(service.payload_writer.start)  # a dead process's journal is ingested first
    yield
    await anyio.to_thread.run_sync(service.payload_writer.close)  # the payload records taken are stored first


def _install_truthful_openapi(app: FastAPI) -> None:
    """``/openapi.json`` as the service answers: no 422 (validation errors are answered 400, which each operation
    documents), and the body of ``infer``, which its dependency reads."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = generate()
            for operations in spec["paths"].values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = spec["components"]["schemas"]
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            request = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(request.pop("$defs", {}), InferenceRequest=request)
        return app.openapi_schema

    app.openapi = openapi


def _install_offline_docs(app: FastAPI) -> None:
    """Interactive OpenAPI documentation at ``/docs`` from the Swagger UI 5 files of ``swagger-ui-bundle-v2``
    (Swagger UI reads OpenAPI 3.1, which FastAPI writes, from version 5 on)."""
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
    service = Service(settings or ServiceSettings.from_env())
    app = FastAPI(
        title="German credit risk scoring service",
        version="1.0.0",
        description=(
            "Scores loan applicants with the models deployed from the workshop's registry, "
            "and stores every scored record in the data mart. Probabilities are given in the "
            f"class order {list(CLASS_ORDER)}. At most {service.settings.max_rows} records per request."
        ),
        lifespan=_lifespan,
        docs_url=None,  # served from the bundled Swagger UI files: no CDN, works offline
        redoc_url=None,
    )
    app.state.service = service
    _install_offline_docs(app)
    _install_truthful_openapi(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    handlers = app.exception_handlers  # the error handlers installed below, which the direct route answers with too
    app.add_middleware(DirectPredictions, service=service, handlers=handlers, limit=MAX_BODY_BYTES)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(lifecycle_router)
    for router in INSIGHTS_ROUTERS:
        app.include_router(router)
    install_page_errors(app)
    app.include_router(subscription_router)
    install_metrics(app, dependencies=[Depends(require_key)])
    return app
