"""The data mart on a real PostgreSQL server: migrations, and every kind of record written and read back.

Runs where ``$CREDIT_TEST_POSTGRES_URL`` names a server on which it may create databases (``.ci/run`` starts
Debian's PostgreSQL and sets it); each test gets a database of its own,
dropped afterwards (the `postgres_url` fixture).
The data mart tests of `test_datamart.py` run here too, in their PostgreSQL pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from utils import datamart
from utils.data import FEATURES, generate_credit_data
from utils.datamart import migrations, schema

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def _payload(deployment_id: str, count: int) -> list[dict]:
    frame = generate_credit_data(count, 11)
    return [
        {
            "transaction_id": datamart.new_id(),
            "deployment_id": deployment_id,
            "model_id": "credit-risk-v1",
            "scored_at": T0 + timedelta(minutes=i),
            "inputs": {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in FEATURES},
            "prediction": "No Risk",
            "probability_no_risk": 0.7,
            "probability_risk": 0.3,
        }
        for i, (_, row) in enumerate(frame.iterrows())
    ]


def test_a_new_postgres_data_mart_is_migrated_to_the_newest_revision(postgres_url):
    engine = datamart.connect(postgres_url)
    assert migrations.current(engine) == migrations.head()
    assert set(schema.metadata.tables) <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_a_postgres_data_mart_made_before_migrations_keeps_its_records(postgres_url):
    old = sa.create_engine(postgres_url)
    with old.begin() as connection:  # the first revision's tables, as the code made them before migrations
        command.upgrade(migrations._config(connection), migrations.FIRST_REVISION)
        connection.execute(sa.text("DROP TABLE alembic_version"))
        connection.execute(schema.payload_records.insert(), _payload("d1", 3))  # only the first revision's columns
    old.dispose()
    engine = datamart.connect(postgres_url)
    assert migrations.current(engine) == migrations.head()
    assert len(datamart.read_payload(engine, "d1")) == 3
    engine.dispose()


def test_notifications_and_scheduled_windows_on_postgres(postgres_url):
    """A notification is stored once per dedupe key; a scheduled window is stored with its measurements once."""
    engine = datamart.connect(postgres_url)
    row = {
        "notification_id": datamart.new_id(),
        "dedupe_key": "k" * 64,
        "deployment_id": "d1",
        "evaluation_id": "e1",
        "kind": "alert",
        "monitor": "drift",
        "metric": "drifted_share",
        "subject": None,
        "receiver": "log",
        "payload": {"text": "ALERT"},
        "status": "pending",
        "attempts": 0,
    }
    assert datamart.insert_notification(engine, row)
    assert not datamart.insert_notification(engine, {**row, "notification_id": datamart.new_id()})
    datamart.update_notification(engine, row["notification_id"], status="failed", attempts=3, last_error="HTTP 500")
    [stored] = datamart.read_notifications(engine, "d1")
    assert (stored["status"], stored["attempts"], stored["payload"]) == ("failed", 3, {"text": "ALERT"})

    window = {"deployment_id": "d1", "window_start": T0, "window_end": T0 + timedelta(hours=1)}
    run = {**window, "monitor": "quality", "evaluation_id": "e1", "evaluated_at": T0 + timedelta(hours=2)}
    measurement = {**window, "evaluation_id": "e1", "monitor": "quality", "metric": "auc_roc", "value": 0.7}
    measurement |= {"threshold": 0.8, "breached": True, "records": 120, "evaluated_at": run["evaluated_at"]}
    assert datamart.store_scheduled_window(engine, [run], [measurement]) == 1
    with pytest.raises(datamart.WindowAlreadyRan):
        datamart.store_scheduled_window(engine, [{**run, "evaluation_id": "e2"}], [measurement])
    assert len(datamart.read_measurements(engine, "d1")) == 1
    assert datamart.read_monitor_runs(engine, "d1")["evaluation_id"].tolist() == ["e1"]
    verdicts = datamart.read_verdicts(engine, "d1", ["quality"], ended_after=T0, ended_by=T0 + timedelta(hours=1))
    assert verdicts[["metric", "breached"]].values.tolist() == [["auc_roc", True]]


def test_records_round_trip_on_postgres(postgres_url):
    engine = datamart.connect(postgres_url)
    deployment = datamart.upsert_deployment(engine, "credit-risk", "dev", "credit-risk-v1", "ready")
    records = _payload(deployment["deployment_id"], 40)
    datamart.insert_payload(engine, records)
    window = datamart.read_window(engine, deployment["deployment_id"], T0, T0 + timedelta(minutes=30))
    assert len(window) == 30
    assert window["LoanAmount"].tolist() == [r["inputs"]["LoanAmount"] for r in records[:30]]
    assert str(window["CheckingStatus"].dtype) == "category"
    assert datamart.read_transaction(engine, records[5]["transaction_id"])["Age"] == records[5]["inputs"]["Age"]
    replaced = datamart.upsert_deployment(engine, "credit-risk", "dev", "credit-risk-v2", "ready")
    assert replaced["deployment_id"] == deployment["deployment_id"]
    assert [d["model_id"] for d in datamart.read_deployments(engine)] == ["credit-risk-v2"]
    engine.dispose()


def test_the_newest_evaluations_measurements_on_postgres(postgres_url):
    engine = datamart.connect(postgres_url)
    measured = [
        {"evaluation_id": evaluation, "deployment_id": "d-1", "monitor": "quality", "metric": "auc_roc"}
        | {"value": value, "records": 100, "evaluated_at": T0 + timedelta(hours=hours)}
        for evaluation, value, hours in (("older", 0.8, 1), ("newer", 0.7, 2))
    ]
    datamart.insert_measurements(engine, measured)
    assert [(m["evaluation_id"], m["value"]) for m in datamart.read_latest_measurements(engine, "d-1")] == [
        ("newer", 0.7)
    ]
    assert datamart.read_latest_measurements(engine, "d-1", since=T0 + timedelta(hours=3)) == []


def test_the_readiness_check_fails_on_a_read_only_postgres_database(postgres_url):
    datamart.connect(postgres_url).dispose()
    name = sa.make_url(postgres_url).database
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # as a hot standby, or a database an operator made read-only, answers
        connection.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    admin.dispose()
    engine = datamart.connect(postgres_url)
    assert datamart.read_deployments(engine) == []
    with pytest.raises(datamart.DatamartUnavailable, match="cannot be written"):
        datamart.check(engine)
    engine.dispose()
