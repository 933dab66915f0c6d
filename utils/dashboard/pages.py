"""The dashboard's HTML pages: the data of :mod:`utils.dashboard.status`, :mod:`~utils.dashboard.details` and
:mod:`~utils.dashboard.transactions` with the figures of :mod:`~utils.dashboard.figures`, in the Jinja2 templates
of ``templates/`` (escaped by default). Each function takes what a request names and returns the page's HTML.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.engine import Engine

from utils import config, datamart, lifecycle
from utils.contract import InputError
from utils.dashboard import details, figures, status
from utils.dashboard.transactions import ModelLoader, TransactionFilter, explain, group_choices, list_transactions
from utils.data import CLASS_ORDER, load_credit_csv
from utils.lifecycle import LifecycleError
from utils.monitoring.results import ALERT_METRICS, MONITORS, window_text
from utils.plain_words import label, shown_value

#: Where the dashboard lives in the scoring service.
PREFIX = config.DASHBOARD_PATH


@functools.cache
def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("utils.dashboard"), autoescape=select_autoescape(["html"]))
    environment.filters["number"] = lambda v, digits=3: "–" if v is None or pd.isna(v) else f"{v:.{digits}f}"
    environment.filters["moment"] = lambda v: (
        "–" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M")
    )
    environment.filters["field_label"] = label
    environment.filters["field_value"] = lambda value, field: shown_value(field, value)
    environment.filters["iso"] = lambda v: "" if v is None or pd.isna(v) else pd.Timestamp(v).isoformat()
    environment.globals.update(prefix=PREFIX, monitors=MONITORS)
    return environment


def _render(template: str, **values) -> str:
    return _environment().get_template(template).render(**values)


def overview(engine: Engine) -> str:
    return _render("overview.html", title="Deployments", tiles=status.tiles(engine))


def _deployment(engine: Engine, deployment_id: str) -> dict:
    found = datamart.read_deployment(engine, deployment_id)
    if found is None:
        raise InputError(f"no deployment {deployment_id!r}", field="deployment_id", status=404)
    return found


def _lifecycle(engine: Engine, deployment_id: str) -> dict:
    evaluations = lifecycle.list_evaluations(deployment_id=deployment_id, engine=engine)
    ids = {e.evaluation_id for e in evaluations}
    try:
        history = lifecycle.deployment_history(deployment_id, engine=engine)
    except LifecycleError:  # a deployment from before the history was kept
        history = []
    approvals = [a for a in lifecycle.list_approvals(engine=engine) if a.evaluation_id in ids]
    return {"history": history, "evaluations": evaluations, "approvals": approvals}


def deployment_page(engine: Engine, deployment_id: str, start: datetime | None, end: datetime | None) -> str:
    """Each alerting metric over the windows starting in [start, end), the windows, their alerts, the lifecycle."""
    deployment = _deployment(engine, deployment_id)
    measured = datamart.read_measurements(engine, deployment_id, start=start, end=end)
    charts = []
    for monitor, metric in ALERT_METRICS:
        if ((measured["monitor"] == monitor) & (measured["metric"] == metric)).any():
            charts.append(figures.as_json(figures.timeline(measured, monitor, metric)))
    everything = datamart.read_measurements(engine, deployment_id)
    return _render(
        "deployment.html",
        title=f"{deployment['name']} ({deployment['space']})",
        deployment=deployment,
        start=start,
        end=end,
        charts=charts,
        windows=status.windows(measured).iloc[::-1].to_dict("records"),
        alerts=status.alerts(measured).iloc[::-1].to_dict("records"),
        span=(everything["window_start"].min(), everything["window_end"].max()) if len(everything) else None,
        window_text=window_text,
        **_lifecycle(engine, deployment_id),
    )


def fairness_page(engine: Engine, deployment_id: str, evaluation_id: str, load_model: ModelLoader) -> str:
    deployment = _deployment(engine, deployment_id)
    window = details.stored_window(engine, deployment_id, evaluation_id)
    payload = details.window_payload(engine, window)
    attributes = details.fairness_details(window)
    charts = []
    for found in attributes:
        rates = details.perturbed_rates(load_model(deployment["model_id"]), payload, found["attribute"])
        found["rates"] = rates
        charts.append(figures.as_json(figures.group_rates(found["attribute"], rates)))
    return _render(
        "fairness.html",
        title=f"Fairness: {deployment['name']} ({deployment['space']})",
        deployment=deployment,
        window=window,
        window_label=window_text(window.start, window.end),
        attributes=attributes,
        charts=charts,
        records=len(payload),
    )


def drift_page(engine: Engine, deployment_id: str, evaluation_id: str, training: Path) -> str:
    deployment = _deployment(engine, deployment_id)
    window = details.stored_window(engine, deployment_id, evaluation_id)
    table = details.drift_details(window)
    drifted = table[table["drifted"]] if table["drifted"].any() else table
    shown = details.distributions(drifted, details.window_payload(engine, window), load_credit_csv(training))
    charts = [figures.as_json(figures.drift_effects(table))] if len(table) else []
    charts += [figures.as_json(figures.distribution(found)) for found in shown]
    return _render(
        "drift.html",
        title=f"Drift: {deployment['name']} ({deployment['space']})",
        deployment=deployment,
        window=window,
        window_label=window_text(window.start, window.end),
        table=table.to_dict("records"),
        charts=charts,
    )


def transactions_page(engine: Engine, deployment_id: str, chosen: TransactionFilter, load_model: ModelLoader) -> str:
    deployment = _deployment(engine, deployment_id)
    total, rows = list_transactions(engine, deployment_id, chosen, load_model)
    return _render(
        "transactions.html",
        title=f"Transactions: {deployment['name']} ({deployment['space']})",
        deployment=deployment,
        chosen=chosen,
        total=total,
        rows=rows,
        classes=CLASS_ORDER,
        groups=group_choices(),
        query=urlencode({k: v for k, v in chosen.query().items() if k != "offset"}),
    )


def explain_page(engine: Engine, transaction_id: str | None, training: Path, load_model: ModelLoader) -> str:
    """The search box, and the explanation of ``transaction_id`` when one is given (a message when none exists)."""
    found, problem = None, None
    if transaction_id:
        try:
            found = explain(engine, transaction_id, training, load_model)
        except InputError as error:
            problem = str(error)
    chart = figures.as_json(figures.contributions(found["contributions"])) if found else None
    return _render(
        "explain.html",
        title="Explain a transaction",
        transaction_id=transaction_id or "",
        found=found,
        problem=problem,
        charts=[chart] if chart else [],
    )


def login_page(target: str) -> str:
    return _render("login.html", title="Sign in", target=target)


def error_page(message: str, status_code: int) -> str:
    """What a page that cannot be shown says instead (404: what is missing; 400: what is wrong)."""
    title = "Not found" if status_code == 404 else "Cannot show this page"
    return _render("error.html", title=title, message=message)
