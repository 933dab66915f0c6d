"""Online scoring, a batch job logging its payload and a monitoring run, all at once on one SQLite data mart:
no record lost, none stored twice, and online requests answered quickly throughout the batch."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from utils import datamart
from utils.data import generate_credit_data
from utils.scoring import wml_request
from utils.serving import start_server

pytestmark = [pytest.mark.slow, pytest.mark.datamarts]

ROWS = 40_000  # the batch job: a few chunks, well under a minute
CHUNK_ROWS = 10_000
ONLINE_CLIENTS = 2
P99_SECONDS = 1.0
BOUND_SECONDS = 180.0


def _module(*arguments: str, env: dict, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *arguments], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_online_scoring_a_batch_job_and_monitoring_share_the_data_mart(workspace, tmp_path):
    deployment_id = workspace.deployment.deployment_id
    before = set(datamart.read_payload(workspace.engine, deployment_id)["transaction_id"])
    source, output = tmp_path / "applicants.csv", tmp_path / "scored.csv"
    generate_credit_data(ROWS, 37).drop(columns="Risk").to_csv(source, index=False)
    env = {**os.environ, "CREDIT_WORKDIR": str(workspace.work), datamart.DATAMART_URL_ENV: workspace.datamart_url}
    latencies: list[float] = []
    answered: list[str] = []
    outcomes: Counter = Counter()
    lock = threading.Lock()
    batch_done = threading.Event()

    def online() -> None:
        path = f"/ml/v4/deployments/{deployment_id}/predictions"
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for number in range(100_000):
                if batch_done.is_set():
                    return
                started = time.perf_counter()
                response = client.post(path, json=wml_request(workspace.test.iloc[[number % len(workspace.test)]]))
                with lock:
                    latencies.append(time.perf_counter() - started)
                    outcomes[response.status_code] += 1
                    if response.status_code == 200:
                        answered.extend(response.json()["predictions"][0]["transaction_ids"])

    with start_server(
        workers=2, work=workspace.work, datamart_url=workspace.datamart_url, access_log=False, timeout=120
    ) as server:
        clients = [threading.Thread(target=online) for _ in range(ONLINE_CLIENTS)]
        for client in clients:
            client.start()
        started = time.monotonic()
        batch = _module(
            *("utils.batch", "--no-progress", "--log-payload", "--chunk-rows", str(CHUNK_ROWS)),
            *("--input", str(source), "--output", str(output), "--deployment-id", deployment_id),
            env=env,
            cwd=tmp_path,
        )
        time.sleep(2.0)  # the monitoring run reads while the job writes
        monitoring = _module("utils.monitoring", "--deployment-id", deployment_id, env=env, cwd=tmp_path)
        try:
            monitored = monitoring.communicate(timeout=BOUND_SECONDS)
            batched = batch.communicate(timeout=BOUND_SECONDS)
        finally:
            batch_done.set()
            batch.kill()
            monitoring.kill()
            for client in clients:
                client.join(60)
        batch_seconds = time.monotonic() - started
    assert batch.returncode == 0, batched[1].decode()[-3000:]
    assert monitoring.returncode == 0, monitored[1].decode()[-3000:]

    stored = datamart.read_payload(workspace.engine, deployment_id)["transaction_id"]
    new = stored[~stored.isin(before)]
    counts = Counter(new)
    from_batch = new[~new.isin(answered)]
    p99 = float(np.percentile(latencies, 99))
    print(
        f"batch: {ROWS} rows in {batch_seconds:.1f} s, {len(from_batch)} payload records; online: "
        f"{sum(outcomes.values())} requests {dict(outcomes)}, p50 {np.percentile(latencies, 50):.3f} s, "
        f"p99 {p99:.3f} s, max {max(latencies):.3f} s; stored twice: {sum(c > 1 for c in counts.values())}; "
        f"answered but missing: {len(set(answered) - set(new))}"
    )
    assert outcomes[200] == sum(outcomes.values()) > 20, outcomes
    assert set(answered) <= set(new), "an online record answered 200 is not in the data mart"
    assert all(count == 1 for count in counts.values()), "a record is stored twice"
    assert len(from_batch) == ROWS and len(set(from_batch)) == ROWS
    assert p99 < P99_SECONDS, f"online p99 {p99:.2f} s during the batch job"
