"""The real server on a data mart it cannot write (its SQLite file made immutable, as a read-only disk makes it):
scoring and feedback answer a clear 503 and acknowledge nothing, readiness says why it is not ready, liveness
answers at once, and the file holds no half-written record afterwards. A deleted data mart file is tested in
tests/serving/test_api.py and a locked one in tests/serving/test_service_faults.py."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from utils import datamart
from utils.data import FEATURES, LABEL
from utils.scoring import wml_request
from utils.serving import start_server

pytestmark = pytest.mark.slow


@contextmanager
def _immutable(path: Path):
    """``path`` made immutable (``chattr +i``: not even root may write it); skips where that cannot be done."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make the data mart read-only here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _timed(call) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


def test_a_read_only_data_mart_answers_503_acknowledges_nothing_and_keeps_liveness_fast(workspace):
    path = Path(workspace.engine.url.database)
    deployment_id = workspace.deployment.deployment_id
    before = datamart.read_payload(workspace.engine, deployment_id)
    workspace.engine.dispose()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every commit in the file itself
    request = wml_request(workspace.test.head(3))
    fields = [*FEATURES, LABEL]
    labelled = {
        "input_data": [{"fields": fields, "values": workspace.test.head(2)[fields].astype(object).values.tolist()}]
    }
    with (
        _immutable(path),
        start_server(
            workers=1,
            work=workspace.work,
            datamart_url=workspace.datamart_url,
            access_log=False,
            timeout=120,
            health="live",  # it never becomes ready
        ) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        scored_after, scored = _timed(
            lambda: client.post(f"/ml/v4/deployments/{deployment_id}/predictions", json=request)
        )
        feedback = client.post(f"/ml/v4/deployments/{deployment_id}/feedback", json=labelled)
        live = [_timed(lambda: client.get("/v2/health/live")) for _ in range(3)]
        ready = client.get("/v2/health/ready")
        log = server.log()
    print(
        f"scoring: {scored.status_code} after {scored_after:.2f} s {scored.text[:200]}; feedback: "
        f"{feedback.status_code} {feedback.text[:200]}; liveness {[round(s, 3) for s, _ in live]} s; "
        f"readiness: {ready.status_code} {ready.text[:200]}"
    )
    assert scored.status_code == 503 and "data mart" in scored.json()["error"], scored.text
    assert str(path) not in scored.text
    assert feedback.status_code == 503, feedback.text
    assert ready.status_code == 503 and "cannot be written" in ready.text, ready.text
    assert all(response.status_code == 200 for _, response in live) and max(s for s, _ in live) < 0.5
    assert "Traceback" not in log, log[-3000:]
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    after = datamart.read_payload(workspace.engine, deployment_id)
    assert after["transaction_id"].tolist() == before["transaction_id"].tolist(), "a record was half-written"
