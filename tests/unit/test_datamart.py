"""The data mart: engine settings, the tables, one transaction per insert, reading back by deployment and time."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from utils import datamart
from utils.datamart.records import ROWS_PER_STATEMENT, in_statements

pytestmark = pytest.mark.datamarts


@pytest.fixture
def sqlite_url(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)
    return f"sqlite:///{tmp_path / 'mart' / 'datamart.sqlite'}"


def _payload(deployment_id: str, at: datetime, age: int = 30, **extra) -> dict:
    return {
        "transaction_id": datamart.new_id(),
        "deployment_id": deployment_id,
        "model_id": "credit-risk-v1",
        "scored_at": at,
        "inputs": {"Sex": "female", "Age": age},
        "prediction": "No Risk",
        "probability_no_risk": 0.75,
        "probability_risk": 0.25,
        **extra,
    }


def test_url_from_setting_or_work_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)
    assert datamart.datamart_url(tmp_path) == f"sqlite:///{tmp_path / 'datamart.sqlite'}"
    monkeypatch.setenv("CREDIT_WORKDIR", str(tmp_path / "w"))
    assert datamart.datamart_url() == f"sqlite:///{tmp_path / 'w' / 'datamart.sqlite'}"
    monkeypatch.setenv(datamart.DATAMART_URL_ENV, "postgresql+psycopg://mart@db/credit")
    assert datamart.datamart_url(tmp_path) == "postgresql+psycopg://mart@db/credit"


def test_connect_creates_the_tables_in_wal_mode(sqlite_url):
    engine = datamart.connect(sqlite_url)
    assert datamart.connect(sqlite_url) is engine
    assert {"deployments", "payload_records", "feedback_records"} <= set(sa.inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert datamart.migrations.upgrade(engine) == datamart.migrations.head()  # again: nothing to do, no error


def test_payload_round_trip_with_inputs_as_columns(datamart_url):
    engine = datamart.connect(datamart_url)
    now = datetime.now(UTC)
    stored = [_payload("d1", now, 25), _payload("d1", now, 40)]
    assert datamart.insert_payload(engine, stored) == 2
    frame = datamart.read_payload(engine, "d1")
    assert list(frame.columns) == [
        "transaction_id",
        "deployment_id",
        "model_id",
        "scored_at",
        "Sex",
        "Age",
        "prediction",
        "probability_no_risk",
        "probability_risk",
        "out_of_range",
    ]
    assert frame["transaction_id"].tolist() == [r["transaction_id"] for r in stored]
    assert frame["Age"].tolist() == [25, 40]
    assert str(frame["scored_at"].dt.tz) == "UTC"
    assert abs(frame["scored_at"].iloc[0] - pd.Timestamp(now)) < pd.Timedelta(milliseconds=1)


def test_read_by_deployment_and_time_window(datamart_url):
    engine = datamart.connect(datamart_url)
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    datamart.insert_payload(engine, [_payload("d1", start + timedelta(minutes=m), age=20 + m) for m in range(5)])
    datamart.insert_payload(engine, [_payload("d2", start)])
    window = datamart.read_payload(engine, "d1", start + timedelta(minutes=1), start + timedelta(minutes=3))
    assert window["Age"].tolist() == [21, 22]  # start inclusive, end exclusive
    naive = datamart.read_payload(engine, "d1", start=datetime(2026, 1, 1, 12, 4))  # naive means UTC
    assert naive["Age"].tolist() == [24]
    assert len(datamart.read_payload(engine)) == 6
    empty = datamart.read_payload(engine, "nobody")
    assert empty.empty and "transaction_id" in empty.columns


def test_an_insert_is_one_transaction(datamart_url):
    engine = datamart.connect(datamart_url)
    first = _payload("d1", datetime.now(UTC))
    datamart.insert_payload(engine, [first])
    with pytest.raises(sa.exc.IntegrityError):
        datamart.insert_payload(engine, [_payload("d1", datetime.now(UTC)), first])  # duplicate id: all refused
    assert len(datamart.read_payload(engine, "d1")) == 1
    assert datamart.insert_payload(engine, []) == 0


def test_feedback_round_trip(datamart_url):
    engine = datamart.connect(datamart_url)
    at = datetime.now(UTC)
    datamart.insert_feedback(
        engine,
        [
            {
                "feedback_id": datamart.new_id(),
                "deployment_id": "d1",
                "recorded_at": at,
                "inputs": {"Age": a},
                "label": lab,
            }
            for a, lab in ((30, "Risk"), (50, "No Risk"))
        ],
    )
    frame = datamart.read_feedback(engine, "d1", start=at - timedelta(seconds=1))
    assert frame[["Age", "label"]].values.tolist() == [[30, "Risk"], [50, "No Risk"]]
    assert list(frame.columns[:3]) == ["feedback_id", "deployment_id", "recorded_at"]


def test_new_ids_are_unique_time_ordered_uuids():
    ids = [datamart.new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 7 for i in ids)  # the standard spelling
    assert all(uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    later = datamart.new_id()
    assert later[:13] >= ids[0][:13]  # the millisecond timestamp comes first


_WRITER = """
import sys
from datetime import UTC, datetime
from utils import datamart
from utils.datamart.records import ROWS_PER_STATEMENT, in_statements
engine = datamart.connect(sys.argv[1])
for n in range(int(sys.argv[3])):
    datamart.insert_payload(engine, [{
        "transaction_id": datamart.new_id(), "deployment_id": sys.argv[2], "model_id": "m",
        "scored_at": datetime.now(UTC), "inputs": {"n": n}, "prediction": "Risk",
        "probability_no_risk": 0.1, "probability_risk": 0.9}])
"""


@pytest.mark.slow  # starts processes
def test_concurrent_writer_processes_lose_nothing(datamart_url):
    datamart.connect(datamart_url)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, datamart_url, "d1", "150"]) for _ in range(4)]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]
    frame = datamart.read_payload(datamart.connect(datamart_url), "d1")
    assert len(frame) == 600 and frame["transaction_id"].is_unique


def test_the_readiness_check_fails_on_a_data_mart_that_can_be_read_but_not_written(sqlite_url):
    path = sa.make_url(sqlite_url).database
    datamart.connect(sqlite_url).dispose()
    read_only = datamart.connect(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert read_only.dialect.name == "sqlite" and len(datamart.read_deployments(read_only)) == 0
    with pytest.raises(datamart.DatamartUnavailable, match="cannot be written"):
        datamart.check(read_only)
    read_only.dispose()


def test_the_readiness_check_does_not_wait_for_another_writers_lock(sqlite_url):
    engine = datamart.connect(sqlite_url)
    holder = sqlite3.connect(sa.make_url(sqlite_url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        started = time.monotonic()
        datamart.check(engine)  # writable, only busy: no error, and no wait for the busy timeout
        assert time.monotonic() - started < datamart.SQLITE_BUSY_TIMEOUT / 2
    finally:
        holder.rollback()
        holder.close()
    datamart.upsert_deployment(engine, "credit-risk", "dev", "credit-risk-v1", "ready")  # the normal timeout again
    assert len(datamart.read_deployments(engine)) == 1


@pytest.mark.parametrize("count", [1, 5, 200, 201, 437])
def test_rows_inserted_in_statements_of_many_rows_arrive_whole_and_in_order(count):
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE numbers (n INTEGER, square INTEGER)")
    rows = [(n, n * n) for n in range(count)]
    statements = list(in_statements(connection, "INSERT INTO numbers (n, square) VALUES (?, ?)", rows))
    sizes = [len(flat) // 2 for _, flat in statements]
    assert sum(sizes) == count
    assert all(size == ROWS_PER_STATEMENT or size & (size - 1) == 0 for size in sizes)  # a few shapes, all cached
    for statement, flat in statements:
        connection.execute(statement, flat)
    assert connection.execute("SELECT n, square FROM numbers ORDER BY rowid").fetchall() == rows
