"""SIGKILL of a worker while clients score: every record answered 200 is stored, none twice."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import httpx
import pytest

from utils import datamart
from utils.scoring import wml_request
from utils.serving import start_server

pytestmark = [pytest.mark.slow, pytest.mark.datamarts]

CLIENTS = 4
REQUESTS_PER_CLIENT = 2_500  # bounded in count ...
SECONDS = 90.0  # ... and in time


def test_every_answered_record_is_stored_once_when_workers_are_killed_under_load(
    workspace, worker_pids, started_workers, wait_for
):
    deployment_id = workspace.deployment.deployment_id
    path = f"/ml/v4/deployments/{deployment_id}/predictions"
    rows = workspace.test.head(1)
    before = set(datamart.read_payload(workspace.engine, deployment_id)["transaction_id"])
    answered: list[str] = []
    outcomes: Counter = Counter()
    lock = threading.Lock()
    server = start_server(
        workers=2, work=workspace.work, datamart_url=workspace.datamart_url, access_log=False, timeout=120
    )
    started = time.monotonic()
    kills_done = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for _ in range(REQUESTS_PER_CLIENT):
                if kills_done.is_set() or time.monotonic() - started > SECONDS:
                    return
                try:
                    response = http.post(path, json=wml_request(rows))
                except httpx.TransportError as error:  # the worker died with the request: not acknowledged
                    with lock:
                        outcomes[type(error).__name__] += 1
                    continue
                with lock:
                    outcomes[response.status_code] += 1
                    if response.status_code == 200:
                        answered.extend(response.json()["predictions"][0]["transaction_ids"])

    try:
        supervisor = server.process.pid
        first = wait_for(lambda: pids if len(pids := worker_pids(supervisor)) == 2 else None, 60, "two workers")
        wait_for(lambda: started_workers(server.log()) >= first, 120, "both workers serving", 0.2)
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        known = set(first)
        for victim in sorted(first):  # each original worker in turn, while the other one serves
            time.sleep(2.0)
            os.kill(victim, signal.SIGKILL)
            [replacement] = wait_for(lambda seen=frozenset(known): worker_pids(supervisor) - seen, 10, "a replacement")
            known.add(replacement)
            wait_for(lambda pid=replacement: pid in started_workers(server.log()), 120, "the replacement serving", 0.2)
        time.sleep(2.0)
        kills_done.set()
        for thread in threads:
            thread.join(SECONDS + 30)
        live = httpx.get(f"{server.url}/v2/health/live", timeout=30).status_code
    finally:
        server.stop()
    stored = datamart.read_payload(workspace.engine, deployment_id)["transaction_id"].tolist()
    new = [transaction_id for transaction_id in stored if transaction_id not in before]
    counts = Counter(new)
    sent = sum(outcomes.values())
    print(
        f"requests sent {sent} ({dict(outcomes)}), records answered {len(answered)}, records stored {len(new)}, "
        f"stored twice {sum(1 for c in counts.values() if c > 1)}, answered but missing {len(set(answered) - set(new))}"
    )
    assert outcomes[200] > 50, outcomes
    assert len(answered) == len(set(answered))
    assert set(answered) <= set(new), "a record answered 200 is not in the data mart"
    assert all(count == 1 for count in counts.values()), "a record is stored twice"
    assert live == 200
