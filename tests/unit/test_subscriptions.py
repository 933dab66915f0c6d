"""Subscriptions and payload logging without scoring, through the REST API in-process; the monitors on logged
predictions of another engine (a biased one raises the fairness alert); the request log, the performance monitor
and ``/metrics``."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from utils import datamart
from utils.data import FEATURES, LABEL, generate_credit_data
from utils.datamart.subscriptions import read_requests
from utils.decision import decide, risk_probability
from utils.monitoring.results import ALL_MONITORS
from utils.monitoring.subscription import explain_logged, monitor_for
from utils.serving import ServiceSettings, create_app
from utils.subscriptions import SubscriptionError, get_subscription

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API_KEY = "subscription-test-key"
ROWS_PER_REQUEST = 25


@pytest.fixture(scope="module")
def client(workspace):
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key=API_KEY)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


def _subscribe(client, name: str, **fields) -> dict:
    answer = client.post("/ml/v4/subscriptions", json={"name": name, "engine": "mlserver", **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _biased(model, frame: pd.DataFrame) -> np.ndarray:
    """The probability of Risk of a model that turns down most women: the deployed model's, raised for them."""
    risk = risk_probability(model, frame)
    return np.where(frame["Sex"].to_numpy() == "female", np.maximum(risk, 0.9), risk)


def _records(frame: pd.DataFrame, risk: np.ndarray) -> list[dict]:
    inputs = frame[list(FEATURES)].astype(object).to_dict("records")
    return [
        {"inputs": row, "prediction": str(decide(p)), "probabilities": [1 - float(p), float(p)]}
        for row, p in zip(inputs, risk, strict=True)
    ]


def _log(client, subscription_id: str, records: list[dict]) -> list[str]:
    ids = []
    for start in range(0, len(records), ROWS_PER_REQUEST):
        answer = client.post(
            f"/ml/v4/subscriptions/{subscription_id}/payload",
            json={"records": records[start : start + ROWS_PER_REQUEST]},
        )
        assert answer.status_code == 200, answer.text
        ids += answer.json()["ids"]
    return ids


def test_a_subscription_is_created_listed_and_read(client):
    made = _subscribe(client, "listed-engine", scoring_url="http://127.0.0.1:9/v2/models/m/infer")
    assert made["input_schema"] == "credit" and made["classes"] == ["No Risk", "Risk"]
    assert made["favourable"] == "No Risk" and made["reference"] == "data/train.csv"
    assert made["protected_attributes"] == ["Sex", "Age"] and made["groups"]["Sex"]["monitored"] == "female"
    assert client.get(f"/ml/v4/subscriptions/{made['subscription_id']}").json() == made
    names = [s["name"] for s in client.get("/ml/v4/subscriptions").json()["resources"]]
    assert "listed-engine" in names
    assert client.get("/ml/v4/subscriptions", params={"name": "listed-engine"}).json()["resources"] == [made]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "../etc", "engine": "mlserver"}, 400, "name"),
        ({"name": "x", "engine": "sagemaker"}, 400, "engine"),
        ({"name": "x", "engine": "custom", "scoring_url": "file:///etc/passwd"}, 400, "scoring_url"),
        ({"name": "x", "engine": "custom", "classes": ["a", "b"]}, 400, "classes"),
        ({"name": "x", "engine": "custom", "input_schema": {"a": "complex"}}, 400, "input_schema"),
        ({"name": "x", "engine": "custom", "input_schema": {"a": "number"}, "protected_attributes": ["b"]}, 400, None),
        ({"name": "x", "engine": "custom", "model_id": "forest\u0000v1"}, 400, "model_id"),
        ({"name": "x", "engine": "custom", "scoring_url": "http://127.0.0.1:1/\u0000"}, 400, "scoring_url"),
        (
            {
                "name": "x",
                "engine": "custom",
                "input_schema": {"a": "number"},
                "label": "y",
                "classes": ["ok\u0000", "no"],
            },
            400,
            "classes",
        ),
    ],
)
def test_a_bad_subscription_is_refused_naming_the_field(client, body, status, field):
    """Control characters too (PostgreSQL stores no NUL: a 500 there before they were refused)."""
    answer = client.post("/ml/v4/subscriptions", json=body)
    assert answer.status_code == status, answer.text
    if field:
        assert field in (answer.json()["field"] or "") or field in answer.json()["error"]


def test_a_taken_name_is_a_conflict(client):
    _subscribe(client, "taken-name")
    answer = client.post("/ml/v4/subscriptions", json={"name": "taken-name", "engine": "kserve"})
    assert answer.status_code == 409 and answer.json()["field"] == "name"


def test_a_deployment_is_a_subscription_too(client, workspace):
    deployment_id = workspace.deployment.deployment_id
    found = client.get(f"/ml/v4/subscriptions/{deployment_id}").json()
    assert found["engine"] == "local" and found["deployment_id"] == deployment_id
    assert found["model_id"] == workspace.deployment.model_id
    assert client.get("/ml/v4/subscriptions/no-such-id").status_code == 404


def test_logged_records_are_checked_against_the_contract_and_nothing_is_stored(client, workspace):
    sub = _subscribe(client, "checked-engine")
    good = _records(workspace.test.iloc[:3], np.array([0.2, 0.7, 0.4]))
    bad = [dict(r, inputs=dict(r["inputs"])) for r in good]
    bad[1]["inputs"]["Age"] = 300
    bad[0]["inputs"]["Job"] = {"nested": [1]}
    bad[0]["scored_at"] = "0001-01-01T00:00:00"
    bad[2]["probabilities"] = [0.5, 0.6]
    bad[2]["prediction"] = "maybe"
    url = f"/ml/v4/subscriptions/{sub['subscription_id']}/payload"
    answer = client.post(url, json={"records": bad})
    assert answer.status_code == 400
    faults = {(f["field"], f["row"]) for f in answer.json()["faults"]}
    assert faults == {("Job", 0), ("Age", 1), ("prediction", 2), ("probabilities", 2)}
    assert datamart.read_payload(workspace.engine, sub["subscription_id"]).empty
    too_many = client.post(url, json={"records": good * 400})
    assert too_many.status_code == 413
    assert client.post(url, json={"records": good}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ids = client.post(url, json={"records": [dict(good[0], transaction_id="tx-1")]}).json()["ids"]
    assert ids == ["tx-1"]
    assert client.post(url, json={"records": [dict(good[0], transaction_id="tx-1")]}).status_code == 409


def test_feedback_names_a_logged_prediction_when_there_is_no_url(client, workspace):
    sub = _subscribe(client, "feedback-engine")
    url = f"/ml/v4/subscriptions/{sub['subscription_id']}"
    record = _records(workspace.test.iloc[:1], np.array([0.2]))[0]
    (logged,) = client.post(f"{url}/payload", json={"records": [record]}).json()["ids"]
    unlinked = client.post(f"{url}/feedback", json={"records": [{"inputs": record["inputs"], "label": "Risk"}]})
    assert unlinked.status_code == 400 and "no scoring URL" in unlinked.json()["error"]
    unknown = {"inputs": record["inputs"], "label": "Risk", "transaction_id": "nope"}
    assert client.post(f"{url}/feedback", json={"records": [unknown]}).status_code == 400
    linked = client.post(f"{url}/feedback", json={"records": [dict(unknown, transaction_id=logged)]})
    assert linked.status_code == 200 and linked.json()["records"] == 1


def test_a_declared_schema_is_checked_by_type(client, workspace):
    schema = {"income": "number", "region": "string", "years": "integer"}
    body = {"input_schema": schema, "label": "default", "classes": ["repaid", "default"]}
    sub = _subscribe(client, "declared-engine", **body)
    url = f"/ml/v4/subscriptions/{sub['subscription_id']}/payload"
    good = {
        "inputs": {"income": 1.5, "region": "north", "years": 3},
        "prediction": "repaid",
        "probabilities": [0.9, 0.1],
    }
    assert client.post(url, json={"records": [good]}).status_code == 200
    bad = dict(good, inputs={"income": "rich", "years": 2.5, "colour": "red"})
    faults = {(f["field"], f["row"]) for f in client.post(url, json={"records": [bad]}).json()["faults"]}
    assert faults == {("income", 0), ("years", 0), ("region", 0), ("'colour'", 0)}
    with pytest.raises(SubscriptionError, match="reference data lack the column"):  # none given: the credit data's
        monitor_for(sub["subscription_id"], engine=workspace.engine, work=workspace.work)


@pytest.fixture(scope="module")
def biased(client, workspace):
    """An external engine's biased decisions on 600 applicants, logged in requests of 25, with feedback."""
    sub = _subscribe(client, "biased-engine")
    frame = generate_credit_data(600, seed=11)
    ids = _log(client, sub["subscription_id"], _records(frame, _biased(workspace.model, frame)))
    labelled = [
        {"inputs": r, "label": label, "transaction_id": i}
        for r, label, i in zip(frame[list(FEATURES)].astype(object).to_dict("records"), frame[LABEL], ids, strict=True)
    ]
    for start in range(0, 300, 100):
        answer = client.post(
            f"/ml/v4/subscriptions/{sub['subscription_id']}/feedback", json={"records": labelled[start : start + 100]}
        )
        assert answer.status_code == 200, answer.text
    bad = _records(frame.iloc[:2], np.array([0.1, 0.2]))
    bad[0]["inputs"] = dict(bad[0]["inputs"], Sex="unknown")
    rejected = client.post(f"/ml/v4/subscriptions/{sub['subscription_id']}/payload", json={"records": bad})
    assert rejected.status_code == 400
    client.app.state.request_log.flush()  # written in batches, a quarter of a second apart
    return sub["subscription_id"]


def test_the_monitors_judge_an_external_engine_from_its_log(biased, workspace):
    monitor = monitor_for(biased, engine=workspace.engine, work=workspace.work)
    evaluation = monitor.evaluate(monitors=ALL_MONITORS, report=False, store=True)
    status = {(row.monitor, row.metric): row.status for row in evaluation.summary().itertuples() if row.subject is None}
    assert ("fairness", "disparate_impact", "Sex") in {
        (a.monitor, a.metric, a.subject) for a in evaluation.alerts.itertuples()
    }
    for verdict in ("quality", "auc_roc"), ("drift", "drifted_share"), ("performance", "latency_p95_seconds"):
        assert status[verdict] in ("ok", "ALERT"), verdict
    assert evaluation.gates["fairness_ok"] is False
    assert evaluation.payload_records == 600 and evaluation.feedback_records == 300
    with pytest.raises(SubscriptionError, match="no scoring URL"):
        explain_logged(monitor, "any")


def test_the_performance_monitor_counts_requests_and_rejections(biased, workspace):
    monitor = monitor_for(biased, engine=workspace.engine, work=workspace.work)
    evaluation = monitor.evaluate(monitors=("performance",), report=False, store=False)
    m = evaluation.measurements.set_index(["metric", "subject"])["value"]
    assert m[("requests", None)] == 25  # 24 accepted, 1 rejected: rejected records are not payload
    assert m[("records", None)] == 600
    assert m[("rejected_rows", "contract")] == 1
    assert m[("rejected_request_share", None)] == pytest.approx(1 / 25)
    assert 0 < m[("latency_p50_seconds", None)] <= m[("latency_p95_seconds", None)] <= m[("latency_p99_seconds", None)]
    assert m[("records_per_second", None)] > 0
    log = read_requests(workspace.engine, biased)
    assert log["records"].sum() == len(datamart.read_payload(workspace.engine, biased)) == 600


def test_metrics_parse_and_match_the_payload_log(client, biased, workspace):
    time.sleep(0.2)  # the last request's row is written after its answer
    answer = client.get("/metrics")
    assert answer.status_code == 200
    samples = [s for family in text_string_to_metric_families(answer.text) for s in family.samples]
    records = sum(
        s.value for s in samples if s.name == "credit_scoring_records_total" and s.labels["deployment_id"] == biased
    )
    assert records == len(datamart.read_payload(workspace.engine, biased))
    rejected = [
        s for s in samples if s.name == "credit_scoring_rejected_rows_total" and s.labels["deployment_id"] == biased
    ]
    assert [(s.labels["reason"], s.value) for s in rejected] == [("contract", 1.0)]
    assert any(s.name == "credit_scoring_request_duration_seconds_bucket" for s in samples)
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_deployment_is_monitored_through_its_subscription(workspace):
    subscription = get_subscription(workspace.deployment.deployment_id, engine=workspace.engine)
    monitor = monitor_for(subscription.subscription_id, engine=workspace.engine, work=workspace.work)
    assert monitor.deployment == workspace.deployment and monitor.model is not None


def test_the_command_lines_create_list_and_monitor_a_subscription(biased, workspace, capsys, tmp_path):
    from utils import subscriptions
    from utils.monitoring.cli import main as monitoring_main
    from utils.subscriptions import cli as subscriptions_cli

    work = str(workspace.work)
    schema = tmp_path / "schema.json"
    schema.write_text('{"income": "number", "region": {"type": "string", "protected": {"monitored": ["north"]}}}')
    reference = tmp_path / "reference.csv"
    workspace.train.to_csv(reference, index=False)
    created = ["create", "--name", "cli-engine", "--engine", "custom", "--reference", str(reference)]
    assert subscriptions_cli.main(["--work-dir", work, *created]) == 0
    (made,) = [s for s in subscriptions.list_subscriptions(engine=workspace.engine) if s.name == "cli-engine"]
    assert made.reference == f"subscriptions/{made.subscription_id}.csv"
    declared = ["--schema", str(schema), "--label", "y", "--classes", "good,bad"]
    create_declared = ["--work-dir", work, "create", "--name", "cli-declared", "--engine", "kserve", *declared]
    assert subscriptions_cli.main([*create_declared, "--protected", "income"]) == 2
    assert "protected attributes are the columns it declares protected" in capsys.readouterr().err
    assert subscriptions_cli.main(create_declared) == 0
    (made,) = [s for s in subscriptions.list_subscriptions(engine=workspace.engine) if s.name == "cli-declared"]
    assert made.protected_attributes == ("region",)
    assert made.groups == {"region": {"monitored": ["north"], "reference": {"other_than": ["north"]}}}
    assert subscriptions_cli.main(["--work-dir", work, "create", "--name", "cli-engine", "--engine", "custom"]) == 2
    assert "a subscription named 'cli-engine' exists" in capsys.readouterr().err
    assert subscriptions_cli.main(["--work-dir", work, "list"]) == 0
    listed = capsys.readouterr().out
    assert "cli-engine  custom" in listed and "cli-declared  kserve" in listed
    assert monitoring_main(["--subscription-id", biased, "--work-dir", work, "--fail-on-alert"]) == 1
    printed = capsys.readouterr().out
    assert "ALERT fairness.disparate_impact [Sex]" in printed and "report: " in printed
    report = printed.split("report: ")[1].strip()
    shown = open(report).read()
    assert "Performance: requests, latency, rejections" in shown and "latency_p95_seconds" in shown
    assert "Rejected requests and rows by reason" in shown


def test_reference_data_are_replaced_as_checked_csv(client, workspace):
    sub = _subscribe(client, "reference-engine")
    url = f"/ml/v4/subscriptions/{sub['subscription_id']}/reference"
    csv = workspace.train.to_csv(index=False).encode()
    answer = client.put(url, content=csv, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["reference"] == f"subscriptions/{sub['subscription_id']}.csv"
    stored = pd.read_csv(workspace.work / answer.json()["reference"])
    assert len(stored) == len(workspace.train)
    for body, problem in (
        (workspace.train.drop(columns="Age").to_csv(index=False).encode(), "lack the column(s) Age"),
        (workspace.train.assign(Age=12).to_csv(index=False).encode(), "breaks the credit contract"),
        (workspace.train.iloc[:5].to_csv(index=False).encode(), "at least 50"),
        (b"", "no CSV text"),
    ):
        refused = client.put(url, content=body, headers={"Content-Type": "text/csv"})
        assert refused.status_code == 400 and problem in refused.json()["error"], refused.text
    assert (
        client.get(f"/ml/v4/subscriptions/{sub['subscription_id']}").json()["reference"] == answer.json()["reference"]
    )
    own = f"/ml/v4/subscriptions/{workspace.deployment.deployment_id}/reference"
    assert client.put(own, content=csv).status_code == 400
    assert client.put("/ml/v4/subscriptions/nope/reference", content=csv).status_code == 404


def _request_log(seconds: list[float], reasons: list[str | None], rows: list[int]) -> pd.DataFrame:
    start = pd.Timestamp("2026-03-02", tz="UTC")
    return pd.DataFrame(
        {
            "endpoint": "payload",
            "received_at": [start + pd.Timedelta(seconds=i) for i in range(len(seconds))],
            "seconds": seconds,
            "status": [200 if r is None else 400 for r in reasons],
            "records": [0 if r else n for r, n in zip(reasons, rows, strict=True)],
            "rejected_rows": [n if r else 0 for r, n in zip(reasons, rows, strict=True)],
            "reason": reasons,
        }
    )


def test_the_performance_monitor_judges_latency_and_rejections_from_the_request_log():
    from utils.monitoring.performance import PerformanceMonitor
    from utils.monitoring.results import Thresholds

    slow = [0.1] * 18 + [3.0, 3.0, 3.0]
    log = _request_log(slow + [0.01] * 4, [None] * 21 + ["contract", "contract", "malformed", "too_large"], [10] * 25)
    result = PerformanceMonitor(Thresholds()).run(log)
    rows = {(m["metric"], m["subject"]): m for m in result.measurements}
    assert rows[("requests", None)]["value"] == 25 and rows[("records", None)]["value"] == 210
    assert rows[("latency_p50_seconds", None)]["value"] == pytest.approx(0.1)
    assert rows[("latency_p95_seconds", None)]["breached"] is True  # 3 of 21 accepted requests took 3 s
    assert rows[("rejected_request_share", None)]["value"] == pytest.approx(4 / 25)
    assert rows[("rejected_request_share", None)]["breached"] is True
    assert rows[("rejected_rows", "contract")]["value"] == 20 and rows[("rejected_rows", "malformed")]["value"] == 10
    assert rows[("records_per_second", None)]["value"] == pytest.approx(210 / (24 + 0.01))
    assert result.status is None and list(result.details["rejections"].index) == ["contract", "malformed", "too_large"]
    few = PerformanceMonitor(Thresholds()).run(log.iloc[:5])
    assert few.status == "5 requests, 20 needed"
    assert all(m["breached"] is None for m in few.measurements)
    empty = PerformanceMonitor(Thresholds()).run(log.iloc[:0])
    assert empty.status == "0 requests, 20 needed" and {m["metric"] for m in empty.measurements} >= {"requests"}


def test_the_request_log_is_written_in_batches_and_when_it_closes(tmp_path):
    from utils.serving.metrics import RequestLog

    engine = datamart.connect(f"sqlite:///{tmp_path / 'datamart.sqlite'}")
    log = RequestLog(engine)
    row = {"deployment_id": "d", "endpoint": "payload", "received_at": pd.Timestamp("2026-03-02", tz="UTC")}
    for index in range(3):
        log.add({**row, "seconds": 0.01, "status": 200, "records": index, "rejected_rows": 0, "reason": None})
    deadline = time.monotonic() + 10
    while len(read_requests(engine, "d")) < 3:  # the writer thread, a quarter of a second later
        assert time.monotonic() < deadline
        time.sleep(0.05)
    log.add({**row, "seconds": 0.02, "status": 400, "records": 0, "rejected_rows": 2, "reason": "contract"})
    log.close()
    written = read_requests(engine, "d")
    assert list(written["records"]) == [0, 1, 2, 0] and list(written["reason"].fillna("")) == ["", "", "", "contract"]
