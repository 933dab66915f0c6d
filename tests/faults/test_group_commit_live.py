"""Group commit and the payload journal in the real server: concurrent requests, whose records share transactions,
are each stored exactly once; while the data mart cannot be written (its SQLite file and write-ahead log made
immutable mid-run, as a disk turning read-only does) requests answer 503 once the journal's drainer found it so, and
a 200 is never given for a record that is not stored (a record journaled before is ingested once the data mart can
be written again); then requests are answered 200 again. /metrics counts the requests that shared each commit."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from utils import datamart
from utils.scoring import wml_request
from utils.serving import start_server

pytestmark = pytest.mark.slow

CLIENTS = 8
PHASE_SECONDS = 4.0  # the data mart writable, then read-only, then writable again


def _immutable(paths: list[Path], on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], check=True, capture_output=True)


def _commits_once_ingested(url: str, accepted: int) -> dict[str, float]:
    """The commit metric's samples once it counts ``accepted`` requests: a request whose records went to the payload
    journal is counted when they are ingested, within a fifth of a second after its 200."""
    deadline = time.monotonic() + 30
    while True:
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        commits = {
            sample.name: sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if family.name == "credit_payload_commit_requests"
        }
        if commits.get("credit_payload_commit_requests_sum") == accepted or time.monotonic() > deadline:
            return commits
        time.sleep(0.1)


def test_concurrent_records_are_stored_once_and_never_acknowledged_when_the_commit_fails(workspace):
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    database = Path(workspace.engine.url.database)
    files = [database, database.with_name(f"{database.name}-wal")]
    deployment_id = workspace.deployment.deployment_id
    path = f"/ml/v4/deployments/{deployment_id}/predictions"
    bodies = [wml_request(workspace.test.iloc[i : i + 1 + i % 3]) for i in range(CLIENTS)]
    before = set(datamart.read_payload(workspace.engine, deployment_id)["transaction_id"])
    answered: list[str] = []
    outcomes: Counter = Counter()
    refusals: list[str] = []
    lock = threading.Lock()
    phase = ["writable"]
    done = threading.Event()

    def client(body: dict, url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not done.is_set():
                response = http.post(path, json=body)
                with lock:
                    outcomes[(phase[0], response.status_code)] += 1
                    if response.status_code == 200:
                        answered.extend(response.json()["predictions"][0]["transaction_ids"])
                    else:
                        refusals.append(response.text)

    with start_server(
        workers=2, work=workspace.work, datamart_url=workspace.datamart_url, access_log=False, timeout=120
    ) as server:
        threads = [threading.Thread(target=client, args=(body, server.url)) for body in bodies]
        for thread in threads:
            thread.start()
        try:
            time.sleep(PHASE_SECONDS)
            try:
                _immutable(files, True)
            except subprocess.CalledProcessError as error:
                pytest.skip(f"cannot make the data mart read-only here: {error.stderr.strip()}")
            phase[0] = "read-only"
            time.sleep(PHASE_SECONDS)
            _immutable(files, False)
            time.sleep(0.5)  # groups under way when the files became writable again may still fail
            phase[0] = "writable again"
            time.sleep(PHASE_SECONDS)
        finally:
            _immutable(files, False)
            done.set()
            for thread in threads:
                thread.join(120)
        accepted = sum(count for (_, status), count in outcomes.items() if status == 200)
        commits = _commits_once_ingested(server.url, accepted)
        log = server.log()
    stored = [t for t in datamart.read_payload(workspace.engine, deployment_id)["transaction_id"] if t not in before]
    counts = Counter(stored)
    print(f"outcomes {dict(outcomes)}; records answered {len(answered)}, stored {len(stored)}; commits {commits}")
    assert outcomes[("writable", 200)] > 20 and outcomes[("writable again", 200)] > 20, outcomes
    assert outcomes[("read-only", 503)] > 0, outcomes
    assert {status for _, status in outcomes} <= {200, 503}, outcomes
    assert all("data mart" in refusal for refusal in refusals), refusals[:3]
    assert len(answered) == len(set(answered)) and all(count == 1 for count in counts.values()), "stored twice"
    assert set(answered) == set(stored), "a record answered 200 is not stored, or one refused is stored"
    assert "Traceback" not in log, log[-3000:]
    assert commits["credit_payload_commit_requests_sum"] == accepted  # every 200 is in a committed group
    assert commits["credit_payload_commit_requests_count"] < accepted, commits  # and requests shared commits
