"""Benchmark "explain a transaction": the time the scoring service takes to answer
``GET /ml/v4/transactions/{id}/explanation`` (shap contributions, top reasons and the smallest change that flips
the decision), as the dashboard's search box and the loan officer's form ask it.

It prepares a workspace in a temporary folder (3,000 generated applicants; a logistic regression, the pipeline's
default, and a gradient boosting model, each deployed), starts the real server, scores ``--ids`` applicants of the
test split through each deployment, and asks for each transaction's explanation once, after one warm-up request
(the first one imports shap and reads the background data). It prints the p50 and p90 per model type; the goal is a
p50 under 1 s.

Usage::

    python benchmarks/bench_explain.py            # 20 ids per model type
    python benchmarks/bench_explain.py --ids 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from utils.data import FEATURES
from utils.deployment import deploy
from utils.serving import start_server
from utils.workspace import prepare_workspace

GOAL_SECONDS = 1.0


def score(client: httpx.Client, deployment_id: str, rows: list[list]) -> list[str]:
    """Score ``rows`` through the deployment; their transaction ids."""
    body = {"input_data": [{"fields": list(FEATURES), "values": rows}]}
    answer = client.post(f"/ml/v4/deployments/{deployment_id}/predictions", json=body)
    answer.raise_for_status()
    return answer.json()["predictions"][0]["transaction_ids"]


def explain_seconds(client: httpx.Client, transaction_ids: list[str]) -> list[float]:
    """Seconds per explanation request, one request per id, in order."""
    times = []
    for transaction_id in transaction_ids:
        start = time.perf_counter()
        answer = client.get(f"/ml/v4/transactions/{transaction_id}/explanation")
        times.append(time.perf_counter() - start)
        answer.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=20, help="transactions explained per model type")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as folder:
        workspace = prepare_workspace(
            Path(folder), rows=3000, seed=11, model_types=("logistic_regression", "gradient_boosting")
        )
        boosted = deploy("credit-risk-v2", name="credit-risk-boosted", engine=workspace.engine, work=workspace.work)
        deployments = {"logistic_regression": workspace.deployment, "gradient_boosting": boosted}
        rows = workspace.test[list(FEATURES)].head(args.ids + 1).to_numpy().tolist()
        rows = [[value.item() if hasattr(value, "item") else value for value in row] for row in rows]
        with (
            start_server(
                work=workspace.work, datamart_url=workspace.datamart_url, api_key="", access_log=False
            ) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            print(f"explain a transaction over HTTP, {args.ids} ids per model type (goal: p50 under {GOAL_SECONDS} s)")
            for model_type, deployment in deployments.items():
                ids = score(client, deployment.deployment_id, rows)
                warm_up = explain_seconds(client, ids[:1])[0]
                times = sorted(explain_seconds(client, ids[1:]))
                p50, p90 = statistics.median(times), times[int(0.9 * (len(times) - 1))]
                verdict = "meets" if p50 < GOAL_SECONDS else "MISSES"
                print(
                    f"  {model_type:<20} p50 {p50:.3f} s  p90 {p90:.3f} s  (first request {warm_up:.3f} s)  "
                    f"{verdict} the goal"
                )


if __name__ == "__main__":
    main()
