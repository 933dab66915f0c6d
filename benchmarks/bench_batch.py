"""Benchmark batch scoring: rows per second and peak memory, in-process and on Dask.

For each size it generates a CSV file of applicants (in pieces, so that making 10,000,000
rows takes little memory), then scores it into a CSV file with a logistic regression, once
per engine. Each job runs in a fresh child process, which reports the job's wall time and
the peak resident memory of its own process (``VmHWM``; ``getrusage`` where there is no
``/proc``) and, for Dask, of each worker of the local cluster it started before the job. The
time covers everything the job does: loading the model, counting and reading the input,
validating, scoring, writing the part files, committing each chunk to the data mart and
joining the parts into the output file (not the two seconds or so a local Dask cluster takes
to start). Finally it checks that both engines wrote the same predictions.

Usage::

    python benchmarks/bench_batch.py                       # 1,000,000 and 10,000,000 rows
    python benchmarks/bench_batch.py --rows 100000         # a quick run
    python benchmarks/bench_batch.py --rows 1000000 --engines local --log-payload
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
from pathlib import Path

from utils.data import generate_credit_data

GIB = 1 << 30
_PIECE_ROWS = 250_000


def write_input(path: Path, rows: int, seed: int = 2024) -> None:
    """``rows`` generated applicants as CSV, made ``_PIECE_ROWS`` at a time."""
    with open(path, "w", newline="") as handle:
        for number, start in enumerate(range(0, rows, _PIECE_ROWS)):
            piece = generate_credit_data(min(_PIECE_ROWS, rows - start), seed + number)
            piece.to_csv(handle, header=number == 0, index=False)


def prepare(work: Path, log_payload: bool) -> dict:
    """A logistic regression trained on generated data, registered and deployed in ``work``: what each job scores
    with (the deployment when the jobs log payload), and the working directory's own data mart."""
    from utils.workspace import prepare_workspace

    workspace = prepare_workspace(work, rows=3000, seed=11)
    model = (
        {"deployment_id": workspace.deployment.deployment_id} if log_payload else {"model_id": workspace.model_ids[0]}
    )
    return {**model, "work": str(work), "datamart_url": workspace.datamart_url}


def peak_bytes() -> int:
    """This process's peak resident memory.

    ``VmHWM`` belongs to the process image: unlike ``getrusage``'s ``ru_maxrss``, it does not
    carry over the size of the parent process that started this one (Linux keeps that across
    ``fork`` and ``exec``).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def measure(arguments: dict, workers: int | None) -> dict:
    """In the child process: run one job and report its time and the peak memory of each process."""
    from utils.batch import run_batch_job

    cluster = client = None
    if arguments["engine"] == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers or os.cpu_count(), threads_per_worker=1, dashboard_address=None, silence_logs=40
        )
        client = Client(cluster)
        arguments = {**arguments, "scheduler": cluster.scheduler_address}
    began = time.perf_counter()
    job = run_batch_job(**arguments)
    seconds = time.perf_counter() - began
    workers_peak = list(client.run(peak_bytes).values()) if client else []
    if cluster:
        client.close()
        cluster.close()
    return {
        "rows": job.rows_read,
        "scored": job.rows_scored,
        "seconds": seconds,
        "peak_bytes": peak_bytes(),
        "worker_peak_bytes": max(workers_peak, default=0),
        "workers": len(workers_peak),
    }


def run_child(arguments: dict, workers: int | None) -> dict:
    """Run :func:`measure` in a fresh Python process and return its report."""
    completed = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps({"arguments": arguments, "workers": workers})],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def same_predictions(first: Path, second: Path) -> bool:
    """True when two output files hold the same rows, apart from the transaction ids (whose job ids differ)."""
    with open(first) as one, open(second) as two:
        for line_one, line_two in zip(one, two, strict=True):
            if line_one.rsplit(",", 1)[0] != line_two.rsplit(",", 1)[0]:
                return False
    return True


def score_file(source: Path, rows: int, engines: list[str], options: dict, workers: int | None) -> None:
    """Score ``source`` once per engine, each in a child process; print a line per job and whether they agree."""
    outputs = {}
    for engine in engines:
        output = source.with_name(f"scored-{rows}-{engine}.csv")
        arguments = {"input_path": str(source), "output_path": str(output), "engine": engine, **options}
        report = run_child(arguments, workers)
        rate = report["rows"] / report["seconds"]
        worker = f"{report['worker_peak_bytes'] / GIB:8.2f} GiB" if engine == "dask" else f"{'-':>12}"
        print(
            f"{rows:>12,} {engine:>6} {report['seconds']:>8.1f} {rate:>10,.0f} "
            f"{report['peak_bytes'] / GIB:>8.2f} GiB {worker}"
        )
        outputs[engine] = output
    if len(outputs) == 2:
        print(f"same predictions from both engines: {same_predictions(outputs['local'], outputs['dask'])}")
    for path in outputs.values():
        path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="input sizes")
    parser.add_argument("--engines", nargs="+", choices=["local", "dask"], default=["local", "dask"])
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: the job's)")
    parser.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    parser.add_argument("--log-payload", action="store_true", help="also store every row as payload (slower)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(**json.loads(args.measure))))
        return

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        work = Path(folder)
        options = {**prepare(work, args.log_payload), "progress": False, "log_payload": args.log_payload}
        if args.chunk_rows:
            options["chunk_rows"] = args.chunk_rows
        header = f"{'rows':>12} {'engine':>6} {'seconds':>8} {'rows/s':>10} {'peak memory':>12} {'each worker':>12}"
        for rows in args.rows:
            source = work / f"applicants-{rows}.csv"
            began = time.perf_counter()
            write_input(source, rows)
            size = source.stat().st_size
            print(f"\ngenerated {rows:,} rows ({size / 1e6:,.0f} MB) in {time.perf_counter() - began:.0f} s")
            print(header)
            score_file(source, rows, args.engines, options, args.workers)
            source.unlink(missing_ok=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
