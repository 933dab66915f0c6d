"""A model served by another engine, Seldon's MLServer in its own process and environment, monitored here: its
traffic scored through MLServer's V2 endpoint and logged through the payload API, then quality, fairness, drift and
performance on the log (a biased model raises the fairness alert), an explanation through the engine, and
``/metrics`` of a two-worker service against the payload log after a bounded load test."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from utils import datamart
from utils.data import FEATURES, LABEL, generate_credit_data
from utils.datamart.subscriptions import read_requests
from utils.deployment import deploy
from utils.external import log_outcomes, score_and_log, service_client, subscribe
from utils.features import fit_preprocessor
from utils.mlserver import EngineUnavailable, start_mlserver
from utils.monitoring.results import ALL_MONITORS
from utils.monitoring.subscription import explain_logged, monitor_for, remote_model
from utils.scoring import wml_request
from utils.serving import start_server
from utils.subscriptions import get_subscription

pytestmark = pytest.mark.slow

API_KEY = "external-engine-key"
#: The bounded load test: requests, concurrent clients, and the most seconds it may take.
LOAD_REQUESTS, LOAD_CLIENTS, LOAD_SECONDS = 120, 6, 120


def _forest(bias: float):
    """A random forest on 2,000 generated applicants, their labels biased against women by ``bias``."""
    train = generate_credit_data(2000, seed=5, bias=bias)
    model = Pipeline(
        [
            ("preprocess", fit_preprocessor(train)),
            ("classifier", RandomForestClassifier(100, min_samples_leaf=3, random_state=0)),
        ]
    )
    return model.fit(train[list(FEATURES)], train[LABEL])


@pytest.fixture(scope="module")
def engines(workspace):
    """Our service (two workers) and MLServer serving a fair and a biased forest."""
    try:
        mlserver = start_mlserver({"forest": _forest(0.0), "biased-forest": _forest(0.9)}, work=workspace.work)
    except EngineUnavailable as error:
        pytest.fail(str(error))
    server = start_server(
        workers=2,
        work=workspace.work,
        datamart_url=workspace.datamart_url,
        api_key=API_KEY,
        access_log=False,
        timeout=120,
    )
    client = service_client(server.url, API_KEY)
    try:
        yield server, mlserver, client
    finally:
        client.close()
        server.stop()
        mlserver.stop()


def _wait_for_requests(workspace, deployment_id: str, count: int) -> None:
    """Wait until the request log holds ``count`` requests of the deployment (written in batches)."""
    deadline = time.monotonic() + 10
    while len(read_requests(workspace.engine, deployment_id)) < count:
        assert time.monotonic() < deadline, "the request log never held every request"
        time.sleep(0.1)


def _monitored(workspace, engines, model_name: str) -> str:
    """Subscribe MLServer's ``model_name``, send it 400 applicants and log them, with outcomes for half."""
    _, mlserver, client = engines
    created = subscribe(
        client,
        f"mlserver-{model_name}",
        engine="mlserver",
        scoring_url=mlserver.infer_url(model_name),
        prediction_field="predict",
        probability_field="predict_proba",
    )
    subscription = get_subscription(created["subscription_id"], engine=workspace.engine)
    engine = remote_model(subscription)
    engine.prediction_field = "predict"
    traffic = generate_credit_data(400, seed=21)
    logged = score_and_log(client, subscription.subscription_id, engine, traffic, rows_per_request=20)
    assert log_outcomes(client, subscription.subscription_id, traffic.iloc[:200], logged["transaction_id"][:200]) == 200
    _wait_for_requests(workspace, subscription.subscription_id, 400 // 20)
    return subscription.subscription_id


def test_an_mlserver_model_is_monitored_from_its_logged_payload(workspace, engines):
    fair, biased = (_monitored(workspace, engines, name) for name in ("forest", "biased-forest"))
    for subscription_id, fair_expected in ((fair, None), (biased, False)):
        monitor = monitor_for(subscription_id, engine=workspace.engine, work=workspace.work)
        evaluation = monitor.evaluate(monitors=ALL_MONITORS, report=False, store=True)
        status = {(r.monitor, r.metric, r.subject): r.status for r in evaluation.summary().itertuples()}
        for verdict in (
            ("quality", "auc_roc", None),
            ("fairness", "disparate_impact", "Sex"),
            ("drift", "drifted_share", None),
            ("performance", "latency_p95_seconds", None),
            ("performance", "rejected_request_share", None),
        ):
            assert status[verdict] in ("ok", "ALERT"), (subscription_id, verdict)
        assert evaluation.payload_records == 400 and evaluation.feedback_records == 200
        if fair_expected is False:
            assert status[("fairness", "disparate_impact", "Sex")] == "ALERT"
            assert evaluation.gates["fairness_ok"] is False
    explanation = explain_logged(monitor, datamart.read_payload(workspace.engine, biased)["transaction_id"].iloc[0])
    assert explanation.contributions["contribution"].sum() == pytest.approx(explanation.output - explanation.base_value)
    assert np.isfinite(explanation.contributions["contribution"]).all()


def _score(url: str, body: dict) -> int:
    with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        return client.post(url, json=body).status_code


def _metric(text: str, name: str, deployment_id: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels.get("deployment_id") == deployment_id
    )


def test_metrics_of_two_workers_match_the_payload_log_after_a_bounded_load(workspace, engines):
    server, _, client = engines
    target = deploy(
        "credit-risk-v1", name="load-test", space="dev", engine=workspace.engine, registry=workspace.registry
    )
    rows = workspace.test.iloc[:3]
    good, bad = wml_request(rows), wml_request(rows.assign(Age=300))
    url = f"{server.url}/ml/v4/deployments/{target.deployment_id}/predictions"
    bodies = [bad if i % 10 == 0 else good for i in range(LOAD_REQUESTS)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        statuses = list(pool.map(lambda body: _score(url, body), bodies, timeout=LOAD_SECONDS))
    assert time.monotonic() - started < LOAD_SECONDS
    assert statuses.count(200) == 108 and statuses.count(400) == 12
    stored = len(datamart.read_payload(workspace.engine, target.deployment_id))
    assert stored == 108 * 3
    deadline = time.monotonic() + 10
    while True:  # each request's measurement is written just after its answer
        text = client.get("/metrics").text
        if _metric(text, "credit_scoring_requests_total", target.deployment_id) == LOAD_REQUESTS:
            break
        assert time.monotonic() < deadline, "the metrics never counted every request"
        time.sleep(0.2)
    assert _metric(text, "credit_scoring_records_total", target.deployment_id) == stored
    assert _metric(text, "credit_scoring_rejected_rows_total", target.deployment_id) == 12 * 3
    _wait_for_requests(workspace, target.deployment_id, LOAD_REQUESTS)
    monitor = monitor_for(target.deployment_id, engine=workspace.engine, work=workspace.work)
    performance = monitor.evaluate(monitors=("performance",), report=False, store=False).measurements
    value = performance.set_index(["metric", "subject"])["value"]
    assert value[("requests", None)] == LOAD_REQUESTS and value[("records", None)] == stored
    assert value[("rejected_rows", "contract")] == 36
