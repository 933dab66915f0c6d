"""Benchmark the scoring service beside its limit: a bare FastAPI endpoint on the same server, same client.

It trains and deploys a model in a temporary working directory (:func:`utils.workspace.prepare_workspace`),
starts the real server (uvicorn, ``--workers`` processes, payload logging on) and, beside it, a bare FastAPI
endpoint (``benchmarks/bare_endpoint.py``: uvicorn, as many workers, the same path, parsing the same JSON body and
returning a constant). One client process drives both with concurrent keep-alive connections, one-record requests,
the two servers taking turns round by round; it prints p50, p95 and p99 latency and requests per second of each,
and the service's share of the bare endpoint's rate. Then 100-record requests to the service alone; it checks
that every record answered reached the data mart, and prints the in-process time of one prediction with the same
model (scikit-learn pipeline and the fast path).

Usage::

    python benchmarks/bench_serving.py [--model-type gradient_boosting] [--workers 2] [--clients 1 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from utils import datamart
from utils.data import FEATURES
from utils.scoring import Scorer, frame_columns, wml_request
from utils.serving import start_server
from utils.serving.server import free_port
from utils.workspace import prepare_workspace


def drive(url: str, path: str, body: bytes, clients: int, requests: int) -> tuple[list[float], float]:
    """Send ``requests`` POSTs from ``clients`` threads; returns the latencies (s) and the wall time (s)."""
    address = urlsplit(url)
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]
    failures: list[str] = []

    def client(count: int) -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        mine = []
        for _ in range(count):
            start = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            payload = response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200:
                failures.append(f"{response.status}: {payload[:200]!r}")
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(count,)) for count in per_client]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return latencies, elapsed


def in_process_ms(function, repeat: int) -> float:
    """Median time of one call, in milliseconds."""
    function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def start_bare(workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    """Start the bare endpoint under uvicorn with ``workers`` processes; returns the process and its URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bare_endpoint:app", "--app-dir", str(Path(__file__).parent)]
    command += ["--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # it has no health endpoint: ready once it answers a request
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            probe.request("POST", "/ml/v4/deployments/bare/predictions", b"{}", {"Content-Type": "application/json"})
            if probe.getresponse().status == 200:
                return process, url
        except OSError:
            pass
        finally:
            probe.close()
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the bare endpoint did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def figures(latencies: list[float], elapsed: float) -> tuple[float, float, float, float]:
    """p50, p95, p99 (ms) and requests per second."""
    p50, p95, p99 = 1000 * np.percentile(latencies, [50, 95, 99])
    return p50, p95, p99, len(latencies) / elapsed


def load_average() -> str:
    """The machine's load average over 1, 5 and 15 minutes (the benchmark's figures depend on it)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run(pool: ProcessPoolExecutor, url: str, path: str, body: bytes, clients: int, count: int):
    """Drive ``url`` from the client process: a warm-up, then ``count`` requests; returns the latencies and time."""
    pool.submit(drive, url, path, body, clients, max(count // 10, 20)).result()
    return pool.submit(drive, url, path, body, clients, count).result()


def compare(pool, urls: dict[str, str], path: str, body: bytes, clients: int, count: int, rounds: int) -> dict:
    """One-record requests to each server of ``urls``, taking turns for ``rounds`` rounds of ``count // rounds``
    requests each (so that both see the same load of the machine); their figures (see :func:`figures`)."""
    seen = {name: ([], 0.0) for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            latencies, elapsed = run(pool, url, path, body, clients, count // rounds)
            seen[name] = (seen[name][0] + latencies, seen[name][1] + elapsed)
    return {name: figures(*measured) for name, measured in seen.items()}


def print_row(cells) -> None:
    print(" ".join(f"{cell:>12}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-type", default="logistic_regression", choices=["logistic_regression", "gradient_boosting"]
    )
    parser.add_argument("--workers", type=int, default=2, help="server processes, of the service and of the bare one")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="concurrent client connections")
    parser.add_argument("--requests", type=int, default=4000, help="one-record requests per server and client count")
    parser.add_argument("--rounds", type=int, default=4, help="turns the two servers take, per client count")
    parser.add_argument("--batch-requests", type=int, default=400, help="100-record requests")
    parser.add_argument("--datamart-url", help="data mart (say a PostgreSQL database) instead of a new SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
        workspace = prepare_workspace(
            Path(folder), rows=3000, seed=11, model_types=(args.model_type,), datamart_url=args.datamart_url
        )
        work, engine, deployment, test = workspace.work, workspace.engine, workspace.deployment, workspace.test
        model, model_id = workspace.model, deployment.model_id

        scorer = Scorer(model, model_id)
        one_frame, batch_frame = test.iloc[:1][list(FEATURES)], test.iloc[:100][list(FEATURES)]
        one, batch = frame_columns(one_frame), frame_columns(batch_frame)
        assert np.abs(scorer.predict_proba(batch) - model.predict_proba(batch_frame)).max() < 1e-6
        print(f"model {model_id} ({args.model_type}); fast path: {scorer.fast}; data mart: {engine.dialect.name}")
        print("in-process time of one prediction (median):")
        print(
            f"  scikit-learn pipeline, 1 record:    {in_process_ms(lambda: model.predict_proba(one_frame), 50):8.3f} ms"
        )
        print(f"  fast path, 1 record:                {in_process_ms(lambda: scorer.predict(one), 500):8.3f} ms")
        print(f"  fast path, 100 records:             {in_process_ms(lambda: scorer.predict(batch), 200):8.3f} ms")

        path = f"/ml/v4/deployments/{deployment.deployment_id}/predictions"
        bodies = {1: json.dumps(wml_request(one_frame)).encode(), 100: json.dumps(wml_request(batch_frame)).encode()}
        before = len(datamart.read_payload(engine, deployment.deployment_id))
        server = start_server(workers=args.workers, work=work, datamart_url=workspace.datamart_url, access_log=False)
        bare, bare_url = start_bare(args.workers, Path(folder) / "bare.log")
        rounds = max(1, args.rounds)
        per_round = args.requests // rounds
        sent = 0
        try:
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                print(f"\nload average before: {load_average()}")
                print(f"one-record requests over HTTP, {args.workers} workers each, taking turns ({rounds} rounds):")
                print_row(("server", "clients", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s", "vs bare"))
                for clients in args.clients:
                    urls = {"bare": bare_url, "service": server.url}
                    measured = compare(pool, urls, path, bodies[1], clients, args.requests, rounds)
                    sent += rounds * (max(per_round // 10, 20) + per_round)
                    for name, (p50, p95, p99, rate) in measured.items():
                        share = rate / measured["bare"][3]
                        cells = (f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", f"{rate:.0f}", f"{share:.2f}")
                        print_row((name, clients, rounds * per_round, *cells))
                print("\n100-record requests to the service:")
                print_row(("clients", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s", "records/s"))
                for clients in args.clients:
                    p50, p95, p99, rate = figures(
                        *run(pool, server.url, path, bodies[100], clients, args.batch_requests)
                    )
                    sent += 100 * (max(args.batch_requests // 10, 20) + args.batch_requests)
                    cells = (f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", f"{rate:.0f}", f"{rate * 100:.0f}")
                    print_row((clients, args.batch_requests, *cells))
                print(f"\nload average after: {load_average()}")
        finally:
            server.stop()
            bare.terminate()
            bare.wait(30)
        stored = len(datamart.read_payload(engine, deployment.deployment_id)) - before
        print(f"payload records stored: {stored} of {sent} answered 200")
        engine.dispose()
        if stored != sent:
            raise SystemExit("payload records were lost")


if __name__ == "__main__":
    main()
