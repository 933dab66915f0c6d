"""Benchmark the scoring service: latency and throughput over HTTP, with payload logging on.

It trains and deploys a model in a temporary working directory (:func:`utils.workspace.prepare_workspace`),
starts the real server (uvicorn, ``--workers`` processes), and drives it from another process with
concurrent keep-alive clients: first one-record requests, then 100-record requests.
It prints p50, p95 and p99 latency, requests and records per second, checks that
every scored record reached the data mart, and, for comparison, the in-process time
of one prediction with the same model (scikit-learn pipeline and the fast path).

Usage::

    python benchmarks/bench_serving.py [--model-type gradient_boosting] [--workers 2] [--clients 1 2 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-type", default="logistic_regression", choices=["logistic_regression", "gradient_boosting"]
    )
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4], help="concurrent client connections")
    parser.add_argument("--requests", type=int, default=4000, help="one-record requests")
    parser.add_argument("--batch-requests", type=int, default=400, help="100-record requests")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
        workspace = prepare_workspace(Path(folder), rows=3000, seed=11, model_types=(args.model_type,))
        work, engine, deployment, test = workspace.work, workspace.engine, workspace.deployment, workspace.test
        model, model_id = workspace.model, deployment.model_id

        scorer = Scorer(model, model_id)
        one_frame, batch_frame = test.iloc[:1][list(FEATURES)], test.iloc[:100][list(FEATURES)]
        one, batch = frame_columns(one_frame), frame_columns(batch_frame)
        assert np.abs(scorer.predict_proba(batch) - model.predict_proba(batch_frame)).max() < 1e-6
        print(f"model {model_id} ({args.model_type}); fast path: {scorer.fast}")
        print("in-process time of one prediction (median):")
        print(
            f"  scikit-learn pipeline, 1 record:    {in_process_ms(lambda: model.predict_proba(one_frame), 50):8.3f} ms"
        )
        print(f"  fast path, 1 record:                {in_process_ms(lambda: scorer.predict(one), 500):8.3f} ms")
        print(f"  fast path, 100 records:             {in_process_ms(lambda: scorer.predict(batch), 200):8.3f} ms")

        path = f"/ml/v4/deployments/{deployment.deployment_id}/predictions"
        bodies = {1: json.dumps(wml_request(one_frame)).encode(), 100: json.dumps(wml_request(batch_frame)).encode()}
        server = start_server(workers=args.workers, work=work, datamart_url=workspace.datamart_url, access_log=False)
        sent = 0
        header = ("records/request", "clients", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s", "records/s")
        try:
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                print(f"\nover HTTP: {args.workers} server workers, payload logging on")
                print(" ".join(f"{title:>15}" for title in header))
                for rows, count in ((1, args.requests), (100, args.batch_requests)):
                    for clients in args.clients:
                        warm_up = max(count // 10, 20)
                        pool.submit(drive, server.url, path, bodies[rows], clients, warm_up).result()
                        latencies, elapsed = pool.submit(drive, server.url, path, bodies[rows], clients, count).result()
                        sent += rows * (warm_up + count)
                        p50, p95, p99 = 1000 * np.percentile(latencies, [50, 95, 99])
                        rate = count / elapsed
                        figures = (f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", f"{rate:.0f}", f"{rate * rows:.0f}")
                        print(" ".join(f"{cell:>15}" for cell in (rows, clients, count, *figures)))
        finally:
            server.stop()
        stored = len(datamart.read_payload(engine, deployment.deployment_id))
        print(f"\npayload records stored: {stored} of {sent} scored")
        engine.dispose()
        if stored != sent:
            raise SystemExit("payload records were lost")


if __name__ == "__main__":
    main()
