"""A batch job logging a large chunk's payload leaves the data mart's write lock to online scoring often enough.

The job runs in a child process; this process stands in for the online scoring service and stores one
payload record at a time, as it would for each request, timing each store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from utils import datamart
from utils.data import generate_credit_data
from utils.times import utc_now

ROWS = 200_000  # one chunk: the job commits it all at once
# Seconds an online request may wait for the write lock: 1.1 to 1.6 s measured on an idle 2-core machine (each
# record also stored packed since), 3.1 s once on a busy one, 4.2 s before payload was committed in small
# transactions.
LONGEST_WAIT = 3.8


def _online_record(number: int, deployment) -> dict:
    return {
        "transaction_id": f"online:{number}",
        "deployment_id": deployment.deployment_id,
        "model_id": deployment.model_id,
        "scored_at": utc_now(),
        "inputs": {"Age": 30},
        "prediction": "No Risk",
        "probability_no_risk": 0.7,
        "probability_risk": 0.3,
    }


@pytest.mark.slow
def test_online_payload_waits_little_while_a_large_chunk_is_committed(workspace, tmp_path):
    source, output = tmp_path / "applicants.csv", tmp_path / "scored.csv"
    generate_credit_data(ROWS, 31).to_csv(source, index=False)
    deployment, engine = workspace.deployment, workspace.engine
    command = [
        *(sys.executable, "-m", "utils.batch", "--no-progress", "--log-payload", "--chunk-rows", str(ROWS)),
        *("--input", str(source), "--output", str(output), "--deployment-id", deployment.deployment_id),
    ]
    environment = {**os.environ, "CREDIT_WORKDIR": str(workspace.work)}
    environment.pop(datamart.DATAMART_URL_ENV, None)
    waits = []
    job = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while job.poll() is None:
            assert time.monotonic() < deadline, "the job took too long"
            started = time.perf_counter()
            datamart.insert_payload(engine, [_online_record(len(waits), deployment)])
            waits.append(time.perf_counter() - started)
            time.sleep(0.005)
        stdout, stderr = job.communicate()
    finally:
        job.kill()
        job.wait()
    assert job.returncode == 0, stderr.decode()
    batch = datamart.read_payload(engine, deployment.deployment_id)
    assert (~batch["transaction_id"].str.startswith("online:")).sum() == ROWS
    print(f"longest wait {max(waits):.3f} s over {len(waits)} online records")
    assert max(waits) < LONGEST_WAIT, f"an online record waited {max(waits):.1f} s for the write lock"
