"""Monitors of a subscription with a declared schema (not the credit contract): a loan-default model of five
typed columns with two protected attributes, its traffic logged through the REST API in-process. Quality,
fairness and drift give verdicts; a model biased against the young raises the fairness alert; a window of
drifted applicants raises the drift alert; protected columns are validated naming the column. On SQLite and on
PostgreSQL."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from utils import datamart
from utils.monitoring.cli import main as monitoring_main
from utils.monitoring.results import MONITORS
from utils.monitoring.subscription import explain_logged, monitor_for
from utils.serving import ServiceSettings, create_app
from utils.subscriptions import SubscriptionError, create_subscription

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.datamarts  # the feedback joined to logged predictions is SQL of its own

API_KEY = "declared-test-key"
TYPES = {"income": "number", "years_employed": "integer", "region": "string", "age": "integer", "owns_home": "boolean"}
#: The declared schema: the young (under 26) and rural applicants are the monitored groups.
SCHEMA = {
    **TYPES,
    "age": {"type": "integer", "protected": {"below": 26}},
    "region": {"type": "string", "protected": {"monitored": ["rural"]}},
}
CLASSES = ["repaid", "default"]
DAY_ONE, DAY_TWO = "2026-05-04", "2026-05-05"


def applicants(n: int, seed: int, *, drifted: bool = False) -> pd.DataFrame:
    """Loan applicants and whether they defaulted; ``drifted``: lower incomes and more of them rural."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(np.log(2500 if drifted else 4000), 0.4, n).round(2)
    regions = rng.choice(["urban", "suburban", "rural"], n, p=[0.2, 0.2, 0.6] if drifted else [0.45, 0.35, 0.2])
    frame = pd.DataFrame(
        {
            "income": income,
            "years_employed": rng.integers(0, 30, n),
            "region": regions,
            "age": rng.integers(18, 70, n),
            "owns_home": rng.random(n) < 0.4,
        }
    )
    risk = true_risk(frame)
    frame["default"] = np.where(rng.random(n) < risk, "default", "repaid")
    return frame


def true_risk(frame: pd.DataFrame) -> np.ndarray:
    """The probability of default the data are drawn from (the fair model scores with it)."""
    z = 1.5 - 0.0005 * frame["income"] - 0.08 * frame["years_employed"] - 0.6 * frame["owns_home"]
    return 1 / (1 + np.exp(-z.to_numpy(dtype=float)))


def biased_risk(frame: pd.DataFrame) -> np.ndarray:
    """A model that turns down most applicants aged 25 or under."""
    return np.where(frame["age"].to_numpy() <= 25, np.maximum(true_risk(frame), 0.9), true_risk(frame))


@pytest.fixture(scope="module")
def client(workspace):
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key=API_KEY)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


def subscribe(client, name: str, **fields) -> str:
    body = {"name": name, "engine": "kserve", "input_schema": SCHEMA, "label": "default", "classes": CLASSES}
    answer = client.post("/ml/v4/subscriptions", json={**body, **fields})
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["input_schema"] == TYPES and made["protected_attributes"] == ["region", "age"]
    assert made["groups"]["age"] == {"monitored": {"below": 26}, "reference": {"at_least": 26}}
    subscription_id = made["subscription_id"]
    reference = applicants(2000, seed=1).to_csv(index=False).encode()
    stored = client.put(f"/ml/v4/subscriptions/{subscription_id}/reference", content=reference)
    assert stored.status_code == 200, stored.text
    return subscription_id


def log(
    client, engine, subscription_id: str, frame: pd.DataFrame, risk: np.ndarray, day: str, *, feedback: int
) -> None:
    """Log the decisions on ``frame`` as scored on ``day``, in requests of 100, and labels for the first
    ``feedback`` of them, each naming its prediction, recorded on ``day`` too (a simulation's history)."""
    inputs = frame[list(TYPES)].astype(object).to_dict("records")
    records = [
        {
            "inputs": row,
            "prediction": CLASSES[int(p > 0.5)],
            "probabilities": [1 - float(p), float(p)],
            "scored_at": f"{day}T12:00:00Z",
        }
        for row, p in zip(inputs, risk, strict=True)
    ]
    ids = []
    for start in range(0, len(records), 100):
        answer = client.post(
            f"/ml/v4/subscriptions/{subscription_id}/payload", json={"records": records[start : start + 100]}
        )
        assert answer.status_code == 200, answer.text
        ids += answer.json()["ids"]
    labelled = [
        {"inputs": row, "label": label, "transaction_id": i}
        for row, label, i in zip(inputs[:feedback], frame["default"], ids, strict=False)
    ]
    if labelled:
        answer = client.post(f"/ml/v4/subscriptions/{subscription_id}/feedback", json={"records": labelled})
        assert answer.status_code == 200, answer.text
        feedback_ids = answer.json()["ids"]
        datamart.restamp(engine, feedback_ids, [f"{day}T13:00:00Z"] * len(feedback_ids), feedback=True)


def verdicts(evaluation) -> dict[tuple[str, str, str | None], bool | None]:
    rows = evaluation.measurements[evaluation.measurements["alerting"]]
    return {
        (r.monitor, r.metric, r.subject): None if pd.isna(r.breached) else bool(r.breached) for r in rows.itertuples()
    }


@pytest.fixture(scope="module")
def fair(client, workspace):
    """A fair model's traffic: day one like the reference data, day two drifted."""
    subscription_id = subscribe(client, "loan-fair")
    day_one = applicants(600, seed=2)
    log(client, workspace.engine, subscription_id, day_one, true_risk(day_one), DAY_ONE, feedback=300)
    day_two = applicants(600, seed=3, drifted=True)
    log(client, workspace.engine, subscription_id, day_two, true_risk(day_two), DAY_TWO, feedback=0)
    return subscription_id


def test_a_fair_model_in_distribution_gets_verdicts_and_no_alert(fair, workspace):
    monitor = monitor_for(fair, engine=workspace.engine, work=workspace.work)
    evaluation = monitor.evaluate(DAY_ONE, DAY_TWO, monitors=MONITORS, report=True, store=True)
    found = verdicts(evaluation)
    assert evaluation.payload_records == 600 and evaluation.feedback_records == 300
    m = evaluation.measurements.set_index(["monitor", "metric", "subject"])["value"]
    assert m[("quality", "auc_roc", None)] > 0.65
    assert found[("quality", "auc_roc", None)] is not None
    assert found[("fairness", "disparate_impact", "age")] is False
    assert found[("fairness", "disparate_impact", "region")] is False
    assert found[("drift", "drifted_share", None)] is False
    assert found[("drift", "classifier_drift_p_value", None)] is False
    assert found[("data_quality", "out_of_range_share", None)] is False
    assert ("drift", "estimated_accuracy_drop", None) not in found  # no model to score with
    drift = evaluation.details["data_drift"].features
    assert list(drift.index) == list(TYPES)
    assert drift.loc["region", "test"] == "chi-square" and drift.loc["income", "test"] == "Kolmogorov-Smirnov"
    assert evaluation.details["fairness"].loc["age", "monitored"] == "under 26"
    assert evaluation.details["fairness"].loc["region", "reference"] == "not rural"
    stored = monitor.history()
    assert set(stored["monitor"]) >= {"quality", "fairness", "drift"}
    assert evaluation.report_path.is_file() and "region" in evaluation.report_path.read_text()


def test_a_drifted_window_raises_the_drift_alert(fair, workspace):
    monitor = monitor_for(fair, engine=workspace.engine, work=workspace.work)
    evaluation = monitor.evaluate(DAY_TWO, "2026-05-06", monitors=("drift", "quality"), report=False, store=False)
    found = verdicts(evaluation)
    assert found[("drift", "drifted_share", None)] is True
    assert set(evaluation.details["data_drift"].drifted) >= {"income", "region"}
    assert found[("quality", "auc_roc", None)] is None  # no feedback that day
    empty = monitor.evaluate("2027-01-01", "2027-01-02", monitors=MONITORS, report=False, store=False)
    assert empty.payload_records == empty.feedback_records == 0
    assert set(verdicts(empty).values()) == {None}


def test_a_biased_model_raises_the_fairness_alert(client, workspace, capsys):
    subscription_id = subscribe(client, "loan-biased")
    frame = applicants(600, seed=4)
    log(client, workspace.engine, subscription_id, frame, biased_risk(frame), DAY_ONE, feedback=200)
    monitor = monitor_for(subscription_id, engine=workspace.engine, work=workspace.work)
    evaluation = monitor.evaluate(monitors=("fairness",), report=False, store=False)
    found = verdicts(evaluation)
    assert found[("fairness", "disparate_impact", "age")] is True
    assert found[("fairness", "disparate_impact", "region")] is False
    assert evaluation.gates["fairness_ok"] is False
    with pytest.raises(SubscriptionError, match="declares its own columns"):
        explain_logged(monitor, "any")
    command = ["--subscription-id", subscription_id, "--work-dir", str(workspace.work), "--fail-on-alert"]
    assert monitoring_main([*command, "--no-store"]) == 1
    assert "ALERT fairness.disparate_impact [age]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("column", "declared"),
    [
        ("age", {"type": "integer", "protected": {"monitored": ["young"]}}),
        ("age", {"type": "integer", "protected": {"below": 26, "at_least": 60}}),
        ("region", {"type": "string", "protected": {"monitored": []}}),
        ("region", {"type": "string", "protected": {"monitored": ["rural", "rural"]}}),
        ("owns_home", {"type": "boolean", "protected": {"monitored": "yes"}}),
        ("income", {"type": "number"}),
        ("prediction", "number"),
    ],
)
def test_a_protected_column_is_checked_naming_it(client, workspace, column, declared):
    """Over REST (the OpenAPI document's rules) and from Python (the same rules, each refusal naming the column)."""
    spec = {"input_schema": {**SCHEMA, column: declared}, "label": "default", "classes": CLASSES}
    answer = client.post("/ml/v4/subscriptions", json={"name": "loan-refused", "engine": "custom", **spec})
    assert answer.status_code == 400, answer.text
    assert column in answer.text
    with pytest.raises(SubscriptionError) as refused:
        create_subscription("loan-refused", engine_name="custom", engine=workspace.engine, work=workspace.work, **spec)
    assert refused.value.field == column


def test_protected_attributes_of_a_declared_schema_are_its_protected_columns(client, workspace):
    spec = {"input_schema": SCHEMA, "label": "default", "classes": CLASSES, "protected_attributes": ["income"]}
    answer = client.post("/ml/v4/subscriptions", json={"name": "loan-listed", "engine": "custom", **spec})
    assert answer.status_code == 400 and "protected_attributes" in answer.text
    with pytest.raises(SubscriptionError) as refused:
        create_subscription("loan-listed", engine_name="custom", engine=workspace.engine, work=workspace.work, **spec)
    assert refused.value.field == "protected_attributes"


def test_feedback_names_its_prediction_and_the_monitors_need_reference_data(client, workspace):
    body = {"name": "loan-no-reference", "engine": "custom", "input_schema": SCHEMA, "label": "default"}
    url = "http://127.0.0.1:9/v2/models/loan/infer"
    answer = client.post("/ml/v4/subscriptions", json={**body, "classes": CLASSES, "scoring_url": url})
    assert answer.status_code == 201, answer.text
    unlinked = {"inputs": applicants(1, seed=5)[list(TYPES)].astype(object).iloc[0].to_dict(), "label": "repaid"}
    feedback = f"/ml/v4/subscriptions/{answer.json()['subscription_id']}/feedback"
    refused = client.post(feedback, json={"records": [unlinked]})
    assert refused.status_code == 400 and "judged on its logged predictions" in refused.json()["error"]
    with pytest.raises(SubscriptionError, match="lack the column"):
        monitor_for(answer.json()["subscription_id"], engine=workspace.engine, work=workspace.work)


def test_the_openapi_document_shows_a_declared_subscription_with_groups(client):
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/ml/v4/subscriptions"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["examples"]["declared"]["value"]
    assert example["input_schema"]["age"] == {"type": "integer", "protected": {"below": 26}}
    assert {"ProtectedNumeric", "ProtectedString", "ProtectedBoolean"} <= set(document["components"]["schemas"])
