"""The insights dashboard without a browser: its data (tiles, windows, alerts, transactions, explanations), its
REST endpoints and pages in-process, and the plain words of the form."""

from __future__ import annotations

import functools
import html
import re
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from utils import datamart
from utils.config import layout
from utils.dashboard import details, status
from utils.dashboard.transactions import TransactionFilter, explain, list_transactions
from utils.data import CATEGORIES, FEATURES, UNFAVOURABLE
from utils.decision import model_decisions
from utils.fairness import perturb
from utils.monitoring import DeploymentMonitor
from utils.plain_words import FIELD_WORDS, label, reasons, shown_value
from utils.scoring import InputError, Scorer, frame_columns
from utils.serving import ServiceSettings, create_app
from utils.serving.service import score
from utils.traffic import applicants

with warnings.catch_warnings():  # Starlette's test client announces that it will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API_KEY = "dashboard-test-key"
FIRST_DAY = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 3


@pytest.fixture(scope="module")
def monitored(workspace):
    """Three days of scored applicants (drift growing day by day) in the payload log, each day evaluated."""
    deployment = workspace.deployment
    scorer = Scorer(workspace.model, deployment.model_id)
    store = functools.partial(datamart.insert_payload, workspace.engine)
    with threadpool_limits(limits=1):
        for day in range(DAYS):
            frame = applicants(150, seed=day, drift=0.4 * day, pool=workspace.test)
            scored = score(store, scorer, deployment, frame_columns(frame))
            start = FIRST_DAY + timedelta(days=day)
            moments = [start + timedelta(minutes=5 * i) for i in range(len(frame))]
            datamart.restamp(workspace.engine, scored.transaction_ids, moments)
        monitor = DeploymentMonitor(deployment.deployment_id, engine=workspace.engine, work=workspace.work)
        evaluations = monitor.evaluate_days(FIRST_DAY, DAYS, report=False, debias=False)
    return workspace, evaluations


@pytest.fixture(scope="module")
def client(monitored):
    workspace, _ = monitored
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key=API_KEY)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


def _stored_alerts(engine, deployment_id: str) -> pd.DataFrame:
    measured = datamart.read_measurements(engine, deployment_id)
    return measured[status.alerting_rows(measured) & measured["breached"].fillna(False).astype(bool)]


def test_each_tile_counts_the_alerts_the_measurements_table_holds(monitored):
    workspace, evaluations = monitored
    tiles = {tile.deployment_id: tile for tile in status.tiles(workspace.engine)}
    tile = tiles[workspace.deployment.deployment_id]
    stored = _stored_alerts(workspace.engine, workspace.deployment.deployment_id)
    assert tile.alerts == len(stored) == sum(len(e.alerts) for e in evaluations) > 0
    assert tile.open_alerts == len(evaluations[-1].alerts)
    assert tile.windows == DAYS and tile.last_window == "2026-01-07 .. 2026-01-08"
    assert tile.monitors["drift"] == ("alert" if evaluations[-1].gates["drift_detected"] else "ok")


def test_the_tiles_put_what_needs_attention_first():
    calm = status.Tile("a", "a", "prod", "m", "ready", windows=3, alerts=0, open_alerts=0)
    past = status.Tile("b", "b", "dev", "m", "ready", windows=3, alerts=4, open_alerts=0)
    alerting = status.Tile("c", "c", "dev", "m", "ready", windows=3, alerts=2, open_alerts=2)
    never = status.Tile("d", "d", "dev", "m", "ready", windows=0, alerts=0, open_alerts=0)
    ordered = sorted([calm, past, alerting, never], key=lambda t: t.attention)
    assert [t.deployment_id for t in ordered] == ["c", "d", "b", "a"]


def test_the_windows_give_each_monitors_status_as_the_evaluation_did(monitored):
    workspace, evaluations = monitored
    windows = status.windows(datamart.read_measurements(workspace.engine, workspace.deployment.deployment_id))
    assert list(windows["evaluation_id"]) == [e.evaluation_id for e in evaluations]
    for (_, row), evaluation in zip(windows.iterrows(), evaluations, strict=True):
        assert row["alerts"] == len(evaluation.alerts)
        drifted = evaluation.gates["drift_detected"]
        assert row["drift"] == {True: "alert", False: "ok", None: "no verdict"}[drifted]


def test_the_drift_details_list_every_feature_drifted_first(monitored):
    workspace, evaluations = monitored
    window = details.stored_window(workspace.engine, workspace.deployment.deployment_id, evaluations[-1].evaluation_id)
    table = details.drift_details(window)
    assert sorted(table["feature"]) == sorted(FEATURES)
    assert list(table["drifted"]) == sorted(table["drifted"], reverse=True)
    payload = details.window_payload(workspace.engine, window)
    shown = details.distributions(table, payload, workspace.train)
    assert len(shown) == details.MAX_DISTRIBUTIONS
    for found in shown:
        assert np.isclose(sum(found["window"]), 1) and np.isclose(sum(found["training"]), 1)


def test_the_perturbed_view_scores_each_record_in_the_other_group(monitored):
    workspace, evaluations = monitored
    window = details.stored_window(workspace.engine, workspace.deployment.deployment_id, evaluations[0].evaluation_id)
    payload = details.window_payload(workspace.engine, window)
    rates = details.perturbed_rates(workspace.model, payload, "Sex")
    female = (payload["Sex"] == "female").to_numpy()
    flipped = model_decisions(workspace.model, perturb(payload, "Sex")) != UNFAVOURABLE
    assert rates["female"]["flipped"] == pytest.approx(flipped[female].mean())
    assert rates["male"]["as_scored"] == pytest.approx((payload["prediction"][~female] != UNFAVOURABLE).mean())
    attributes = {found["attribute"]: found for found in details.fairness_details(window)}
    low, high = attributes["Sex"]["interval"]
    assert low <= attributes["Sex"]["disparate_impact"] <= high


def test_the_transaction_filters_keep_exactly_the_matching_records(monitored):
    workspace, _ = monitored
    chosen = TransactionFilter(
        start=FIRST_DAY, end=FIRST_DAY + timedelta(days=1), prediction="Risk", group="Sex=female", flips=True, limit=500
    )
    total, rows = list_transactions(
        workspace.engine, workspace.deployment.deployment_id, chosen, workspace.registry.load
    )
    payload = datamart.read_payload(workspace.engine, workspace.deployment.deployment_id, chosen.start, chosen.end)
    flips = model_decisions(workspace.model, perturb(payload, "Sex")) != payload["prediction"].to_numpy()
    wanted = payload[(payload["prediction"] == "Risk") & (payload["Sex"] == "female") & flips]
    assert total == len(rows) == len(wanted)
    assert {row["transaction_id"] for row in rows} == set(wanted["transaction_id"])


@pytest.mark.parametrize(
    ("criteria", "field"),
    [({"prediction": "maybe"}, "prediction"), ({"group": "Sex=other"}, "group"), ({"limit": 0}, "limit")],
)
def test_a_bad_filter_names_its_field(criteria, field):
    with pytest.raises(InputError) as raised:
        TransactionFilter(**criteria)
    assert raised.value.field == field


def test_an_explanation_adds_up_and_its_change_flips_the_decision(monitored):
    workspace, _ = monitored
    payload = datamart.read_payload(workspace.engine, workspace.deployment.deployment_id)
    transaction_id = payload["transaction_id"].iloc[0]
    found = explain(workspace.engine, transaction_id, layout(workspace.work).train, workspace.registry.load)
    assert found["decision"] == payload["prediction"].iloc[0]
    total = sum(row["contribution"] for row in found["contributions"])
    assert found["base_value"] + total == pytest.approx(found["output"], abs=1e-6)
    towards = 1 if found["decision"] == UNFAVOURABLE else -1
    assert all(reason["contribution"] * towards > 0 for reason in found["reasons"])
    change = found["counterfactual"]
    if change["found"]:
        assert change["decision_after"] != found["decision"] and change["text"]


def test_every_field_has_plain_words_and_values_read_without_codes():
    assert set(FIELD_WORDS) == set(FEATURES)
    assert label("LoanDuration") == "Loan duration (months)"
    assert shown_value("LoanDuration", 12) == "12 months"
    assert shown_value("CheckingStatus", "no_checking") == "no checking account"
    assert all("_" not in shown_value(name, value) for name, values in CATEGORIES.items() for value in values)
    contributions = pd.DataFrame(
        {"value": [12, "own", 30], "contribution": [-0.5, 0.2, -0.1]}, index=["LoanDuration", "Housing", "Age"]
    )
    assert [r["field"] for r in reasons(contributions, "No Risk")] == ["LoanDuration", "Age"]
    assert [r["text"] for r in reasons(contributions, "Risk")] == ["Housing: own (raised the risk)"]


def test_the_rest_endpoints_answer_what_the_data_mart_holds(monitored, client):
    workspace, evaluations = monitored
    base = f"/ml/v4/deployments/{workspace.deployment.deployment_id}"
    alerts = client.get(f"{base}/monitoring/alerts").json()
    assert len(alerts) == len(_stored_alerts(workspace.engine, workspace.deployment.deployment_id))
    windows = client.get(f"{base}/monitoring/evaluations", params={"start": "2026-01-06"}).json()
    assert [w["evaluation_id"] for w in windows] == [e.evaluation_id for e in evaluations[1:]]
    measured = client.get(f"{base}/monitoring/measurements", params={"start": "2026-01-07", "end": "2026-01-08"})
    assert {m["evaluation_id"] for m in measured.json()} == {evaluations[2].evaluation_id}
    listed = client.get(f"{base}/transactions", params={"prediction": "Risk", "limit": 5}).json()
    assert len(listed["transactions"]) == 5 and all(t["prediction"] == "Risk" for t in listed["transactions"])
    transaction_id = listed["transactions"][0]["transaction_id"]
    explained = client.get(f"/ml/v4/transactions/{transaction_id}/explanation")
    assert explained.status_code == 200 and explained.json()["decision"] == "Risk"


@pytest.mark.parametrize(
    ("path", "status_code", "field"),
    [
        ("/monitoring/alerts?start=yesterday", 400, "start"),
        ("/transactions?group=Sex%3Dnone", 400, "group"),
        ("/transactions?limit=100000", 400, "limit"),
    ],
)
def test_bad_rest_queries_are_400s_that_name_the_parameter(monitored, client, path, status_code, field):
    workspace, _ = monitored
    answer = client.get(f"/ml/v4/deployments/{workspace.deployment.deployment_id}{path}")
    assert answer.status_code == status_code and answer.json()["field"] == field


def test_an_unknown_transaction_is_a_404(client):
    answer = client.get("/ml/v4/transactions/no-such-transaction/explanation")
    assert answer.status_code == 404 and answer.json()["field"] == "transaction_id"


def test_the_rest_endpoints_are_documented_with_examples(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/ml/v4/transactions/{transaction_id}/explanation" in paths
    listed = paths["/ml/v4/deployments/{deployment_id}/transactions"]["get"]
    group = next(p for p in listed["parameters"] if p["name"] == "group")
    assert group["schema"]["examples"] == ["Sex=female"]
    assert not any(path.startswith("/dashboard") for path in paths)


def test_with_an_api_key_the_pages_ask_for_it_once(monitored):
    workspace, _ = monitored
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key=API_KEY)
    with TestClient(create_app(settings), follow_redirects=False) as anonymous:
        answer = anonymous.get("/dashboard")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/dashboard/login")
        assert anonymous.post("/dashboard/login", json={"key": "wrong"}).status_code == 401
        assert anonymous.post("/dashboard/login", json={"key": API_KEY}).status_code == 200
        page = anonymous.get("/dashboard")
        assert page.status_code == 200 and workspace.deployment.deployment_id in page.text
        script = anonymous.get("/dashboard/static/plotly.min.js")
        assert script.status_code == 200 and len(script.content) > 1_000_000


def test_every_page_renders(monitored, client):
    workspace, evaluations = monitored
    base = f"/dashboard/deployments/{workspace.deployment.deployment_id}"
    evaluation = evaluations[-1].evaluation_id
    for path in (
        "/dashboard",
        base,
        f"{base}?start=2026-01-06&end=2026-01-07",
        f"{base}/evaluations/{evaluation}/fairness",
        f"{base}/evaluations/{evaluation}/drift",
        f"{base}/transactions?prediction=Risk&group=&flips=",
        "/dashboard/explain",
        "/dashboard/explain?transaction_id=unknown",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
    missing = client.get(f"{base}/evaluations/not-one/fairness")  # a page that says why, in HTML
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert "no evaluation &#39;not-one&#39;" in missing.text and 'href="/dashboard"' in missing.text
    wrong = client.get(f"{base}?start=yesterday")
    assert wrong.status_code == 400 and "start must be an ISO 8601 date" in wrong.text
    assert client.get("/ml/v4/transactions/unknown/explanation").headers["content-type"] == "application/json"


def test_a_windows_transactions_link_lists_that_windows_transactions(monitored, client):
    workspace, _ = monitored
    page = client.get(f"/dashboard/deployments/{workspace.deployment.deployment_id}").text
    links = re.findall(r'href="([^"]+/transactions\?start=[^"]+)"', page)
    assert len(links) == DAYS
    listed = client.get(html.unescape(links[-1]))  # the table lists the newest window first
    assert listed.status_code == 200 and "<strong>150</strong> transactions match" in listed.text
