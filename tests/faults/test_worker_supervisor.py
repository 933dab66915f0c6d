"""The worker supervisor: a killed worker is replaced within seconds, even a replacement killed during its start-up,
and SIGTERM ends the server within seconds, a request in progress included."""

from __future__ import annotations

import os
import signal
import socket
import time

import httpx
import pytest

from utils.serving import start_server
from utils.serving.server import GRACEFUL_SHUTDOWN_SECONDS

pytestmark = pytest.mark.slow

RESTART_SECONDS = 3.0  # from a worker's death to its replacement's process
STOP_SECONDS = 12.0  # from SIGTERM to the supervisor's exit, a replacement starting and a request in progress


def test_killed_workers_are_replaced_at_once_and_sigterm_is_honoured_at_once(
    workspace, worker_pids, started_workers, wait_for
):
    server = start_server(
        workers=2, work=workspace.work, datamart_url=workspace.datamart_url, access_log=False, timeout=120
    )
    try:
        supervisor = server.process.pid
        first = wait_for(lambda: pids if len(pids := worker_pids(supervisor)) == 2 else None, 60, "two workers")
        wait_for(lambda: started_workers(server.log()) >= first, 120, "both workers serving", interval=0.2)

        victim = min(first)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        [replacement] = wait_for(lambda: worker_pids(supervisor) - first, 10, "a replacement of the killed worker")
        replaced_after = time.monotonic() - killed
        time.sleep(1.0)  # the supervisor's health check of the replacement is on its way: kill it during start-up
        assert replacement not in started_workers(server.log()), "the replacement started too fast to test this"
        killed_again = time.monotonic()
        os.kill(replacement, signal.SIGKILL)
        [third] = wait_for(
            lambda: worker_pids(supervisor) - first - {replacement}, 10, "a replacement of the killed replacement"
        )
        replaced_again_after = time.monotonic() - killed_again
        wait_for(lambda: third in started_workers(server.log()), 120, "the third worker serving", interval=0.2)
        serving_after = time.monotonic() - killed
        assert httpx.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200

        host, port = server.url.removeprefix("http://").split(":")
        in_progress = socket.create_connection((host, int(port)))  # a request whose body is still coming
        path = f"/ml/v4/deployments/{workspace.deployment.deployment_id}/predictions"
        in_progress.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{{".encode())
        time.sleep(0.3)
        terminated = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(STOP_SECONDS + 20)
        stopped_after = time.monotonic() - terminated
        in_progress.close()
    finally:
        server.stop()
    print(
        f"replacement started {replaced_after:.2f} s after the kill; the replacement's replacement "
        f"{replaced_again_after:.2f} s after its kill during start-up; two workers serving again after "
        f"{serving_after:.2f} s; SIGTERM to exit {stopped_after:.2f} s (graceful limit {GRACEFUL_SHUTDOWN_SECONDS} s)"
    )
    assert replaced_after < RESTART_SECONDS and replaced_again_after < RESTART_SECONDS
    assert stopped_after < STOP_SECONDS
    assert not any(os.path.exists(f"/proc/{pid}") for pid in first | {replacement, third}), (
        "a worker outlived its server"
    )
