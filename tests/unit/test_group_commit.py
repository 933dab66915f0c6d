"""Group commit of payload records: requests that arrive together share one transaction, a failed commit fails
exactly the requests of its group, records keep the order they came in, and closing waits for what is queued."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from utils import datamart
from utils.serving.group_commit import CommitterClosed, GroupCommitter

pytestmark = pytest.mark.datamarts

WAIT = 30.0  # seconds: generous, for a loaded machine


class Gate:
    """A ``write`` that records each group it is given and holds the first one until :meth:`open`."""

    def __init__(self, fail_on: set[int] = frozenset()):
        self.groups: list[list] = []
        self.entered = threading.Event()
        self._open = threading.Event()
        self._fail_on = fail_on  # the numbers (from 0) of the groups whose commit fails

    def open(self) -> None:
        self._open.set()

    def __call__(self, rows: list) -> int:
        number = len(self.groups)
        self.groups.append(list(rows))
        self.entered.set()
        assert self._open.wait(WAIT)
        if number in self._fail_on:
            raise RuntimeError(f"commit {number} failed")
        return len(rows)


@pytest.fixture
def pool():
    with ThreadPoolExecutor(max_workers=16) as threads:  # the server's worker threads, one per request
        yield threads


def _wait_until(condition) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _send(pool, committer: GroupCommitter, rows: list) -> Future:
    """``committer.commit(rows)`` in a thread of ``pool``, once the previous requests are queued (so that they
    queue in the order sent)."""
    before = committer.unanswered
    sent = pool.submit(committer.commit, rows)
    _wait_until(lambda: committer.unanswered > before or sent.done())
    return sent


def _held(pool, committer: GroupCommitter, gate: Gate) -> Future:
    """Keep the writer busy in the gate with a first group of one row, so that what is sent next queues."""
    first = _send(pool, committer, ["first"])
    assert gate.entered.wait(WAIT)
    return first


def test_requests_queued_during_a_commit_share_the_next_transaction_in_their_order(pool):
    gate, answered = Gate(), []
    committer = GroupCommitter(gate, on_commit=answered.append)
    first = _held(pool, committer, gate)
    sent = [_send(pool, committer, [f"r{i}a", f"r{i}b"]) for i in range(5)]
    gate.open()
    assert first.result(WAIT) == 1 and [request.result(WAIT) for request in sent] == [2] * 5
    assert gate.groups == [["first"], [f"r{i}{part}" for i in range(5) for part in "ab"]]
    assert committer.commit(["alone"]) == 1 and gate.groups[-1] == ["alone"]  # a lone request commits at once
    assert answered == [1, 5, 1]  # requests per commit


def test_a_group_is_capped_in_rows_but_keeps_every_request_whole(pool):
    gate = Gate()
    committer = GroupCommitter(gate, max_rows=4)
    _held(pool, committer, gate)
    sent = [_send(pool, committer, [i] * 3) for i in range(3)]
    gate.open()
    assert [request.result(WAIT) for request in sent] == [3, 3, 3]
    assert gate.groups[1:] == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    assert committer.commit(list(range(9))) == 9 and gate.groups[-1] == list(range(9))  # one request, one group


def test_a_failed_commit_fails_each_request_of_its_group_and_no_other(pool):
    gate = Gate(fail_on={1})
    committer = GroupCommitter(gate)
    first = _held(pool, committer, gate)
    failing = [_send(pool, committer, [i]) for i in range(3)]
    gate.open()
    assert first.result(WAIT) == 1
    for request in failing:
        with pytest.raises(RuntimeError, match="commit 1 failed"):
            request.result(WAIT)
    assert committer.commit(["after"]) == 1  # the next group is written as usual
    assert gate.groups == [["first"], [0, 1, 2], ["after"]]
    assert committer.unanswered == 0


def test_close_waits_for_what_is_queued_then_refuses_new_records(pool):
    gate = Gate()
    committer = GroupCommitter(gate)
    first = _held(pool, committer, gate)
    queued = [_send(pool, committer, [i]) for i in range(3)]
    closing = pool.submit(committer.close)
    _wait_until(lambda: committer._closed)
    with pytest.raises(CommitterClosed, match="stopping"):
        committer.commit(["late"])
    assert not closing.done()  # close() waits for the queued records
    gate.open()
    assert closing.result(WAIT) is True
    assert [request.result(WAIT) for request in [first, *queued]] == [1, 1, 1, 1]
    assert [row for group in gate.groups for row in group] == ["first", 0, 1, 2]


def _record(deployment_id: str, transaction_id: str | None = None) -> dict:
    return {
        "transaction_id": transaction_id or datamart.new_id(),
        "deployment_id": deployment_id,
        "model_id": "credit-risk-v1",
        "scored_at": datetime.now(UTC),
        "inputs": {"Age": 30},
        "prediction": "No Risk",
        "probability_no_risk": 0.75,
        "probability_risk": 0.25,
    }


def test_concurrent_requests_are_stored_once_each_and_a_failed_group_stores_nothing(datamart_url, pool):
    engine = datamart.connect(datamart_url)
    committer = GroupCommitter(functools.partial(datamart.insert_payload, engine))
    requests = [[_record("d1") for _ in range(1 + i % 3)] for i in range(60)]
    counts = list(pool.map(committer.commit, requests))
    assert counts == [len(rows) for rows in requests]
    stored = datamart.read_payload(engine, "d1")["transaction_id"].tolist()
    assert sorted(stored) == sorted(row["transaction_id"] for rows in requests for row in rows)

    clash = _record("d2")  # a group whose transaction fails (a duplicate id) stores none of its rows
    with pytest.raises(sa.exc.IntegrityError):
        committer.commit([_record("d2"), clash, {**clash}])
    assert datamart.read_payload(engine, "d2").empty


def test_a_sqlite_writer_waits_for_the_writers_turn_of_another_and_then_stores(tmp_path, pool):
    engine = datamart.connect(f"sqlite:///{tmp_path / 'datamart.db'}")
    with datamart.writers_in_turn(engine):  # as another process's commit would hold it
        waiting = pool.submit(datamart.insert_payload, engine, [_record("d1")])
        time.sleep(0.3)
        assert not waiting.done()
    assert waiting.result(timeout=10) == 1
    assert len(datamart.read_payload(engine, "d1")) == 1


def test_a_commit_that_must_not_wait_stores_nothing_while_another_writer_holds_the_data_mart(datamart_url):
    engine = datamart.connect(datamart_url)
    committer = GroupCommitter(
        functools.partial(datamart.insert_payload, engine),
        write_now=functools.partial(datamart.insert_payload_now, engine),
    )
    if engine.dialect.name != "sqlite":  # a PostgreSQL commit waits for the server's disk: never on the event loop
        assert not committer.commit_now([_record("now")]) and datamart.read_payload(engine, "now").empty
        return
    assert committer.commit_now([_record("now")])
    with datamart.writers_in_turn(engine):  # another writer's turn (of a thread here; of a process alike)
        assert not committer.commit_now([_record("now")])
    locker = sqlite3.connect(datamart.engine.sqlite_file(engine), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # SQLite's lock held without the turn, as a batch job's chunk holds it
    started = time.monotonic()
    assert not committer.commit_now([_record("now")])
    assert time.monotonic() - started < 5  # failed at once: its busy timeout is zero, not 30 s
    locker.rollback()
    assert committer.commit_now([_record("now")])
    assert len(datamart.read_payload(engine, "now")) == 2
