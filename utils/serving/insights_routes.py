"""The insights dashboard under ``/dashboard`` and the REST endpoints behind it under ``/ml/v4``.

Pages (HTML, not in the OpenAPI document): the overview, a deployment's monitors over time, the fairness and drift
details of an evaluated window, its transactions and the explanation of one transaction, and plotly.js from the
installed ``plotly`` wheel (no CDN: the pages work offline). With an API key set, a page asks for it once
(``/dashboard/login`` keeps it in an HTTP-only, same-site cookie) or takes the usual ``Authorization`` header.

REST (with the API key, in the OpenAPI document): a deployment's stored measurements, alerts and evaluated windows
over a window, its transactions with filters, and the explanation of a transaction. Handlers are a few lines
calling :mod:`utils.dashboard`.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import plotly
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from utils import config, datamart
from utils.contract import InputError
from utils.dashboard import pages
from utils.dashboard.status import alerts, windows
from utils.dashboard.transactions import MAX_LIMIT, TransactionFilter, explain, group_choices, list_transactions
from utils.data import CLASS_ORDER
from utils.monitoring.results import MONITORS
from utils.serving.routes import CredentialsDep, ServiceDep, _authorised, _errors, require_key
from utils.serving.service import Service
from utils.times import as_utc

#: The cookie that carries the API key for the dashboard's pages.
KEY_COOKIE = "credit_dashboard_key"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def parse_moment(text: str | None, field: str) -> datetime | None:
    """An ISO 8601 date or date and time (UTC unless it says otherwise); None for none; a 400 naming ``field``."""
    if text is None or text == "":
        return None
    try:
        return as_utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise InputError(f"{field} must be an ISO 8601 date or time, e.g. 2026-01-05", field=field) from None


def _models(service: Service):
    return lambda model_id: service.scorer(model_id).model


def _training(service: Service) -> Path:
    return config.layout(service.settings.work).train


# ---------------------------------------------------------------- pages


async def require_page_key(request: Request, credentials: CredentialsDep, service: ServiceDep) -> None:
    """Let the page through with the API key (header or cookie), else send the browser to sign in."""
    if _authorised(service, credentials):
        return
    cookie = request.cookies.get(KEY_COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), service.settings.api_key.encode()):
        return
    target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="/?=&")
    raise HTTPException(
        status.HTTP_303_SEE_OTHER, "sign in first", headers={"Location": f"/dashboard/login?next={target}"}
    )


dashboard = APIRouter(prefix=pages.PREFIX, include_in_schema=False)
dashboard_pages = APIRouter(prefix=pages.PREFIX, include_in_schema=False, dependencies=[Depends(require_page_key)])


class Login(BaseModel):
    key: str


@dashboard.get("/login", response_class=HTMLResponse)
async def login_page(next: str = "/dashboard") -> str:
    return pages.login_page(next if next.startswith(pages.PREFIX) else pages.PREFIX)


@dashboard.post("/login")
async def login(body: Login, service: ServiceDep) -> JSONResponse:
    """Keep the API key in a cookie of this site (HTTP only, same site) when it is the service's key."""
    key = service.settings.api_key
    if key and not hmac.compare_digest(body.key.encode(), key.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong API key")
    answer = JSONResponse({"signed_in": True})
    answer.set_cookie(KEY_COOKIE, body.key, httponly=True, samesite="strict", path=pages.PREFIX)
    return answer


@dashboard.get("/static/plotly.min.js")
async def plotly_js() -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


@dashboard_pages.get("", response_class=HTMLResponse)
def overview(service: ServiceDep) -> str:
    return pages.overview(service.engine)


@dashboard_pages.get("/deployments/{deployment_id}", response_class=HTMLResponse)
def deployment_page(deployment_id: str, service: ServiceDep, start: str | None = None, end: str | None = None) -> str:
    deployment = service.deployment(deployment_id, fresh=True)
    window = parse_moment(start, "start"), parse_moment(end, "end")
    return pages.deployment_page(service.engine, deployment.deployment_id, *window)


@dashboard_pages.get("/deployments/{deployment_id}/evaluations/{evaluation_id}/fairness", response_class=HTMLResponse)
def fairness_page(deployment_id: str, evaluation_id: str, service: ServiceDep) -> str:
    deployment = service.deployment(deployment_id, fresh=True)
    return pages.fairness_page(service.engine, deployment.deployment_id, evaluation_id, _models(service))


@dashboard_pages.get("/deployments/{deployment_id}/evaluations/{evaluation_id}/drift", response_class=HTMLResponse)
def drift_page(deployment_id: str, evaluation_id: str, service: ServiceDep) -> str:
    deployment = service.deployment(deployment_id, fresh=True)
    return pages.drift_page(service.engine, deployment.deployment_id, evaluation_id, _training(service))


Moment = Annotated[datetime | None, Query(description="ISO 8601, UTC unless it names a zone", examples=["2026-01-05"])]
Decision = Literal[CLASS_ORDER]  # type: ignore[valid-type]
Group = Literal[tuple(group_choices())]  # type: ignore[valid-type]


def transaction_filter(
    start: Moment = None,
    end: Annotated[datetime | None, Query(description="excluded, ISO 8601", examples=["2026-01-06"])] = None,
    prediction: Annotated[Decision | None, Query(description="the decision", examples=["Risk"])] = None,
    group: Annotated[Group | None, Query(description="a protected group", examples=["Sex=female"])] = None,
    flips: Annotated[bool | None, Query(description="the decision changes with the protected attribute")] = None,
    out_of_range: Annotated[bool | None, Query(description="a value outside the training data's ranges")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="transactions per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="transactions skipped, newest first")] = 0,
) -> TransactionFilter:
    """The filter a REST request's query names."""
    window = None if start is None else as_utc(start), None if end is None else as_utc(end)
    return TransactionFilter(*window, prediction, group, flips, out_of_range, limit, offset)


FilterDep = Annotated[TransactionFilter, Depends(transaction_filter)]


async def form_filter(request: Request) -> TransactionFilter:
    """The filter an HTML form's query names, where an unchosen list sends an empty value."""
    values = {k: v for k, v in request.query_params.items() if v != ""}
    try:
        numbers = {k: int(values[k]) for k in ("limit", "offset") if k in values}
    except ValueError:
        raise InputError("limit and offset must be whole numbers", field="offset") from None
    return TransactionFilter(
        start=parse_moment(values.get("start"), "start"),
        end=parse_moment(values.get("end"), "end"),
        prediction=values.get("prediction"),
        group=values.get("group"),
        **{k: values[k] == "true" for k in ("flips", "out_of_range") if k in values},
        **({"limit": 50} | numbers),
    )


@dashboard_pages.get("/deployments/{deployment_id}/transactions", response_class=HTMLResponse)
def transactions_page(
    deployment_id: str, chosen: Annotated[TransactionFilter, Depends(form_filter)], service: ServiceDep
) -> str:
    deployment = service.deployment(deployment_id, fresh=True)
    return pages.transactions_page(service.engine, deployment.deployment_id, chosen, _models(service))


@dashboard_pages.get("/explain", response_class=HTMLResponse)
def explain_page(service: ServiceDep, transaction_id: str | None = None) -> str:
    return pages.explain_page(service.engine, transaction_id, _training(service), _models(service))


def install_page_errors(app: FastAPI) -> None:
    """A page that cannot be shown (an unknown deployment, a bad date) answers an HTML page that says why, with its
    status; the API keeps its JSON error bodies."""
    answer_json = app.exception_handlers[InputError]

    async def answer(request: Request, error: InputError) -> Response:
        if request.url.path.startswith(pages.PREFIX):
            return HTMLResponse(pages.error_page(str(error), error.status), status_code=error.status)
        return await answer_json(request, error)

    app.add_exception_handler(InputError, answer)


# ---------------------------------------------------------------- REST

api = APIRouter(prefix="/ml/v4", tags=["Insights"], dependencies=[Depends(require_key)])
Start = Annotated[datetime | None, Query(description="windows starting from, ISO 8601", examples=["2026-01-05"])]
End = Annotated[datetime | None, Query(description="windows starting before, ISO 8601", examples=["2026-01-12"])]


class Measurement(BaseModel):
    evaluation_id: str
    monitor: str
    metric: str
    subject: str | None
    value: float | None
    threshold: float | None
    breached: bool | None = Field(description="None: no verdict (too few records) or a metric without threshold")
    records: int
    window_start: str | None
    window_end: str | None
    evaluated_at: str


class EvaluatedWindow(BaseModel):
    evaluation_id: str
    window_start: str | None
    window_end: str | None
    evaluated_at: str
    records: int
    alerts: int
    monitors: dict[str, str] = Field(description="each monitor's status: alert, ok or no verdict")


class TransactionRow(BaseModel):
    transaction_id: str
    scored_at: str
    model_id: str
    prediction: str
    probability_risk: float
    flips: bool = Field(description="the decision changes when the protected attribute is moved to the other group")
    out_of_range: list[str]
    fields: dict[str, Any]


class TransactionPage(BaseModel):
    total: int = Field(description="transactions that pass the filters")
    transactions: list[TransactionRow]


class Explanation(BaseModel):
    transaction_id: str
    deployment_id: str
    model_id: str
    scored_at: str
    decision: str
    probability: float = Field(description="the probability of the decision")
    probability_risk: float
    inputs: dict[str, Any]
    explainer: str
    base_value: float
    output: float
    contributions: list[dict[str, Any]] = Field(description="per feature, to the log-odds of Risk, largest first")
    reasons: list[dict[str, Any]] = Field(description="the features that pushed most towards the decision")
    counterfactual: dict[str, Any] = Field(description="the smallest change that flips the decision")


def _iso(value) -> str | None:
    return None if value is None or value != value else value.isoformat()


def _measured(service: Service, deployment_id: str, start: datetime | None, end: datetime | None):
    deployment = service.deployment(deployment_id, fresh=True)
    return datamart.read_measurements(service.engine, deployment.deployment_id, start=start, end=end)


def _measurements(frame) -> list[Measurement]:
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    times = ("window_start", "window_end", "evaluated_at")
    return [
        Measurement(
            **{k: v for k, v in row.items() if k in Measurement.model_fields} | {t: _iso(row[t]) for t in times}
        )
        for row in rows
    ]


@api.get(
    "/deployments/{deployment_id}/monitoring/measurements",
    response_model=list[Measurement],
    responses=_errors(400, 401, 404, 503),
)
def measurements(deployment_id: str, service: ServiceDep, start: Start = None, end: End = None) -> list[Measurement]:
    """The stored measurements of the deployment's windows that start in [start, end), oldest first."""
    return _measurements(_measured(service, deployment_id, start, end))


@api.get(
    "/deployments/{deployment_id}/monitoring/alerts",
    response_model=list[Measurement],
    responses=_errors(400, 401, 404, 503),
)
def monitoring_alerts(
    deployment_id: str, service: ServiceDep, start: Start = None, end: End = None
) -> list[Measurement]:
    """The alerts (breached alerting metrics) of the deployment's windows that start in [start, end)."""
    return _measurements(alerts(_measured(service, deployment_id, start, end)))


@api.get(
    "/deployments/{deployment_id}/monitoring/evaluations",
    response_model=list[EvaluatedWindow],
    responses=_errors(400, 401, 404, 503),
)
def monitoring_evaluations(
    deployment_id: str, service: ServiceDep, start: Start = None, end: End = None
) -> list[EvaluatedWindow]:
    """The deployment's evaluated windows that start in [start, end): records, alerts, each monitor's status."""
    table = windows(_measured(service, deployment_id, start, end))
    return [
        EvaluatedWindow(
            evaluation_id=row["evaluation_id"],
            window_start=_iso(row["window_start"]),
            window_end=_iso(row["window_end"]),
            evaluated_at=_iso(row["evaluated_at"]),
            records=row["records"],
            alerts=row["alerts"],
            monitors={m: row[m] for m in MONITORS},
        )
        for _, row in table.iterrows()
    ]


@api.get(
    "/deployments/{deployment_id}/transactions", response_model=TransactionPage, responses=_errors(400, 401, 404, 503)
)
def transactions(deployment_id: str, chosen: FilterDep, service: ServiceDep) -> TransactionPage:
    """The deployment's transactions scored in [start, end) that pass the filters, newest first, one page."""
    deployment = service.deployment(deployment_id, fresh=True)
    total, rows = list_transactions(service.engine, deployment.deployment_id, chosen, _models(service))
    return TransactionPage(total=total, transactions=rows)


@api.get("/transactions/{transaction_id}/explanation", response_model=Explanation, responses=_errors(401, 404, 503))
def explanation(transaction_id: str, service: ServiceDep) -> Explanation:
    """A transaction's decision and probability, shap contributions, top reasons and the smallest change that
    flips it."""
    return Explanation(**explain(service.engine, transaction_id, _training(service), _models(service)))


#: Every router of this module, in the order the app includes them.
ROUTERS = (dashboard, dashboard_pages, api)
