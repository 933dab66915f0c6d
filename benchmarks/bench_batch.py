"""Benchmark batch scoring against its limit: rows per second, peak memory and the ratio, in-process and on Dask.

For each size it generates a CSV file of applicants (in pieces, so that making 10,000,000 rows takes little
memory). Then, each in a fresh child process that reports its wall time and the peak resident memory of its own
process (``VmHWM``; ``getrusage`` where there is no ``/proc``):

- the **limit**: pyarrow's streaming CSV reader reads the file, the scoring service's fast path predicts every
  row, pyarrow's CSV writer writes the rows with the prediction and probabilities; one after the other, batch by
  batch, with none of a job's guarantees (no validation, no row numbers, no rejects, no resume, no data mart);
- a **job** per engine, scoring the file into a CSV file with a logistic regression. Its time covers everything
  the job does: loading the model, counting and reading the input, validating, scoring, writing the part files,
  committing each chunk to the data mart and joining the parts into the output file (not the two seconds or so a
  local Dask cluster takes to start, nor its workers' memory, which is printed beside).

Each job's line gives its rate as a share of the limit's (``ratio``). Finally it checks that both engines wrote
the same bytes, output and rejects files alike, once each job's own id is taken out of the transaction ids.

With ``--log-payload`` the jobs also store every scored row in the data mart, and the store alone is timed:
:func:`utils.datamart.store_batch_payload` of one chunk's records, the rate the data mart takes them at.

Usage::

    python benchmarks/bench_batch.py                        # 1,000,000 rows, both engines
    python benchmarks/bench_batch.py --large                # and 10,000,000 rows
    python benchmarks/bench_batch.py --rows 100000          # a quick run
    python benchmarks/bench_batch.py --engines local --log-payload
"""

from __future__ import annotations

import argparse
import itertools
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


def prepare(work: Path) -> dict:
    """A logistic regression trained on generated data, registered and deployed in ``work``: its model and
    deployment ids, the working directory and its own data mart."""
    from utils.workspace import prepare_workspace

    workspace = prepare_workspace(work, rows=3000, seed=11)
    return {
        "model_id": workspace.model_ids[0],
        "deployment_id": workspace.deployment.deployment_id,
        "work": str(work),
        "datamart_url": workspace.datamart_url,
    }


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


def limit(source: str, work: str, model_id: str) -> dict:
    """In the child process: pyarrow reads ``source``, the fast path predicts, pyarrow writes; time and memory."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    from threadpoolctl import threadpool_limits

    from utils.data import CATEGORIES, FEATURES, NUMERIC_RANGES
    from utils.registry import registry_for
    from utils.scoring import Scorer

    began = time.perf_counter()  # loading the model counts, as in a job
    scorer = Scorer(registry_for(work).load(model_id), model_id)
    types = {name: pa.dictionary(pa.int32(), pa.string()) for name in CATEGORIES}
    types |= {name: pa.int64() for name in NUMERIC_RANGES}
    seconds = dict.fromkeys(("read", "predict", "write"), 0.0)
    output, writer, rows = Path(source).with_name("limit.csv"), None, 0
    reader = pcsv.open_csv(source, convert_options=pcsv.ConvertOptions(column_types=types))
    with threadpool_limits(limits=1, user_api="blas"):
        while True:
            start = time.perf_counter()
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            read = time.perf_counter()
            labels, proba = scorer.predict_frame(batch.select(list(FEATURES)).to_pandas())
            predicted = time.perf_counter()
            table = pa.Table.from_batches([batch])
            added = {"prediction": labels, "probability_no_risk": proba[:, 0], "probability_risk": proba[:, 1]}
            for name, values in added.items():
                table = table.append_column(name, pa.array(values))
            writer = writer or pcsv.CSVWriter(output, table.schema)
            writer.write_table(table)
            rows += batch.num_rows
            seconds["read"] += read - start
            seconds["predict"] += predicted - read
            seconds["write"] += time.perf_counter() - predicted
    if writer is not None:
        writer.close()
    total = time.perf_counter() - began
    output.unlink(missing_ok=True)
    return {"rows": rows, "seconds": total, "parts": seconds, "peak_bytes": peak_bytes()}


def store(source: str, work: str, datamart_url: str, deployment_id: str, rows: int) -> dict:
    """In the child process: one chunk's payload records (the job's own, of the first ``rows`` rows) stored by
    :func:`utils.datamart.store_batch_payload` alone; its time."""
    from utils import datamart
    from utils.batch.chunks import chunk_layout, score_chunk
    from utils.batch.inputs import CsvInput
    from utils.deployment import get_deployment
    from utils.registry import registry_for
    from utils.scoring import Scorer
    from utils.times import utc_now

    engine = datamart.connect(datamart_url)
    model_id = get_deployment(deployment_id, engine=engine).model_id
    source_file = CsvInput(Path(source))
    layout = chunk_layout(
        source_file,
        Path(source),
        job_id="store-alone",
        model_id=model_id,
        deployment_id=deployment_id,
        log_payload=True,
    )
    chunk = next(source_file.chunks(rows))
    payload = score_chunk(Scorer(registry_for(work).load(model_id), model_id), chunk, layout).payload
    for record in payload:
        record["scored_at"] = utc_now()
    began = time.perf_counter()
    stored = datamart.store_batch_payload(engine, payload)
    return {"rows": stored, "seconds": time.perf_counter() - began}


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
        "job_id": job.job_id,
        "rows": job.rows_read,
        "scored": job.rows_scored,
        "seconds": seconds,
        "peak_bytes": peak_bytes(),
        "worker_peak_bytes": max(workers_peak, default=0),
        "workers": len(workers_peak),
    }


def run_child(task: str, **arguments) -> dict:
    """Run ``task`` (:func:`measure`, :func:`limit` or :func:`store`) in a fresh Python process; its report."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps({"task": task, "arguments": arguments})],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def same_bytes(first: Path, first_id: str, second: Path, second_id: str) -> bool:
    """Whether two files hold the same bytes once each job's id is taken out (line by line: memory stays flat)."""
    with open(first, "rb") as one, open(second, "rb") as two:
        for line_one, line_two in itertools.zip_longest(one, two):
            if line_one is None or line_two is None:
                return False
            if line_one.replace(first_id.encode(), b"") != line_two.replace(second_id.encode(), b""):
                return False
    return True


def _rejects(output: Path) -> Path:
    return output.with_name(f"{output.stem}.rejects.csv")


def score_file(source: Path, rows: int, engines: list[str], options: dict, workers: int | None) -> None:
    """Time the limit, then score ``source`` once per engine; a line each, and whether the engines agree."""
    bound = run_child("limit", source=str(source), work=options["work"], model_id=options["model_id"])
    bound_rate = bound["rows"] / bound["seconds"]
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in bound["parts"].items())
    print(
        f"{rows:>12,} {'limit':>6} {bound['seconds']:>8.1f} {bound_rate:>10,.0f} {1:>6.2f} "
        f"{bound['peak_bytes'] / GIB:>8.2f} GiB {'-':>12}   ({parts})"
    )
    model = "deployment_id" if options["log_payload"] else "model_id"  # payload is logged for a deployment
    job_options = {key: value for key, value in options.items() if key not in {"model_id", "deployment_id"}}
    job_options[model] = options[model]
    jobs = {}
    for engine in engines:
        output = source.with_name(f"scored-{rows}-{engine}.csv")
        arguments = {"input_path": str(source), "output_path": str(output), "engine": engine, **job_options}
        report = run_child("measure", arguments=arguments, workers=workers)
        rate = report["rows"] / report["seconds"]
        worker = f"{report['worker_peak_bytes'] / GIB:8.2f} GiB" if engine == "dask" else f"{'-':>12}"
        print(
            f"{rows:>12,} {engine:>6} {report['seconds']:>8.1f} {rate:>10,.0f} {rate / bound_rate:>6.2f} "
            f"{report['peak_bytes'] / GIB:>8.2f} GiB {worker}"
        )
        jobs[engine] = (output, report["job_id"])
    if len(jobs) == 2:
        (first, first_id), (second, second_id) = jobs["local"], jobs["dask"]
        same = same_bytes(first, first_id, second, second_id)
        same &= same_bytes(_rejects(first), first_id, _rejects(second), second_id)
        print(f"both engines wrote the same bytes (output and rejects, job ids aside): {same}")
    for path, _ in jobs.values():
        path.unlink(missing_ok=True)
        _rejects(path).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="input sizes (default 1,000,000)")
    parser.add_argument("--large", action="store_true", help="also 10,000,000 rows (about 1.4 GB of CSV)")
    parser.add_argument("--engines", nargs="+", choices=["local", "dask"], default=["local", "dask"])
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: the job's)")
    parser.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    parser.add_argument(
        "--log-payload", action="store_true", help="also store every row as payload, and time the store"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task = json.loads(args.child)
        print(json.dumps({"measure": measure, "limit": limit, "store": store}[task["task"]](**task["arguments"])))
        return

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    sizes = [*args.rows, *([10_000_000] if args.large else [])]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        work = Path(folder)
        options = {**prepare(work), "progress": False, "log_payload": args.log_payload}
        if args.chunk_rows:
            options["chunk_rows"] = args.chunk_rows
        header = (
            f"{'rows':>12} {'engine':>6} {'seconds':>8} {'rows/s':>10} {'ratio':>6} {'peak memory':>12} "
            f"{'each worker':>12}"
        )
        for rows in sizes:
            source = work / f"applicants-{rows}.csv"
            began = time.perf_counter()
            write_input(source, rows)
            size = source.stat().st_size
            print(f"\ngenerated {rows:,} rows ({size / 1e6:,.0f} MB) in {time.perf_counter() - began:.0f} s")
            print(header)
            score_file(source, rows, args.engines, options, args.workers)
            if args.log_payload:
                keys = ("work", "datamart_url", "deployment_id")
                alone = run_child("store", source=str(source), rows=min(rows, 50_000), **{k: options[k] for k in keys})
                print(
                    f"the data mart alone stores {alone['rows']:,} payload records in {alone['seconds']:.1f} s "
                    f"({alone['rows'] / alone['seconds']:,.0f} records/s)"
                )
            source.unlink(missing_ok=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
