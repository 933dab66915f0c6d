"""The real server while its data mart misbehaves: a write lock held by another process must not stall health, nor
scoring: its records go to the payload journal, and are in the data mart once the lock is released."""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import pytest

from utils import datamart
from utils.scoring import wml_request
from utils.serving import start_server

pytestmark = pytest.mark.slow

HOLD_SECONDS = 4.0


@pytest.fixture(scope="module")
def server(workspace):
    with start_server(
        workers=1, work=workspace.work, datamart_url=workspace.datamart_url, access_log=False, timeout=120
    ) as server:
        yield server


def _timed_get(url: str) -> tuple[float, int]:
    started = time.monotonic()
    response = httpx.get(url, timeout=30)
    return time.monotonic() - started, response.status_code


def test_health_and_scoring_answer_at_once_while_another_process_holds_the_write_lock(workspace, server):
    path = workspace.engine.url.database
    deployment_id = workspace.deployment.deployment_id
    before = len(datamart.read_payload(workspace.engine, deployment_id))
    scored: list[httpx.Response] = []

    def score() -> None:
        scored.append(
            httpx.post(
                f"{server.url}/ml/v4/deployments/{deployment_id}/predictions",
                json=wml_request(workspace.test.head(1)),
                timeout=60,
            )
        )

    holder = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process's long transaction holds it
    release = threading.Timer(HOLD_SECONDS, holder.rollback)  # on time even if a request below hangs
    release.start()
    try:
        client = threading.Thread(target=score)
        client.start()
        time.sleep(0.5)
        answered = not client.is_alive()  # its records journaled: no wait for the lock
        live = [_timed_get(f"{server.url}/v2/health/live") for _ in range(3)]
        ready = _timed_get(f"{server.url}/v2/health/ready")
        release.join()
    finally:
        release.cancel()
        holder.rollback()
        holder.close()
    client.join(30)
    print(f"liveness during the lock: {[round(seconds, 3) for seconds, _ in live]} s, readiness: {ready}")
    assert answered, "the scoring request should not have waited for the lock"
    assert all(status == 200 for _, status in live)
    assert max(seconds for seconds, _ in live) < 0.5, live
    assert ready[1] == 200 and ready[0] < 2.5, ready
    [response] = scored
    assert response.status_code == 200, response.text
    [transaction_id] = response.json()["predictions"][0]["transaction_ids"]
    stored = datamart.read_payload(workspace.engine, deployment_id)
    assert len(stored) == before + 1 and transaction_id in stored["transaction_id"].tolist()
