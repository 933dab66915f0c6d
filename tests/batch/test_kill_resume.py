"""A batch job killed half-way (SIGKILL) resumes without losing or repeating an output row or a payload record."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from utils import datamart
from utils.batch import get_job, main
from utils.config import layout
from utils.data import generate_credit_data

pytestmark = pytest.mark.datamarts

ROWS, CHUNK_ROWS = 12_000, 500
CHUNKS = ROWS // CHUNK_ROWS


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_job_killed_half_way_resumes_exactly(workspace, tmp_path, monkeypatch):
    work = workspace.work  # credit-risk-v1, a logistic regression, deployed
    monkeypatch.setenv("CREDIT_WORKDIR", str(work))
    monkeypatch.setenv(datamart.DATAMART_URL_ENV, workspace.datamart_url)
    deployment = workspace.deployment
    frame = generate_credit_data(ROWS, 21)
    source, output = tmp_path / "applicants.csv", tmp_path / "out" / "scored.csv"
    frame.to_csv(source, index=False)
    command = [sys.executable, "-m", "utils.batch", "--no-progress"]
    engine = workspace.engine

    job = subprocess.Popen(
        [
            *command,
            *("--input", str(source), "--output", str(output), "--deployment-id", deployment.deployment_id),
            *("--chunk-rows", str(CHUNK_ROWS), "--log-payload"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = job.stdout.readline().split()[2].rstrip(":")  # "batch job <id>: <input> -> <output> with <model>"
        deadline = time.monotonic() + 120
        while (record := datamart.read_batch_job(engine, job_id)) is None or record["chunks_done"] < 5:
            assert job.poll() is None, f"the job ended before it could be killed: {job.stderr.read()}"
            assert not output.exists(), "the output appeared before the job completed"
            assert time.monotonic() < deadline, "the job committed no chunks in time"
            time.sleep(0.01)
        job.send_signal(signal.SIGKILL)
    finally:
        job.kill()
        job.wait()
        job.stdout.close()
        job.stderr.close()

    killed = get_job(job_id)
    assert killed.status == "running"  # what a killed process leaves behind
    assert 5 <= killed.chunks_done < CHUNKS
    assert killed.rows_scored == killed.chunks_done * CHUNK_ROWS
    assert not output.exists()
    assert not output.parent.exists() or not any(output.parent.iterdir())  # no temporary file either
    assert len(datamart.read_payload(engine, deployment.deployment_id)) == killed.rows_scored

    assert main(["--resume", job_id, "--no-progress"]) == 0  # in this process: a second start would cost seconds

    done = get_job(job_id)
    assert (done.status, done.attempts, done.chunks_done) == ("completed", 2, CHUNKS)
    assert (done.rows_read, done.rows_scored, done.rows_rejected) == (ROWS, ROWS, 0)
    scored = pd.read_csv(output)
    pd.testing.assert_frame_equal(scored[frame.columns], frame)  # every input row once, in order
    assert scored["transaction_id"].tolist() == [f"{job_id}:{row}" for row in range(ROWS)]
    payload = datamart.read_payload(engine, deployment.deployment_id)
    assert len(payload) == ROWS and payload["transaction_id"].is_unique
    assert set(payload["transaction_id"]) == set(scored["transaction_id"])
    assert sorted(path.name for path in output.parent.iterdir()) == ["scored.csv", "scored.rejects.csv"]
    assert not (layout(work).batch / job_id).exists()
