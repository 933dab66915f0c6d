"""Benchmark the monitors: time and peak memory per stage over 1,000,000 logged payload records, beside the time of
reading the window's columns from the data mart alone.

It fills a SQLite data mart in a temporary folder with ``--rows`` payload records (generated applicants scored by
a logistic regression, spread over 7 days, the last two with drift) and a tenth as many feedback records, stored
by ``insert_payload`` and ``insert_feedback`` 250,000 at a time (their time is printed: the cost of writing the
typed columns and the packed rows). Then each stage runs in a fresh child process, which reports its wall time,
its CPU time (which a busy machine inflates less), the CPU time of its own children (the ADBC readers of a large
window, and for ``all`` the classifier test's worker) and its peak resident memory (``VmHWM``, the whole process:
Python and the libraries included):

- ``columns`` (the reference): the window's payload and feedback columns as the database gives them (the inputs as
  their packed rows), fetched into Arrow tables by the ADBC driver
  (:func:`utils.datamart.columnar.read_window_columns`), nothing converted;
- ``read``: reading the window's payload and feedback records into DataFrames (:func:`utils.datamart.read_window`);
- ``imports``: importing what the monitors use (scikit-learn, skops, aif360, alibi-detect, matplotlib): paid once
  per process, and part of ``all``;
- ``quality``, ``fairness``, ``drift``: one monitor alone on the window read beforehand, its set-up included
  (importing its library, fitting its detectors); the peak memory includes the window;
- ``all``: :func:`utils.monitoring.evaluate_all` as the command line runs it in a new process: reading the window
  (begun first, in child processes) and importing alibi-detect (in the classifier test's worker) while importing
  and setting up the other monitors, then every monitor, storing the measurements and writing the HTML report.

It prints ``all`` beside ``columns`` and their ratio, and the floor: ``all`` within 8 s and 2 GiB.

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
FLOOR_SECONDS, FLOOR_BYTES = 8.0, 2 * GIB
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


def prepare(work: Path, rows: int) -> tuple[str, float]:
    """Train and deploy a model, write its training data, and log ``rows`` payload records; returns the deployment
    and the seconds spent storing the records (``insert_payload`` and ``insert_feedback`` alone)."""
    from utils import datamart
    from utils.decision import decide, risk_probability
    from utils.traffic import applicants
    from utils.workspace import prepare_workspace

    workspace = prepare_workspace(work, rows=5000, seed=42)  # the reference in the layout's train.csv, v1 deployed
    engine, deployment, model = workspace.engine, workspace.deployment, workspace.model
    seconds_per_row = DAYS * 86400 / rows
    storing = 0.0
    for number, first in enumerate(range(0, rows, _PIECE_ROWS)):
        size = min(_PIECE_ROWS, rows - first)
        late = first >= rows * 5 // 7  # the last two days drift, for the women most
        frame = applicants(size, 1000 + number, drift=0.3 if late else 0.0, group_drift=1.0 if late else 0.0)
        risk = risk_probability(model, frame)
        decisions = decide(risk)
        inputs = frame[list(FEATURES)].to_dict("records")
        stamps = [START + timedelta(seconds=(first + i) * seconds_per_row) for i in range(size)]
        ids = [f"bench-{first + i:09d}" for i in range(size)]
        payload = [
            {"transaction_id": ids[i], "deployment_id": deployment.deployment_id, "model_id": deployment.model_id,
             "scored_at": stamps[i], "inputs": inputs[i], "prediction": str(decisions[i]),
             "probability_no_risk": float(1 - risk[i]), "probability_risk": float(risk[i])}
            for i in range(size)
        ]  # fmt: skip
        labels = frame["Risk"].tolist()
        feedback = [
            {"feedback_id": ids[i], "deployment_id": deployment.deployment_id, "recorded_at": stamps[i],
             "inputs": inputs[i], "label": labels[i]}
            for i in range(0, size, 10)
        ]  # fmt: skip
        began = time.perf_counter()
        datamart.insert_payload(engine, payload)
        datamart.insert_feedback(engine, feedback)
        storing += time.perf_counter() - began
    return deployment.deployment_id, storing


def _read(engine, deployment_id: str, end: datetime, reader) -> int:
    """Records of the window's payload, read with ``reader`` as its feedback is."""
    payload = reader(engine, deployment_id, START, end)
    reader(engine, deployment_id, START, end, feedback=True)
    return len(payload)


def _import_monitors() -> None:
    """Import what the monitors use, as their first run does."""
    import matplotlib.backends.backend_agg  # noqa: F401  (the report's figures)

    import utils.monitoring.monitor  # noqa: F401  (scikit-learn, skops, the monitors)
    from utils.drift import _alibi
    from utils.fairness import _aif360

    _alibi(), _aif360()


def _clock() -> tuple[float, float, float]:
    """Now: wall seconds, this process's CPU seconds, and those of its children that have ended (ADBC readers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time(), children.ru_utime + children.ru_stime


def measure(stage: str, work: str, deployment_id: str) -> dict:
    """In the child process: run one stage and report its wall and CPU time (its own, and its children's) and its
    peak memory (see the module's docstring)."""
    from utils import datamart

    end = START + timedelta(days=DAYS)
    began = _clock()
    if stage in ("columns", "read"):
        from utils.datamart.columnar import read_window_columns

        engine = datamart.connect(work=work)
        began = _clock()
        payload = _read(engine, deployment_id, end, read_window_columns if stage == "columns" else datamart.read_window)
    elif stage == "imports":
        _import_monitors()
        payload = 0
    elif stage == "all":
        from utils import monitoring

        payload = monitoring.evaluate_all(deployment_id, START, end, work=work).payload_records
    else:
        from utils import monitoring

        monitor = monitoring.DeploymentMonitor(deployment_id, work=work)
        payload = datamart.read_window(monitor.engine, deployment_id, START, end)
        feedback = datamart.read_window(monitor.engine, deployment_id, START, end, feedback=True)
        began = _clock()
        options = {"monitors": (stage,), "store": False, "report": False, "payload": payload, "feedback": feedback}
        payload = monitor.evaluate(START, end, **options).payload_records
    seconds, cpu, children_cpu = (now - then for now, then in zip(_clock(), began))
    return {
        "payload": payload,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "children_cpu_seconds": children_cpu,
        "peak_bytes": peak_bytes(),
    }


def run_child(stage: str, work: Path, deployment_id: str) -> dict:
    """Run :func:`measure` in a fresh Python process and return its report."""
    argument = json.dumps({"stage": stage, "work": str(work), "deployment_id": deployment_id})
    completed = subprocess.run(
        [sys.executable, __file__, "--measure", argument], check=True, capture_output=True, text=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _verdict(reports: dict) -> bool:
    """Print ``all`` beside the reference and the floor; whether ``all`` is within the floor."""
    done, columns = reports["all"], reports.get("columns")
    if columns:
        ratio = done["seconds"] / columns["seconds"]
        print(f"all monitors {done['seconds']:.1f} s, reading the window's columns alone {columns['seconds']:.1f} s: "
              f"{ratio:.1f} times the read")  # fmt: skip
    within = done["seconds"] <= FLOOR_SECONDS and done["peak_bytes"] <= FLOOR_BYTES
    figures = f"{done['seconds']:.1f} s, {done['peak_bytes'] / GIB:.2f} GiB"
    floor = f"{FLOOR_SECONDS:.0f} s and {FLOOR_BYTES / GIB:.0f} GiB"
    print(f"floor: all monitors within {floor}: {'within' if within else 'OVER'} ({figures})")
    return within


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="payload records (a tenth as many feedback)")
    stages = ["columns", "read", "imports", "quality", "fairness", "drift", "all"]
    parser.add_argument("--stages", nargs="+", default=stages, choices=stages)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(**json.loads(args.measure))))
        return 0

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as folder:
        work = Path(folder)
        began = time.perf_counter()
        deployment_id, storing = prepare(work, args.rows)
        size = (work / "datamart.sqlite").stat().st_size
        stored = args.rows + len(range(0, args.rows, 10))
        print(f"logged {args.rows:,} payload and {len(range(0, args.rows, 10)):,} feedback records "
              f"({size / 1e6:,.0f} MB) in {time.perf_counter() - began:.0f} s; storing them took {storing:.1f} s "
              f"({stored / storing:,.0f} records/s)")  # fmt: skip
        print(f"{'stage':>10} {'seconds':>8} {'CPU seconds':>12} {'children CPU':>12} {'peak memory':>12}")
        reports = {}
        for stage in args.stages:
            reports[stage] = report = run_child(stage, work, deployment_id)
            print(f"{stage:>10} {report['seconds']:>8.1f} {report['cpu_seconds']:>12.1f} "
                  f"{report['children_cpu_seconds']:>12.1f} {report['peak_bytes'] / GIB:>8.2f} GiB")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if "all" not in reports:
        return 0
    return 0 if _verdict(reports) else 1


if __name__ == "__main__":
    sys.exit(main())
