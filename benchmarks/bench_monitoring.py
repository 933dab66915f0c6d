"""Benchmark the monitors: time and peak memory per monitor over 1,000,000 logged payload records.

It fills a SQLite data mart in a temporary folder with ``--rows`` payload records (generated applicants scored by
a logistic regression, spread over 7 days, the last two with drift) and a tenth as many feedback records,
bulk-inserted in one transaction per 250,000 rows. Then each stage runs in a fresh child process, which reports
its wall time and its peak resident memory (``VmHWM``, the whole process: Python and the libraries included):

- ``read``: reading the window's payload and feedback records into DataFrames;
- ``quality``, ``fairness``, ``drift``: one monitor alone on the window read beforehand, its set-up included
  (importing its library, fitting its detectors); the peak memory includes the window;
- ``all``: :func:`utils.monitoring.evaluate_all` as the command line runs it: reading the window, setting up,
  every monitor, storing the measurements and writing the HTML report.

The floor for ``all`` is 60 s and 4 GiB.

Usage::

    python benchmarks/bench_monitoring.py                 # 1,000,000 payload records
    python benchmarks/bench_monitoring.py --rows 100000   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from utils.data import FEATURES

GIB = 1 << 30
FLOOR_SECONDS, FLOOR_BYTES = 60.0, 4 * GIB
START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 7
_PIECE_ROWS = 250_000


def peak_bytes() -> int:
    """Peak resident memory of this process (``VmHWM``, which does not carry over the parent's size)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def prepare(work: Path, rows: int) -> str:
    """Train and deploy a model, write its training data, and log ``rows`` payload records; returns the deployment."""
    from utils import datamart
    from utils.decision import decide, risk_probability
    from utils.traffic import applicants
    from utils.workspace import prepare_workspace

    workspace = prepare_workspace(work, rows=5000, seed=42)  # the reference in the layout's train.csv, v1 deployed
    engine, deployment, model = workspace.engine, workspace.deployment, workspace.model
    seconds_per_row = DAYS * 86400 / rows
    for number, first in enumerate(range(0, rows, _PIECE_ROWS)):
        size = min(_PIECE_ROWS, rows - first)
        late = first >= rows * 5 // 7  # the last two days drift, for the women most
        frame = applicants(size, 1000 + number, drift=0.3 if late else 0.0, group_drift=1.0 if late else 0.0)
        risk = risk_probability(model, frame)
        decisions = decide(risk)
        inputs = frame[list(FEATURES)].to_dict("records")
        stamps = [START + timedelta(seconds=(first + i) * seconds_per_row) for i in range(size)]
        ids = [f"bench-{first + i:09d}" for i in range(size)]
        datamart.insert_payload(
            engine,
            (
                {"transaction_id": ids[i], "deployment_id": deployment.deployment_id, "model_id": deployment.model_id,
                 "scored_at": stamps[i], "inputs": inputs[i], "prediction": str(decisions[i]),
                 "probability_no_risk": float(1 - risk[i]), "probability_risk": float(risk[i])}
                for i in range(size)
            ),
        )  # fmt: skip
        labels = frame["Risk"].tolist()
        datamart.insert_feedback(
            engine,
            (
                {"feedback_id": ids[i], "deployment_id": deployment.deployment_id, "recorded_at": stamps[i],
                 "inputs": inputs[i], "label": labels[i]}
                for i in range(0, size, 10)
            ),
        )  # fmt: skip
    return deployment.deployment_id


def measure(stage: str, work: str, deployment_id: str) -> dict:
    """In the child process: run one stage and report its time and peak memory.

    ``read`` times reading the window; a monitor's stage times that monitor alone on the window read beforehand
    (its set-up included: importing its library, fitting its detectors); ``all`` times ``evaluate_all`` whole.
    """
    from utils import datamart, monitoring

    end = START + timedelta(days=DAYS)
    if stage == "all":
        began = time.perf_counter()
        evaluation = monitoring.evaluate_all(deployment_id, START, end, work=work)
        seconds = time.perf_counter() - began
    else:
        monitor = monitoring.DeploymentMonitor(deployment_id, work=work)
        began = time.perf_counter()
        payload = datamart.read_window(monitor.engine, deployment_id, START, end)
        feedback = datamart.read_window(monitor.engine, deployment_id, START, end, feedback=True)
        seconds = time.perf_counter() - began
        if stage == "read":
            return {"payload": len(payload), "alerts": 0, "seconds": seconds, "peak_bytes": peak_bytes()}
        began = time.perf_counter()
        evaluation = monitor.evaluate(
            START, end, monitors=(stage,), store=False, report=False, payload=payload, feedback=feedback
        )
        seconds = time.perf_counter() - began
    return {
        "payload": evaluation.payload_records,
        "alerts": len(evaluation.alerts),
        "seconds": seconds,
        "peak_bytes": peak_bytes(),
    }


def run_child(stage: str, work: Path, deployment_id: str) -> dict:
    """Run :func:`measure` in a fresh Python process and return its report."""
    argument = json.dumps({"stage": stage, "work": str(work), "deployment_id": deployment_id})
    completed = subprocess.run(
        [sys.executable, __file__, "--measure", argument], check=True, capture_output=True, text=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="payload records (a tenth as many feedback)")
    parser.add_argument("--stages", nargs="+", default=["read", "quality", "fairness", "drift", "all"])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(**json.loads(args.measure))))
        return 0

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as folder:
        work = Path(folder)
        began = time.perf_counter()
        deployment_id = prepare(work, args.rows)
        size = (work / "datamart.sqlite").stat().st_size
        print(f"logged {args.rows:,} payload and {len(range(0, args.rows, 10)):,} feedback records "
              f"({size / 1e6:,.0f} MB) in {time.perf_counter() - began:.0f} s")  # fmt: skip
        print(f"{'stage':>10} {'seconds':>8} {'peak memory':>12}")
        reports = {}
        for stage in args.stages:
            reports[stage] = report = run_child(stage, work, deployment_id)
            print(f"{stage:>10} {report['seconds']:>8.1f} {report['peak_bytes'] / GIB:>8.2f} GiB")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if "all" not in reports:
        return 0
    within = reports["all"]["seconds"] <= FLOOR_SECONDS and reports["all"]["peak_bytes"] <= FLOOR_BYTES
    print(f"all monitors: {'within' if within else 'OVER'} the floor of {FLOOR_SECONDS:.0f} s and 4 GiB")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
