"""Slow clients against the real server: headers or a body sent a byte at a time, or nothing at all, must cost a
connection only until their deadline, and must not keep normal requests from being answered."""

from __future__ import annotations

import selectors
import socket
import statistics
import threading
import time

import httpx
import pytest

from utils.scoring import wml_request
from utils.serving import start_server
from utils.serving.server import ClientLimits

pytestmark = pytest.mark.slow

LIMITS = ClientLimits(header_seconds=2.0, body_seconds=3.0, keep_alive_seconds=2, max_connections=150)
MARGIN = 1.5  # seconds a deadline may be late on a busy machine
TRICKLE_SECONDS = 0.25  # a slow client sends one byte this often


@pytest.fixture(scope="module")
def server(workspace):
    with start_server(
        workers=1,
        work=workspace.work,
        datamart_url=workspace.datamart_url,
        access_log=False,
        limits=LIMITS,
        timeout=120,
    ) as server:
        yield server


def _open(url: str, count: int, first: bytes) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    clients = []
    for _ in range(count):
        client = socket.create_connection((host, int(port)), timeout=5)
        client.setblocking(False)
        if first:
            client.send(first)
        clients.append(client)
    return clients


def _closed_after(clients: dict[socket.socket, bytes], opened: float, bound: float) -> dict[socket.socket, float]:
    """Trickle each client's byte until the server closes it; the seconds from ``opened`` to each closing."""
    closed: dict[socket.socket, float] = {}
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client, selectors.EVENT_READ)
    next_trickle = time.monotonic()
    while len(closed) < len(clients) and time.monotonic() - opened < bound:
        for key, _ in selector.select(timeout=0.05):
            try:
                data = key.fileobj.recv(4096)
            except ConnectionError:
                data = b""
            if not data:
                closed[key.fileobj] = time.monotonic() - opened
                selector.unregister(key.fileobj)
        if time.monotonic() >= next_trickle:
            next_trickle += TRICKLE_SECONDS
            for client, byte in clients.items():
                if client not in closed and byte:
                    try:
                        client.send(byte)
                    except (BlockingIOError, ConnectionError):
                        pass
    selector.close()
    return closed


def test_slow_headers_slow_bodies_and_silent_clients_are_closed_on_time_while_others_are_served(workspace, server):
    deployment_id = workspace.deployment.deployment_id
    path = f"/ml/v4/deployments/{deployment_id}/predictions"
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    full_head = head + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    opened = time.monotonic()
    silent = _open(server.url, 30, b"")
    slow_headers = _open(server.url, 60, head)
    slow_bodies = _open(server.url, 30, full_head + b"{")
    trickles = {**dict.fromkeys(silent, b""), **dict.fromkeys(slow_headers, b"x"), **dict.fromkeys(slow_bodies, b" ")}

    served: list[tuple[float, int]] = []
    stop = threading.Event()

    def normal_requests() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set() and len(served) < 200:
                started = time.monotonic()
                status = client.post(path, json=wml_request(workspace.test.head(1))).status_code
                served.append((time.monotonic() - started, status))
                time.sleep(0.05)

    requester = threading.Thread(target=normal_requests)
    requester.start()
    try:
        closed = _closed_after(trickles, opened, bound=max(LIMITS.header_seconds, LIMITS.body_seconds) + 3 * MARGIN)
    finally:
        stop.set()
        requester.join(30)
        for client in trickles:
            client.close()

    def seconds(group):
        return sorted(closed.get(client, float("inf")) for client in group)

    header_deadline, body_deadline = LIMITS.header_seconds, LIMITS.body_seconds  # the bodies: from their headers
    latencies = [latency for latency, _ in served]
    print(
        f"closed after: silent {seconds(silent)[0]:.2f}-{seconds(silent)[-1]:.2f} s, slow headers "
        f"{seconds(slow_headers)[0]:.2f}-{seconds(slow_headers)[-1]:.2f} s, slow bodies "
        f"{seconds(slow_bodies)[0]:.2f}-{seconds(slow_bodies)[-1]:.2f} s; normal requests: {len(served)}, "
        f"median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s"
    )
    assert seconds(silent)[-1] < header_deadline + MARGIN and seconds(slow_headers)[-1] < header_deadline + MARGIN
    assert seconds(silent)[0] > header_deadline - 0.2 and seconds(slow_headers)[0] > header_deadline - 0.2
    assert body_deadline - 0.2 < seconds(slow_bodies)[0] and seconds(slow_bodies)[-1] < body_deadline + MARGIN
    assert len(served) > 20 and all(status == 200 for _, status in served), served
    assert max(latencies) < 1.0


def test_beyond_the_connection_limit_requests_are_refused_at_once_until_the_idle_ones_are_closed(server):
    idle = _open(server.url, LIMITS.max_connections, b"")
    try:
        started = time.monotonic()
        refused = httpx.get(f"{server.url}/v2/health/live", timeout=5)
        refused_after = time.monotonic() - started
        time.sleep(LIMITS.header_seconds + MARGIN)
        answered = httpx.get(f"{server.url}/v2/health/live", timeout=5)
    finally:
        for client in idle:
            client.close()
    print(f"over the limit: {refused.status_code} after {refused_after:.3f} s; later {answered.status_code}")
    assert refused.status_code == 503 and refused_after < 1.0
    assert answered.status_code == 200
