"""Group commit of payload records: requests that arrive together share one transaction, a failed commit fails
exactly the requests of its group, records keep the order they came in, and closing stores what is queued."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
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


def _held(committer: GroupCommitter, gate: Gate) -> None:
    """Keep the writer busy in the gate with a first group of one row, so that what is submitted next queues."""
    committer.submit(["first"])
    assert gate.entered.wait(WAIT)


def test_requests_queued_during_a_commit_share_the_next_transaction_in_their_order():
    gate = Gate()
    committer = GroupCommitter(gate)
    _held(committer, gate)
    futures = [committer.submit([f"r{i}a", f"r{i}b"]) for i in range(5)]
    gate.open()
    assert [future.result(WAIT) for future in futures] == [2] * 5
    assert gate.groups == [["first"], [f"r{i}{part}" for i in range(5) for part in "ab"]]
    committer.close()


def test_a_group_is_capped_in_rows_but_keeps_every_request_whole():
    gate = Gate()
    committer = GroupCommitter(gate, max_rows=4)
    _held(committer, gate)
    futures = [committer.submit([i] * 3) for i in range(3)]
    gate.open()
    assert [future.result(WAIT) for future in futures] == [3, 3, 3]
    assert gate.groups[1:] == [[0, 0, 0, 1, 1, 1], [2, 2, 2]]
    committer.close()


def test_a_failed_commit_fails_each_request_of_its_group_and_no_other():
    gate = Gate(fail_on={1})
    committer = GroupCommitter(gate)
    _held(committer, gate)
    failing = [committer.submit([i]) for i in range(3)]
    gate.open()
    for future in failing:
        with pytest.raises(RuntimeError, match="commit 1 failed"):
            future.result(WAIT)
    assert committer.commit(["after"]) == 1  # the writer goes on with the next group
    assert gate.groups == [["first"], [0, 1, 2], ["after"]]
    committer.close()


def test_close_stores_what_is_queued_then_refuses_new_records():
    gate = Gate()
    committer = GroupCommitter(gate)
    _held(committer, gate)
    queued = [committer.submit([i]) for i in range(3)]
    closing = threading.Thread(target=committer.close)
    closing.start()
    with pytest.raises(CommitterClosed, match="stopping"):
        for _ in range(1000):  # close() marks the committer closed at once, then waits for the writer
            committer.submit(["late"])
            threading.Event().wait(0.01)
    gate.open()
    closing.join(WAIT)
    assert not closing.is_alive()
    assert [future.result(0) for future in queued] == [1, 1, 1]
    assert [row for group in gate.groups for row in group] == ["first", 0, 1, 2]


def test_a_request_given_up_before_its_commit_is_not_written():
    gate = Gate()
    committer = GroupCommitter(gate)
    _held(committer, gate)
    abandoned, kept = committer.submit(["abandoned"]), committer.submit(["kept"])
    assert abandoned.cancel()
    gate.open()
    assert kept.result(WAIT) == 1
    assert gate.groups == [["first"], ["kept"]]
    committer.close()


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


def test_concurrent_requests_are_stored_once_each_and_a_failed_group_stores_nothing(datamart_url):
    engine = datamart.connect(datamart_url)
    committer = GroupCommitter(functools.partial(datamart.insert_payload, engine))
    requests = [[_record("d1") for _ in range(1 + i % 3)] for i in range(60)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(committer.commit, requests))
    assert counts == [len(rows) for rows in requests]
    stored = datamart.read_payload(engine, "d1")["transaction_id"].tolist()
    assert sorted(stored) == sorted(row["transaction_id"] for rows in requests for row in rows)

    clash = _record("d2")  # a group whose transaction fails (a duplicate id) stores none of its rows
    with pytest.raises(sa.exc.IntegrityError):
        committer.commit([_record("d2"), clash, {**clash}])
    assert datamart.read_payload(engine, "d2").empty
    committer.close()
