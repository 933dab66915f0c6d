"""Alerts that reach people: one notification per alert and recovery, delivered to a local webhook and the log,
retried with back-off and recorded, without holding up monitoring or scoring."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from utils import config, datamart, lifecycle
from utils.data import FEATURES, LABEL
from utils.deployment import deploy
from utils.monitoring import DeploymentMonitor, Thresholds
from utils.monitoring.notifications import Notifier, default_notifications, notifier_for
from utils.receiver import WebhookReceiver
from utils.scoring import wml_request
from utils.serving import ScoringRequest, Service, ServiceSettings, create_app
from utils.serving import service as ops

HOUR = timedelta(hours=1)
START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def receiver():
    with WebhookReceiver(path="/hooks/credit-risk") as served:
        yield served


def _deployment(workspace, name: str, receiver_url: str, **delivery) -> str:
    where = {"engine": workspace.engine, "work": workspace.work}
    deployment = deploy("credit-risk-v1", name=name, space="dev", registry=workspace.registry, **where)
    receivers = [{"type": "webhook", "url": receiver_url}, {"type": "log"}]
    document = {"notifications": {"receivers": receivers, "backoff_seconds": 0.05, **delivery}}
    lifecycle.set_monitor_config(deployment.deployment_id, document, **where)
    return deployment.deployment_id


def _label_hours(workspace, deployment_id: str, hours: int, rows: int = 45) -> None:
    """Labelled feedback of ``rows`` test applicants in each of ``hours`` hours from ``START``."""
    records = []
    for hour in range(hours):
        frame = workspace.test.iloc[hour * rows : (hour + 1) * rows]
        for i, row in enumerate(frame.to_dict("records")):
            records.append(
                {
                    "feedback_id": datamart.new_id(),
                    "deployment_id": deployment_id,
                    "recorded_at": START + hour * HOUR + timedelta(seconds=i),
                    "inputs": {name: row[name] for name in FEATURES},
                    "label": row[LABEL],
                }
            )
    datamart.insert_feedback(workspace.engine, records)


def _monitor(workspace, deployment_id: str, min_auc_roc: float) -> DeploymentMonitor:
    thresholds = Thresholds(min_auc_roc=min_auc_roc, min_feedback=40)
    return DeploymentMonitor(deployment_id, thresholds=thresholds, engine=workspace.engine, work=workspace.work)


def _quality(monitor: DeploymentMonitor, hour: int):
    return monitor.evaluate(START + hour * HOUR, START + (hour + 1) * HOUR, monitors=("quality",))


def _delivered(workspace) -> None:
    log = config.layout(workspace.work).logs / "alerts.log"
    assert notifier_for(workspace.engine, log).drain(60), "notifications still being delivered after 60 s"


@pytest.mark.slow
def test_each_alert_and_recovery_reaches_the_webhook_and_the_log_once(workspace, receiver):
    deployment_id = _deployment(workspace, "notified", receiver.url)
    _label_hours(workspace, deployment_id, 3)
    strict, relaxed = _monitor(workspace, deployment_id, 0.999), _monitor(workspace, deployment_id, 0.5)
    first = _quality(strict, 0)  # the alert begins
    assert len(first.alerts) == 1
    _quality(strict, 1)  # still alerting: nothing new
    _quality(strict, 0)  # the first window again: already notified
    _quality(relaxed, 2)  # recovered
    _delivered(workspace)

    assert [body["kind"] for body in receiver.bodies] == ["alert", "recovery"]
    alert = receiver.bodies[0]
    assert alert["deployment"] == {"id": deployment_id, "name": "notified", "space": "dev"}
    assert (alert["monitor"], alert["metric"], alert["threshold"], alert["direction"]) == (
        "quality",
        "auc_roc",
        0.999,
        "below",
    )
    assert alert["value"] == pytest.approx(first.alerts["value"].iloc[0])
    assert alert["window"] == {"start": START.isoformat(), "end": (START + HOUR).isoformat()}
    assert alert["report"] == first.report_path.resolve().as_uri() and first.report_path.is_file()
    rows = datamart.read_notifications(workspace.engine, deployment_id)
    assert [(r["kind"], r["receiver"].split()[0], r["status"], r["attempts"]) for r in rows] == [
        ("alert", "webhook", "sent", 1),
        ("alert", "log", "sent", 1),
        ("recovery", "webhook", "sent", 1),
        ("recovery", "log", "sent", 1),
    ]
    lines = (config.layout(workspace.work).logs / "alerts.log").read_text().splitlines()
    mine = [line for line in lines if " of notified (dev)" in line]
    assert [line.split()[0] for line in mine] == ["ALERT", "RECOVERED"]


@pytest.mark.slow
def test_a_failing_receiver_is_retried_with_back_off_and_recorded(workspace, receiver):
    deployment_id = _deployment(workspace, "retried", receiver.url, retries=3)
    _label_hours(workspace, deployment_id, 2)
    receiver.fail_first = 2  # two answers 500, then 204
    _quality(_monitor(workspace, deployment_id, 0.999), 0)
    _delivered(workspace)
    [webhook] = [r for r in datamart.read_notifications(workspace.engine, deployment_id) if r["receiver"] != "log"]
    assert (webhook["status"], webhook["attempts"]) == ("sent", 3)
    assert len(receiver.bodies) == 3 and receiver.bodies[0] == receiver.bodies[2]

    receiver.fail_first = 100  # never answers well: three retries, then failed
    _quality(_monitor(workspace, deployment_id, 0.5), 1)  # a recovery to deliver
    _delivered(workspace)
    failed = [r for r in datamart.read_notifications(workspace.engine, deployment_id) if r["kind"] == "recovery"]
    by_receiver = {r["receiver"].split()[0]: r for r in failed}
    assert (by_receiver["webhook"]["status"], by_receiver["webhook"]["attempts"]) == ("failed", 4)
    assert "500" in by_receiver["webhook"]["last_error"]
    assert by_receiver["log"]["status"] == "sent"  # one receiver's failure does not hold up another


def test_a_held_receiver_blocks_neither_monitoring_nor_scoring(workspace, receiver):
    deployment_id = _deployment(workspace, "held", receiver.url)
    _label_hours(workspace, deployment_id, 1)
    service = Service(ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key="k"))
    request = ScoringRequest(**wml_request(workspace.test.head(5)))

    def latencies(count: int) -> list[float]:
        times = []
        for _ in range(count):
            began = time.perf_counter()
            ops.predict(service, deployment_id, request)
            times.append(time.perf_counter() - began)
        return times

    before = statistics.median(latencies(30))
    receiver.hold()  # the webhook now holds every request until released
    _quality(_monitor(workspace, deployment_id, 0.999), 0)
    rows = datamart.read_notifications(workspace.engine, deployment_id)
    webhook = [r for r in rows if r["receiver"] != "log"]
    assert [r["status"] for r in webhook] == ["pending"]  # monitoring returned while the receiver holds
    during = statistics.median(latencies(30))
    assert during < 3 * before + 0.05, f"scoring took {during:.4f} s per request while notifying, {before:.4f} s before"
    receiver.release()
    _delivered(workspace)
    assert [r["status"] for r in datamart.read_notifications(workspace.engine, deployment_id)] == ["sent", "sent"]


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"receivers": [{"type": "webhook", "url": "ftp://127.0.0.1/x"}]}, "notifications.receivers[0].url"),
        ({"receivers": [{"type": "pager"}]}, "notifications.receivers[0]"),
        ({"receivers": [{"type": "log", "url": "http://127.0.0.1"}]}, "'url' in notifications.receivers[0]"),
        ({"retries": -1}, "notifications.retries"),
        ({"backoff_seconds": 0}, "notifications.backoff_seconds"),
        ({"e-mail": "x"}, "notifications.e-mail"),
    ],
)
def test_a_bad_notifications_section_is_refused_naming_the_key(workspace, section, named):
    where = {"engine": workspace.engine, "work": workspace.work}
    with pytest.raises(lifecycle.LifecycleError, match=named.replace("[", r"\[").replace("]", r"\]")):
        lifecycle.set_monitor_config(workspace.deployment.deployment_id, {"notifications": section}, **where)


def test_the_rest_api_stores_receivers_and_a_schedule_and_names_a_bad_key(workspace):
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key="k")
    path = f"/ml/v4/deployments/{workspace.deployment.deployment_id}/monitor_config"
    body = {
        "schedule": {"every_minutes": {"drift": 360}},
        "notifications": {"receivers": [{"type": "webhook", "url": "http://127.0.0.1:9/alerts"}]},
    }
    with TestClient(create_app(settings), headers={"Authorization": "Bearer k"}) as client:
        stored = client.put(path, json=body)
        assert stored.status_code == 200, stored.text
        document = client.get(path).json()["document"]
        refused = client.put(path, json={"notifications": {"receivers": [{"type": "webhook", "url": "mailto:x"}]}})
    assert document["schedule"]["every_minutes"] == {"quality": 60, "fairness": 60, "drift": 360, "data_quality": 60}
    assert document["notifications"]["receivers"] == body["notifications"]["receivers"]
    assert refused.status_code == 400 and "notifications.receivers[0].url" in refused.json()["error"]


def test_the_delivery_thread_outlives_a_data_mart_that_fails_to_record(workspace, tmp_path, monkeypatch):
    recorded, real = [], datamart.update_notification

    def flaky(engine, notification_id, **state):
        if not recorded:
            recorded.append(None)
            raise OSError("disk full")
        recorded.append((notification_id, state["status"]))
        real(engine, notification_id, **state)

    monkeypatch.setattr(datamart, "update_notification", flaky)
    notifier = Notifier(workspace.engine, tmp_path / "alerts.log")
    rows = [{"notification_id": name, "receiver": "log", "attempts": 0, "payload": {"text": name}} for name in "ab"]
    notifier.submit(rows[:1], default_notifications())
    assert notifier.drain(30)
    notifier.submit(rows[1:], default_notifications())
    assert notifier.drain(30)
    assert (tmp_path / "alerts.log").read_text().split() == ["a", "b"]
    assert recorded[1:] == [("b", "sent")]
