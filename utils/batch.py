"""Batch scoring: score a whole file of applicants with a deployed model, in resumable, bounded-memory jobs.

A job reads its input (CSV, or Parquet) in chunks of ``chunk_rows`` rows, checks every row
against the data contract with the rules of :mod:`utils.scoring`, scores the valid rows with
the scoring service's fast path, and writes two files:

- the output: the input columns, then ``prediction``, ``probability_no_risk``,
  ``probability_risk`` and ``transaction_id`` (``<job id>:<row>``), rows in input order;
- the rejects file (always CSV): each rejected row's input columns, then ``input_row`` (its
  0-based record number in the input) and ``reject_reason`` (every fault of the row, each
  naming the column and the rule, separated by `` | ``).

The job is recorded in the data mart (table ``batch_jobs``). Each chunk's results go to part
files in the job's folder; then the chunk is committed, with its payload records when
``log_payload`` is on, in one data mart transaction. A job killed at any moment therefore
resumes (:func:`resume_batch_job`) without losing or repeating an output row or a payload
record, and the output file appears only when complete: the parts are joined into a
temporary file next to it, which is then renamed.

Engines: ``local`` scores in this process (the next chunk is read and parsed in a background
thread); ``dask`` sends the chunks to a Dask cluster, a local one by default or any scheduler
(``scheduler="tcp://host:8786"``). The workers run the same code on the same chunks, so the
output is the same byte for byte.

Command line: ``python -m utils.batch --help``; see ``docs/batch-scoring.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import hashlib
import io
import itertools
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from utils import config, datamart
from utils.data import CATEGORIES, FEATURES, NUMERIC_RANGES
from utils.deployment import DeploymentError, get_deployment, registry_for
from utils.registry import RegistryError, load_trusted
from utils.scoring import InputError, Scorer, records, valid_rows, validate_columns

#: Rows per chunk: what is held in memory, scored and committed at a time.
CHUNK_ROWS = 50_000
#: Largest share of rejected rows a job accepts before it fails.
MAX_REJECT_SHARE = 0.05
#: Columns a job adds to the input's in the output file.
OUTPUT_COLUMNS = ("prediction", "probability_no_risk", "probability_risk", "transaction_id")
#: Columns a job adds to the input's in the rejects file.
REJECT_COLUMNS = ("input_row", "reject_reason")
#: Job states.
QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
ENGINES = ("local", "dask")
#: Separates the faults of one row in ``reject_reason``.
FAULT_SEPARATOR = " | "

_LOG = logging.getLogger(__name__)
_EOL = "\r\n"
_ENCODING = "utf-8"
_PARQUET_SUFFIXES = (".parquet", ".pq")
_PLACEHOLDERS = {
    **{name: values[0] for name, values in CATEGORIES.items()},
    **{name: low for name, (low, _) in NUMERIC_RANGES.items()},
}


class BatchJobError(RuntimeError):
    """A batch job that cannot be created, run or resumed; ``job`` is its record when it exists."""

    def __init__(self, message: str, job: JobResult | None = None):
        super().__init__(message)
        self.message = message
        self.job = job


@dataclass(frozen=True)
class JobResult:
    """A batch job as recorded in the data mart."""

    job_id: str
    status: str
    model_id: str
    deployment_id: str | None
    input_path: Path
    output_path: Path
    rejects_path: Path
    engine: str
    scheduler: str | None
    chunk_rows: int
    log_payload: bool
    max_reject_share: float
    rows_total: int | None  # from a line count before the job ran: an upper bound for CSV
    rows_read: int
    rows_scored: int
    rows_rejected: int
    chunks_done: int
    attempts: int
    seconds: float  # time spent running, over all attempts
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    error: str | None

    @property
    def reject_share(self) -> float:
        """Rejected rows as a share of the rows read so far."""
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of running time."""
        return self.rows_read / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line: status, row counts, time and rate."""
        text = (
            f"batch job {self.job_id} {self.status}: {self.rows_read:,} rows read, {self.rows_scored:,} scored, "
            f"{self.rows_rejected:,} rejected ({self.reject_share:.2%}) in {self.seconds:.1f} s "
            f"({self.rows_per_second:,.0f} rows/s)"
        )
        return f"{text}: {self.error}" if self.error else text

    def as_dict(self) -> dict:
        """The job as JSON-able values."""
        record = asdict(self)
        for name, value in record.items():
            if isinstance(value, Path):
                record[name] = str(value)
            elif isinstance(value, datetime):
                record[name] = value.isoformat()
        return record


# --- reading the input in chunks --------------------------------------------------------------------------------


@dataclass
class _Chunk:
    """Consecutive input rows: CSV records (each with its line end) or, for Parquet, a DataFrame."""

    index: int
    first_row: int
    records: list[str] | None = None
    counts: list[int] | None = None  # fields per record, when a quote made the csv module read them
    frame: pd.DataFrame | None = None

    @property
    def size(self) -> int:
        return len(self.records) if self.records is not None else len(self.frame)


class _CsvInput:
    """A CSV file read as text records, ``chunk_rows`` lines at a time (a quoted record is never split)."""

    def __init__(self, path: Path):
        self.path = path
        with self._open() as handle:
            header = handle.readline()
        if not header.strip():
            raise BatchJobError(f"{path}: the file is empty")
        self.header = header if header.endswith("\n") else header + "\n"
        self.columns = tuple(next(csv.reader([header], skipinitialspace=True)))

    def _open(self):
        # utf-8-sig drops a byte order mark; surrogateescape carries any non-UTF-8 byte through unchanged.
        return open(self.path, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def count_rows(self) -> int:
        """Lines after the header: the number of records, or more when fields hold line ends."""
        lines, last = 0, b"\n"
        with open(self.path, "rb") as handle:
            while block := handle.read(1 << 24):
                lines += block.count(b"\n")
                last = block[-1:]
        return max(lines + (last != b"\n") - 1, 0)

    def chunks(self, chunk_rows: int) -> Iterator[_Chunk]:
        with self._open() as handle:
            handle.readline()
            index = first_row = 0
            while lines := list(itertools.islice(handle, chunk_rows)):
                if any('"' in line for line in lines):  # quoted fields may hold commas and line ends
                    found, counts = _quoted_records(lines, handle, chunk_rows)
                    kept = [i for i, record in enumerate(found) if not record.isspace()]
                    found, counts = [found[i] for i in kept], [counts[i] for i in kept]
                else:
                    found, counts = [line for line in lines if not line.isspace()], None
                yield _Chunk(index, first_row, records=found, counts=counts)  # blank lines skipped, as pandas does
                index += 1
                first_row += len(found)


def _quoted_records(lines: list[str], more: Iterator[str], limit: int) -> tuple[list[str], list[int]]:
    """The records in ``lines`` and their numbers of fields, as the csv module reads them.

    A record still open at the end of ``lines`` goes on into ``more``, for at most ``limit``
    lines; a quote never closed makes the rest one record, with field count -1.
    """
    consumed: list[str] = []

    def feed() -> Iterator[str]:
        for line in itertools.chain(lines, itertools.islice(more, limit)):
            consumed.append(line)
            yield line

    found, counts, start = [], [], 0
    with contextlib.suppress(csv.Error):
        for fields in csv.reader(feed(), skipinitialspace=True):
            found.append("".join(consumed[start:]))
            counts.append(len(fields))
            start = len(consumed)
            if start >= len(lines):
                break
    if start < len(consumed):
        found.append("".join(consumed[start:]))
        counts.append(-1)
    return found, counts


class _ParquetInput:
    """A Parquet file read ``chunk_rows`` rows at a time, as DataFrames."""

    def __init__(self, path: Path):
        self.path = path
        self.file = pq.ParquetFile(path)
        self.header = ""
        self.columns = tuple(self.file.schema_arrow.names)

    def count_rows(self) -> int:
        return self.file.metadata.num_rows

    def chunks(self, chunk_rows: int) -> Iterator[_Chunk]:
        pending: list[pd.DataFrame] = []
        size = index = first_row = 0
        for batch in self.file.iter_batches(batch_size=chunk_rows):
            pending.append(batch.to_pandas())
            size += batch.num_rows
            while size >= chunk_rows:  # batches may end at row group boundaries: re-cut them
                frame = pd.concat(pending, ignore_index=True)
                yield _Chunk(index, first_row, frame=frame.iloc[:chunk_rows].reset_index(drop=True))
                rest = frame.iloc[chunk_rows:].reset_index(drop=True)
                pending, size = ([rest] if len(rest) else []), len(rest)
                index, first_row = index + 1, first_row + chunk_rows
        if size:
            yield _Chunk(index, first_row, frame=pd.concat(pending, ignore_index=True))


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in _PARQUET_SUFFIXES


def _open_input(path: Path) -> _CsvInput | _ParquetInput:
    try:
        return _ParquetInput(path) if _is_parquet(path) else _CsvInput(path)
    except (OSError, ValueError, csv.Error) as error:
        raise BatchJobError(f"{path}: cannot be read ({error})") from error


# --- scoring one chunk (in this process or on a Dask worker) ----------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """What scoring a chunk needs to know of its job; sent to the Dask workers with each chunk."""

    job_id: str
    model_id: str
    deployment_id: str | None
    columns: tuple[str, ...]
    header: str  # the CSV input's header line; "" for Parquet input
    text: bool  # CSV to CSV: output rows are the input records, unchanged, plus the new fields
    parquet_output: bool
    log_payload: bool


@dataclass
class _Parsed:
    frame: pd.DataFrame  # the well-formed rows, index 0..n-1
    positions: np.ndarray  # each frame row's position in the chunk
    malformed: dict[int, str]  # chunk position -> reason, for records with the wrong number of fields


@dataclass
class _Scored:
    index: int
    first_row: int
    rows_read: int
    rows_scored: int
    rows_rejected: int
    output: bytes | pd.DataFrame
    rejects: bytes
    payload: list[dict] | None = field(default=None, repr=False)


def _parse(chunk: _Chunk, layout: _Layout) -> _Parsed:
    """The chunk's rows as a DataFrame; CSV records with the wrong number of fields are set apart."""
    if chunk.frame is not None:
        return _Parsed(chunk.frame, np.arange(len(chunk.frame)), {})
    width = len(layout.columns)
    counts = chunk.counts if chunk.counts is not None else [record.count(",") + 1 for record in chunk.records]
    malformed = {
        position: (
            f"malformed row: {count} field{'' if count == 1 else 's'} where the header has {width}"
            if count >= 0
            else "malformed row: a quote never closed"
        )
        + f"; the row reads {record.rstrip(_EOL)!r}"
        for position, (count, record) in enumerate(zip(counts, chunk.records))
        if count != width
    }
    if malformed:
        positions = np.array([p for p in range(len(chunk.records)) if p not in malformed], dtype=np.int64)
        well = [chunk.records[p] for p in positions]
    else:
        positions, well = np.arange(len(chunk.records)), chunk.records
    usecols = list(FEATURES) if layout.text else None
    dtype = {name: "category" if name in CATEGORIES else str for name in layout.columns if name not in NUMERIC_RANGES}
    if not well:
        return _Parsed(pd.DataFrame(columns=usecols or list(layout.columns)), positions, malformed)
    frame = pd.read_csv(
        io.BytesIO((layout.header + "".join(well)).encode(_ENCODING, "surrogateescape")),
        encoding=_ENCODING,
        encoding_errors="surrogateescape",
        dtype=dtype,
        usecols=usecols,
        skipinitialspace=True,
        index_col=False,
        low_memory=False,
    )
    if len(frame) != len(well):
        raise BatchJobError(f"chunk {chunk.index}: {len(well)} records parsed into {len(frame)} rows")
    return _Parsed(frame, positions, malformed)


def _reason(error: InputError) -> str:
    """A fault as the row's reason: the message of utils.scoring without its row number."""
    return error.message.replace(f" in row {error.row}", "") if error.row is not None else error.message


def _row_faults(row: dict) -> list[str]:
    """Every fault of one row by utils.scoring's rules: each fault found is replaced by a valid value and the
    row checked again."""
    columns = {name: [value] for name, value in row.items()}
    faults = []
    for _ in range(len(FEATURES)):
        try:
            validate_columns(columns)
            break
        except InputError as error:
            faults.append(_reason(error))
            if error.field not in _PLACEHOLDERS:
                break
            columns[error.field] = [_PLACEHOLDERS[error.field]]
    return faults


def _numbers_from_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with text that reads as a number taken as that number in the numeric columns that hold text."""
    changed = {}
    for name in NUMERIC_RANGES:
        series = frame[name]
        if series.dtype == object:
            numbers = pd.to_numeric(series, errors="coerce")
            changed[name] = series.where(~(series.map(type).eq(str) & numbers.notna()), numbers)
    return frame.assign(**changed) if changed else frame


def _check(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """Validate the rows: the frame as checked, the valid rows' positions, and the others' reasons.

    :func:`utils.scoring.valid_rows` checks every row at once; the faults of the rows it fails are
    named by :func:`utils.scoring.validate_columns`, one row at a time.
    """
    frame = _numbers_from_text(frame)
    valid = valid_rows(frame)
    reasons: dict[int, str] = {}
    failed = np.flatnonzero(~valid)
    if failed.size:
        rows = frame.iloc[failed]
        values = {name: rows[name].astype(object).where(rows[name].notna(), None).tolist() for name in FEATURES}
        for i, position in enumerate(failed.tolist()):
            faults = _row_faults({name: values[name][i] for name in FEATURES})
            if faults:
                reasons[position] = FAULT_SEPARATOR.join(faults)
            else:  # a value of a type only the row by row check can vouch for
                valid[position] = True
    return frame, np.flatnonzero(valid), reasons


def _predict(scorer: Scorer, frame: pd.DataFrame, good: np.ndarray, reasons: dict[int, str]):
    """The valid rows the model scored, their labels and probabilities; a row the model cannot encode is rejected."""
    while good.size:
        try:
            return good, *scorer.predict_frame(frame if good.size == len(frame) else frame.iloc[good])
        except InputError as error:  # e.g. a category the model was not trained with
            if error.row is None:
                raise
            reasons[int(good[error.row])] = _reason(error)
            good = np.delete(good, error.row)
    return good, np.empty(0, dtype=str), np.empty((0, 2))


def _checked_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The contract's columns of valid rows as :func:`utils.scoring.validate_columns` gives them: integers as int."""
    return {name: frame[name].to_numpy(dtype=np.int64 if name in NUMERIC_RANGES else object) for name in FEATURES}


def _texts(values: np.ndarray) -> pa.Array:
    """Each float as ``repr`` writes it: Arrow's shortest round-trip text, which is Python's in [1e-4, 1)."""
    texts = pc.cast(pa.array(values, pa.float64()), pa.string())
    odd = ~((values >= 1e-4) & (values < 1.0))  # 0, 1, tiny numbers and NaN: Arrow writes them otherwise
    if odd.any():
        texts = pc.replace_with_mask(texts, pa.array(odd), pa.array([repr(v) for v in values[odd].tolist()]))
    return texts


def _scored_lines(lines: list[str], labels: np.ndarray, proba: np.ndarray, prefix: str, rows: np.ndarray) -> bytes:
    """The output records, built by Arrow: each input record (its line end dropped), then the fields the job adds."""
    if not lines:
        return b""
    try:
        records = pc.utf8_rtrim(pa.array(lines, pa.large_string()), characters=_EOL)
    except (pa.ArrowException, UnicodeEncodeError):  # bytes that are not UTF-8, carried as surrogates
        records = pa.array(
            [line.rstrip(_EOL).encode(_ENCODING, "surrogateescape") for line in lines], pa.large_binary()
        )
    ids = pc.binary_join_element_wise(prefix, pc.cast(pa.array(rows, pa.int64()), pa.string()), "\n", "")
    added = (pa.array(labels, pa.string()), _texts(proba[:, 0]), _texts(proba[:, 1]), ids)
    joined = pc.binary_join_element_wise(records, *(a.cast(records.type) for a in added), pa.scalar(",", records.type))
    offsets = np.frombuffer(joined.buffers()[1], np.int64, len(joined) + 1, joined.offset * 8)
    return memoryview(joined.buffers()[2])[offsets[0] : offsets[-1]].tobytes()


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    values = frame.astype(object).where(frame.notna(), None)
    csv.writer(buffer, lineterminator="\n").writerows(values.itertuples(index=False, name=None))
    return buffer.getvalue()


def _score(scorer: Scorer, chunk: _Chunk, layout: _Layout, parsed: _Parsed | None = None) -> _Scored:
    """Validate, score and render one chunk: the output rows, the rejected rows and the payload records."""
    parsed = parsed if parsed is not None else _parse(chunk, layout)
    frame, good, reasons = _check(parsed.frame)
    good, labels, proba = _predict(scorer, frame, good, reasons)
    first, prefix = chunk.first_row, f"{layout.job_id}:"
    good_positions = parsed.positions[good]  # positions in the chunk
    rows = good_positions + first
    rejected = {int(parsed.positions[p]): reason for p, reason in reasons.items()} | parsed.malformed
    checked = None
    if not layout.text or layout.log_payload:
        checked = _checked_columns(frame if good.size == len(frame) else frame.iloc[good])

    if layout.text:
        lines = chunk.records if len(good) == chunk.size else [chunk.records[p] for p in good_positions.tolist()]
        output = _scored_lines(lines, labels, proba, prefix, rows)
    else:
        scored = parsed.frame.iloc[good].reset_index(drop=True)
        for name in FEATURES:
            scored[name] = checked[name]
        scored["prediction"] = labels
        scored["probability_no_risk"] = proba[:, 0]
        scored["probability_risk"] = proba[:, 1]
        scored["transaction_id"] = [f"{prefix}{row}" for row in rows.tolist()]
        output = scored if layout.parquet_output else _csv_text(scored).encode(_ENCODING, "surrogateescape")
    if chunk.records is not None:  # CSV input: rejected records as they were read
        empty = "," * (len(layout.columns) - 1)
        rejects = "".join(
            f"{empty if p in parsed.malformed else chunk.records[p].rstrip(_EOL)},{first + p},{_quote(reason)}\n"
            for p, reason in sorted(rejected.items())
        )
    else:  # Parquet input: every row is in the frame, at its chunk position
        bad = sorted(rejected)
        kept = parsed.frame.iloc[bad].reset_index(drop=True)
        kept["input_row"] = [first + p for p in bad]
        kept["reject_reason"] = [rejected[p] for p in bad]
        rejects = _csv_text(kept)
    payload = None
    if layout.log_payload:
        inputs = records({name: values.tolist() for name, values in checked.items()})
        no_risk, risk = proba[:, 0].tolist(), proba[:, 1].tolist()
        payload = [
            {
                "transaction_id": f"{prefix}{row}",
                "deployment_id": layout.deployment_id,
                "model_id": layout.model_id,
                "inputs": inputs,
                "prediction": label,
                "probability_no_risk": a,
                "probability_risk": b,
            }
            for row, inputs, label, a, b in zip(rows.tolist(), inputs, labels.tolist(), no_risk, risk)
        ]
    return _Scored(
        index=chunk.index,
        first_row=first,
        rows_read=chunk.size,
        rows_scored=len(labels),
        rows_rejected=len(rejected),
        output=output,
        rejects=rejects.encode(_ENCODING, "surrogateescape"),
        payload=payload,
    )


_WORKER_SCORERS: dict[str, Scorer] = {}


def _score_on_worker(model_bytes: bytes, chunk: _Chunk, layout: _Layout) -> _Scored:
    """A Dask task: score a chunk with the model sent as skops bytes (loaded once per worker, types checked)."""
    key = hashlib.sha256(model_bytes).hexdigest()
    scorer = _WORKER_SCORERS.get(key)
    if scorer is None:
        with tempfile.TemporaryDirectory(prefix="batch-model-") as folder:
            path = Path(folder) / "model.skops"
            path.write_bytes(model_bytes)
            scorer = Scorer(load_trusted(path), layout.model_id)
        _WORKER_SCORERS.clear()
        _WORKER_SCORERS[key] = scorer
    return _score(scorer, chunk, layout)


# --- engines ----------------------------------------------------------------------------------------------------


def _in_background(items: Iterator, depth: int = 1) -> Iterator:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message) -> bool:
        while not stop.is_set():
            try:
                ready.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as error:  # handed to the consumer
            put(("error", error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="batch-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _local_results(source, layout: _Layout, scorer: Scorer, chunk_rows: int, skip: set[int]) -> Iterator[_Scored]:
    def parsed() -> Iterator[tuple[_Chunk, _Parsed]]:
        for chunk in source.chunks(chunk_rows):
            if chunk.index not in skip:
                yield chunk, _parse(chunk, layout)

    for chunk, ready in _in_background(parsed()):
        yield _score(scorer, chunk, layout, ready)


def _outcome(future):
    try:
        return future.result()
    except ModuleNotFoundError as error:
        raise BatchJobError(
            f"a Dask worker cannot import {error.name!r}: install this project and its pinned dependencies in the "
            "workers' environment (see docs/batch-scoring.md)"
        ) from error


def _dask_results(
    source, layout: _Layout, model_bytes: bytes, chunk_rows: int, skip: set[int], scheduler: str | None, workers
) -> Iterator[_Scored]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        model = client.scatter(model_bytes, broadcast=True, hash=False)
        window = max(2, 2 * sum(client.nthreads().values()))  # chunks in flight: memory stays bounded
        done = as_completed()
        in_flight = 0
        for chunk in source.chunks(chunk_rows):
            if chunk.index in skip:
                continue
            done.add(client.submit(_score_on_worker, model, chunk, layout, pure=False))
            in_flight += 1
            while in_flight >= window:
                yield _outcome(next(done))
                in_flight -= 1
        for future in done:
            yield _outcome(future)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --- jobs -------------------------------------------------------------------------------------------------------


def _mart(work, datamart_url) -> Engine:
    return datamart.connect(datamart_url, work=work)


def _result(record: dict) -> JobResult:
    parameters = record["parameters"]
    return JobResult(
        job_id=record["job_id"],
        status=record["status"],
        model_id=record["model_id"],
        deployment_id=record["deployment_id"],
        input_path=Path(record["input_path"]),
        output_path=Path(record["output_path"]),
        rejects_path=Path(record["rejects_path"]),
        engine=parameters["engine"],
        scheduler=parameters.get("scheduler"),
        chunk_rows=parameters["chunk_rows"],
        log_payload=parameters["log_payload"],
        max_reject_share=parameters["max_reject_share"],
        rows_total=record["rows_total"],
        rows_read=record["rows_read"],
        rows_scored=record["rows_scored"],
        rows_rejected=record["rows_rejected"],
        chunks_done=record["chunks_done"],
        attempts=record["attempts"],
        seconds=record["seconds"],
        created_at=record["created_at"],
        started_at=record["started_at"],
        finished_at=record["finished_at"],
        updated_at=record["updated_at"],
        error=record["error"],
    )


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _check_share(share: float) -> float:
    if not 0.0 <= share <= 1.0:
        raise BatchJobError(f"max_reject_share must be between 0 and 1, got {share}")
    return float(share)


def _choose_engine(engine: str | None, scheduler: str | None) -> str:
    chosen = engine or ("dask" if scheduler else "local")
    if chosen not in ENGINES:
        raise BatchJobError(f"unknown engine {chosen!r}; choose one of {', '.join(ENGINES)}")
    if scheduler and chosen != "dask":
        raise BatchJobError("a scheduler address needs the dask engine")
    return chosen


def create_batch_job(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    model_id: str | None = None,
    deployment_id: str | None = None,
    rejects_path: str | os.PathLike | None = None,
    max_reject_share: float = MAX_REJECT_SHARE,
    chunk_rows: int = CHUNK_ROWS,
    log_payload: bool = False,
    engine: str | None = None,
    scheduler: str | None = None,
    work: str | os.PathLike | None = None,
    datamart_url: str | None = None,
) -> JobResult:
    """Record a queued batch job; :func:`resume_batch_job` runs it. Arguments as for :func:`run_batch_job`.

    Raises:
        BatchJobError: a missing input, an unknown model or deployment, or parameters that do not fit.
    """
    source = Path(input_path).expanduser().resolve()
    output = Path(output_path).expanduser().resolve()
    if not source.is_file():
        raise BatchJobError(f"{source}: no such input file")
    rejects = (
        Path(rejects_path).expanduser().resolve()
        if rejects_path is not None
        else output.with_name(f"{output.name.removesuffix(output.suffix)}.rejects.csv")
    )
    if _is_parquet(rejects):
        raise BatchJobError(f"{rejects}: the rejects file is always CSV")
    if len({source, output, rejects}) < 3:
        raise BatchJobError("the input, output and rejects files must be three different files")
    if chunk_rows < 1:
        raise BatchJobError(f"chunk_rows must be at least 1, got {chunk_rows}")
    engine = _choose_engine(engine, scheduler)
    max_reject_share = _check_share(max_reject_share)
    if (model_id is None) == (deployment_id is None):
        raise BatchJobError("give either a model id or a deployment id")
    if log_payload and deployment_id is None:
        raise BatchJobError("payload logging needs a deployment id: monitoring reads payload records by deployment")
    mart = _mart(work, datamart_url)
    try:
        if deployment_id is not None:
            model_id = get_deployment(deployment_id, engine=mart).model_id
        model_id = registry_for(work).get(model_id).model_id  # "-latest" becomes the version it means now
    except (DeploymentError, RegistryError) as error:
        raise BatchJobError(str(error)) from error
    job_id = datamart.new_id()
    datamart.insert_batch_job(
        mart,
        {
            "job_id": job_id,
            "status": QUEUED,
            "model_id": model_id,
            "deployment_id": deployment_id,
            "input_path": str(source),
            "output_path": str(output),
            "rejects_path": str(rejects),
            "parameters": {
                "chunk_rows": int(chunk_rows),
                "max_reject_share": max_reject_share,
                "log_payload": bool(log_payload),
                "engine": engine,
                "scheduler": scheduler,
                "input_fingerprint": _fingerprint(source),
                "work_dir": str(config.work_dir(work)),
                "job_dir": str(config.work_dir(work) / "batch" / job_id),
            },
            "created_at": datamart.utc_now(),
        },
    )
    return get_job(job_id, work=work, datamart_url=datamart_url)


def run_batch_job(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    model_id: str | None = None,
    deployment_id: str | None = None,
    rejects_path: str | os.PathLike | None = None,
    max_reject_share: float = MAX_REJECT_SHARE,
    chunk_rows: int = CHUNK_ROWS,
    log_payload: bool = False,
    engine: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    work: str | os.PathLike | None = None,
    datamart_url: str | None = None,
) -> JobResult:
    """Score ``input_path`` (CSV, or Parquet) into ``output_path`` (CSV, or Parquet by its suffix).

    Args:
        model_id: a registered model (``credit-risk-v2`` or ``credit-risk-latest``), or
        deployment_id: a deployment, whose model is used (one of the two).
        rejects_path: the rejects file (CSV); default ``<output name>.rejects.csv`` beside the output.
        max_reject_share: the job fails when more than this share of the rows is rejected.
        chunk_rows: rows held in memory and committed at a time.
        log_payload: store each scored row as a payload record of the deployment (needs ``deployment_id``).
        engine: ``"local"`` (default) or ``"dask"`` (default when ``scheduler`` is given).
        scheduler: a Dask scheduler address, e.g. ``tcp://host:8786``; none starts a local cluster.
        workers: worker processes of the local Dask cluster (default: one per core).
        progress: show a progress bar (rows, rate, time left) on stderr.
        work: the working directory (registry, data mart, job folders); default :func:`utils.config.work_dir`.
        datamart_url: the data mart's SQLAlchemy URL; default :func:`utils.datamart.datamart_url`.

    Returns:
        The completed job.

    Raises:
        BatchJobError: the job could not be created, or failed (then ``error.job`` is its record, and
            :func:`resume_batch_job` can take it up again).
    """
    job = create_batch_job(
        input_path,
        output_path,
        model_id=model_id,
        deployment_id=deployment_id,
        rejects_path=rejects_path,
        max_reject_share=max_reject_share,
        chunk_rows=chunk_rows,
        log_payload=log_payload,
        engine=engine,
        scheduler=scheduler,
        work=work,
        datamart_url=datamart_url,
    )
    return resume_batch_job(job.job_id, workers=workers, progress=progress, work=work, datamart_url=datamart_url)


def resume_batch_job(
    job_id: str,
    *,
    max_reject_share: float | None = None,
    engine: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    work: str | os.PathLike | None = None,
    datamart_url: str | None = None,
) -> JobResult:
    """Run a queued job, or take up a failed or killed one where it stopped; a completed job is returned as is.

    The input, output, model and chunk size are the job's own. ``max_reject_share``,
    ``engine`` and ``scheduler`` replace the job's when given: the output is the same
    whichever engine scores it. Do not resume a job that is still running in another process
    (a lock file refuses that where the system supports it).

    Raises:
        BatchJobError: no such job, the input changed since the job started, or the job failed again.
    """
    mart = _mart(work, datamart_url)
    record = datamart.read_batch_job(mart, job_id)
    if record is None:
        raise BatchJobError(f"no batch job with id {job_id!r}")
    parameters = dict(record["parameters"])
    if max_reject_share is not None:
        parameters["max_reject_share"] = _check_share(max_reject_share)
    if engine is not None or scheduler is not None:
        parameters["engine"] = _choose_engine(engine, scheduler)
        parameters["scheduler"] = scheduler
    return _JobRun(mart, record, parameters, workers=workers, progress=progress).run()


def get_job(job_id: str, *, work: str | os.PathLike | None = None, datamart_url: str | None = None) -> JobResult:
    """The batch job ``job_id`` as recorded now.

    Raises:
        BatchJobError: no such job.
    """
    record = datamart.read_batch_job(_mart(work, datamart_url), job_id)
    if record is None:
        raise BatchJobError(f"no batch job with id {job_id!r}")
    return _result(record)


def list_jobs(*, work: str | os.PathLike | None = None, datamart_url: str | None = None) -> pd.DataFrame:
    """All batch jobs, newest first: id, status, model, files, row counts, times and error."""
    return datamart.read_batch_jobs(_mart(work, datamart_url))


@contextlib.contextmanager
def _job_lock(folder: Path, job_id: str):
    """Hold the job's lock file; refuse a job that another living process is running."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks here (Windows): rely on the operator
        yield
        return
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise _Busy(f"batch job {job_id} is running in another process") from None
        yield


class _TooManyRejects(Exception):
    pass


class _Busy(BatchJobError):
    """The job is running in another process: nothing to record."""


class _JobRun:
    """One run of a job: scores the chunks not yet committed, then joins the parts into the files."""

    def __init__(self, mart: Engine, record: dict, parameters: dict, *, workers: int | None, progress: bool):
        self.mart = mart
        self.record = record
        self.parameters = parameters
        self.job_id = record["job_id"]
        self.folder = Path(parameters["job_dir"])
        self.input = Path(record["input_path"])
        self.output = Path(record["output_path"])
        self.rejects = Path(record["rejects_path"])
        self.workers = workers
        self.progress = progress

    def _part(self, index: int, kind: str) -> Path:
        return self.folder / f"{index:08d}.{kind}"

    def _fail(self, message: str) -> BatchJobError:
        datamart.update_batch_job(self.mart, self.job_id, status=FAILED, error=message)
        return BatchJobError(message, _result(datamart.read_batch_job(self.mart, self.job_id)))

    def run(self) -> JobResult:
        if self.record["status"] == COMPLETED:
            shutil.rmtree(self.folder, ignore_errors=True)
            return _result(self.record)
        try:
            with _job_lock(self.folder, self.job_id):
                return self._run()
        except BatchJobError as error:
            if error.job is not None or isinstance(error, _Busy):
                raise
            raise self._fail(error.message) from error
        except KeyboardInterrupt:
            self._fail("interrupted")
            raise
        except Exception as error:
            _LOG.exception("batch job %s failed", self.job_id)
            raise self._fail(f"{type(error).__name__}: {error}") from error

    def _run(self) -> JobResult:
        began = time.perf_counter()
        if not self.input.is_file():
            raise BatchJobError(f"{self.input}: the input file is gone")
        if _fingerprint(self.input) != self.parameters["input_fingerprint"]:
            raise BatchJobError(f"{self.input} changed since the job started: start a new job")
        source = _open_input(self.input)
        rows_total = self.record["rows_total"]
        if rows_total is None:
            rows_total = source.count_rows()
        datamart.update_batch_job(
            self.mart,
            self.job_id,
            status=RUNNING,
            error=None,
            parameters=self.parameters,
            rows_total=rows_total,
            attempts=self.record["attempts"] + 1,
            started_at=self.record["started_at"] or datamart.utc_now(),
        )
        layout = self._layout(source)
        model_file = registry_for(self.parameters["work_dir"]).get(self.record["model_id"]).model_file
        committed = datamart.read_batch_chunks(self.mart, self.job_id)
        heal = {int(c.chunk_index) for c in committed.itertuples() if not self._parts_intact(c)}
        skip = set(committed["chunk_index"].astype(int).tolist()) - heal
        chunk_rows = self.parameters["chunk_rows"]
        if self.parameters["engine"] == "dask":
            results = _dask_results(
                source, layout, model_file.read_bytes(), chunk_rows, skip, self.parameters["scheduler"], self.workers
            )
        else:
            scorer = Scorer(load_trusted(model_file), self.record["model_id"])
            results = _local_results(source, layout, scorer, chunk_rows, skip)
        rows_read, rows_rejected = int(committed["rows_read"].sum()), int(committed["rows_rejected"].sum())
        limit = self.parameters["max_reject_share"]
        bar = tqdm(
            total=rows_total,
            initial=rows_read,
            unit=" rows",
            unit_scale=True,
            desc=f"batch {self.job_id[:8]}",
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self._last = began
        try:
            # One BLAS thread, as on the Dask workers: the same arithmetic, and no fight over a shared machine.
            with threadpool_limits(limits=1, user_api="blas"), contextlib.closing(results):
                for result in results:
                    if self._commit(result, heal):
                        rows_read += result.rows_read
                        rows_rejected += result.rows_rejected
                        bar.update(result.rows_read)
                        bar.set_postfix(rejected=f"{rows_rejected:,}", refresh=False)
                    if rows_rejected > limit * rows_total and rows_read < rows_total:  # over the limit already
                        raise _TooManyRejects
        except _TooManyRejects:
            self._join_rejects(layout)
            raise BatchJobError(
                f"stopped after {rows_read:,} of about {rows_total:,} rows: {rows_rejected:,} rows rejected, more "
                f"than the limit of {limit:.1%} of the file (max_reject_share); the faults are in {self.rejects}"
            ) from None
        finally:
            bar.close()

        job = datamart.read_batch_job(self.mart, self.job_id)
        self._join_rejects(layout)
        share = job["rows_rejected"] / job["rows_read"] if job["rows_read"] else 0.0
        if share > self.parameters["max_reject_share"]:
            raise BatchJobError(
                f"{job['rows_rejected']:,} of {job['rows_read']:,} rows rejected ({share:.1%}), more than the "
                f"limit of {self.parameters['max_reject_share']:.1%} (max_reject_share); the faults are in "
                f"{self.rejects}"
            )
        self._join_output(layout)
        datamart.update_batch_job(
            self.mart,
            self.job_id,
            status=COMPLETED,
            finished_at=datamart.utc_now(),
            seconds=job["seconds"] + time.perf_counter() - self._last,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
        return _result(datamart.read_batch_job(self.mart, self.job_id))

    def _layout(self, source) -> _Layout:
        columns = source.columns
        missing = [name for name in FEATURES if name not in columns]
        if missing:
            raise BatchJobError(f"{self.input}: missing column(s) {', '.join(missing)}")
        repeated = sorted({name for name in columns if columns.count(name) > 1})
        if repeated:
            raise BatchJobError(f"{self.input}: column(s) named twice: {', '.join(repeated)}")
        clashes = [name for name in (*OUTPUT_COLUMNS, *REJECT_COLUMNS) if name in columns]
        if clashes:
            raise BatchJobError(f"{self.input}: has column(s) {', '.join(clashes)}, which the job adds; rename them")
        parquet_output = _is_parquet(self.output)
        return _Layout(
            job_id=self.job_id,
            model_id=self.record["model_id"],
            deployment_id=self.record["deployment_id"],
            columns=columns,
            header=source.header,
            text=isinstance(source, _CsvInput) and not parquet_output,
            parquet_output=parquet_output,
            log_payload=self.parameters["log_payload"],
        )

    def _parts_intact(self, chunk) -> bool:
        for kind, size in (("out", chunk.output_bytes), ("rej", chunk.rejects_bytes)):
            part = self._part(chunk.chunk_index, kind)
            if not part.is_file() or part.stat().st_size != size:
                return False
        return True

    def _write_part(self, path: Path, data: bytes | pd.DataFrame) -> int:
        partial = path.with_name(path.name + ".tmp")
        if isinstance(data, pd.DataFrame):
            table = pa.Table.from_pandas(data, schema=self._schema, preserve_index=False)
            pq.write_table(table.replace_schema_metadata(None), partial)
        else:
            partial.write_bytes(data)
        os.replace(partial, path)
        return path.stat().st_size

    @functools.cached_property
    def _schema(self):
        source = _open_input(self.input)
        if isinstance(source, _ParquetInput):
            fields = {f.name: f.type for f in source.file.schema_arrow}
        else:
            fields = {name: pa.string() for name in source.columns}
        for name in FEATURES:
            fields[name] = pa.int64() if name in NUMERIC_RANGES else pa.string()
        fields |= {
            "prediction": pa.string(),
            "probability_no_risk": pa.float64(),
            "probability_risk": pa.float64(),
            "transaction_id": pa.string(),
        }
        return pa.schema(list(fields.items()))

    def _commit(self, result: _Scored, heal: set[int]) -> bool:
        """Write the chunk's parts, then commit it with its payload records; False for a chunk only repaired."""
        output_bytes = self._write_part(self._part(result.index, "out"), result.output)
        rejects_bytes = self._write_part(self._part(result.index, "rej"), result.rejects)
        if result.index in heal:  # committed before, but its parts were lost: now rewritten, the same
            return False
        now = time.perf_counter()
        scored_at = datamart.utc_now()
        payload = result.payload or []
        for record in payload:
            record["scored_at"] = scored_at
        chunk = {
            "job_id": self.job_id,
            "chunk_index": result.index,
            "first_row": result.first_row,
            "rows_read": result.rows_read,
            "rows_scored": result.rows_scored,
            "rows_rejected": result.rows_rejected,
            "output_bytes": output_bytes,
            "rejects_bytes": rejects_bytes,
            "seconds": now - self._last,
            "committed_at": scored_at,
        }
        try:
            datamart.commit_batch_chunk(self.mart, chunk, payload)
        except sa.exc.IntegrityError as error:
            raise BatchJobError(
                f"chunk {result.index} or its payload records are already in the data mart; is the job running "
                f"elsewhere? ({error.orig})"
            ) from error
        self._last = now
        return True

    def _committed(self) -> pd.DataFrame:
        chunks = datamart.read_batch_chunks(self.mart, self.job_id)
        for chunk in chunks.itertuples():
            if not self._parts_intact(chunk):
                raise BatchJobError(f"the parts of chunk {chunk.chunk_index} in {self.folder} are missing or damaged")
        return chunks

    def _join(self, target: Path, header: bytes, kind: str, write: Callable | None = None) -> None:
        """Join the committed parts into ``target`` through a temporary file, renamed when complete."""
        chunks = self._committed()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{self.job_id}.tmp")
        try:
            if write is not None:
                write(partial, [self._part(index, kind) for index in chunks["chunk_index"]])
            else:
                with open(partial, "wb") as joined:
                    joined.write(header)
                    for index in chunks["chunk_index"]:
                        with open(self._part(index, kind), "rb") as part:
                            shutil.copyfileobj(part, joined, 1 << 22)
                    joined.flush()
                    os.fsync(joined.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        _fsync_folder(target.parent)

    def _header(self, layout: _Layout, added: tuple[str, ...]) -> bytes:
        if layout.header:
            text = f"{layout.header.rstrip(_EOL)},{','.join(added)}\n"
        else:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow([*layout.columns, *added])
            text = buffer.getvalue()
        return text.encode(_ENCODING, "surrogateescape")

    def _join_rejects(self, layout: _Layout) -> None:
        self._join(self.rejects, self._header(layout, REJECT_COLUMNS), "rej")

    def _join_output(self, layout: _Layout) -> None:
        if not layout.parquet_output:
            self._join(self.output, self._header(layout, OUTPUT_COLUMNS), "out")
            return

        def write(partial: Path, parts: list[Path]) -> None:
            with pq.ParquetWriter(partial, self._schema) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part))

        self._join(self.output, b"", "out", write)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every system can open a folder
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# --- command line -----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.batch",
        description="Score a file of applicants with a registered model or a deployment, in a resumable batch job.",
        epilog="Examples: python -m utils.batch --input applicants.csv --model-id credit-risk-latest "
        "--output scored.csv;  python -m utils.batch --resume JOB_ID;  python -m utils.batch --list",
    )
    parser.add_argument("--input", type=Path, metavar="FILE", help="CSV or Parquet file of applicants")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model-id", metavar="ID", help="registered model, e.g. credit-risk-v2 or credit-risk-latest")
    model.add_argument("--deployment-id", metavar="ID", help="deployment whose model scores the file")
    parser.add_argument("--output", type=Path, metavar="FILE", help="CSV, or Parquet when it ends in .parquet")
    parser.add_argument("--rejects", type=Path, metavar="FILE", help="CSV; default <output name>.rejects.csv")
    parser.add_argument(
        "--max-reject-share",
        type=float,
        metavar="SHARE",
        help=f"fail when more than this share of rows is rejected (default {MAX_REJECT_SHARE})",
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=CHUNK_ROWS, metavar="N", help=f"rows per chunk (default {CHUNK_ROWS})"
    )
    parser.add_argument("--log-payload", action="store_true", help="store scored rows as payload (needs a deployment)")
    parser.add_argument("--engine", choices=ENGINES, help="local (default) or dask")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786 (default: local)")
    parser.add_argument("--workers", type=int, metavar="N", help="processes of the local Dask cluster (default: cores)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--resume", metavar="JOB_ID", help="take up a failed or killed job where it stopped")
    action.add_argument("--status", metavar="JOB_ID", help="show a job and exit")
    action.add_argument("--list", action="store_true", help="list the jobs and exit")
    parser.add_argument("--work-dir", type=Path, metavar="DIR", help="default $CREDIT_WORKDIR, else work/")
    parser.add_argument(
        "--datamart-url", metavar="URL", help="default $CREDIT_DATAMART_URL, else SQLite in the work dir"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line: run, resume or show batch jobs; exit status 0 when the job completed, 1 when it failed."""
    parser = _parser()
    args = parser.parse_args(argv)
    where = {"work": args.work_dir, "datamart_url": args.datamart_url}
    try:
        if args.list:
            jobs = list_jobs(**where)
            if jobs.empty:
                print("no batch jobs")
                return 0
            jobs["created_at"] = jobs["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
            jobs["seconds"] = jobs["seconds"].astype(float).round(1)
            shown = ["job_id", "status", "model_id", "rows_read", "rows_scored", "rows_rejected", "seconds"]
            print(jobs[[*shown, "created_at", "error"]].fillna("").to_string(index=False))
            return 0
        if args.status:
            job = get_job(args.status, **where)
            print(job.summary())
            for name in ("input_path", "output_path", "rejects_path", "model_id", "deployment_id", "engine"):
                print(f"  {name}: {getattr(job, name)}")
            return 0
        engine = {"engine": args.engine, "scheduler": args.scheduler, "workers": args.workers}
        if args.resume:
            given = [
                flag
                for flag, value in (
                    ("--input", args.input),
                    ("--output", args.output),
                    ("--model-id", args.model_id),
                    ("--deployment-id", args.deployment_id),
                    ("--rejects", args.rejects),
                    ("--log-payload", args.log_payload),
                )
                if value
            ]
            if given:
                parser.error(f"--resume takes the job's own files and model; leave out {', '.join(given)}")
            job_id = args.resume
            print(f"resuming batch job {job_id}", flush=True)
        else:
            if args.input is None or args.output is None or not (args.model_id or args.deployment_id):
                parser.error("a new job needs --input, --output and --model-id or --deployment-id")
            job = create_batch_job(
                args.input,
                args.output,
                model_id=args.model_id,
                deployment_id=args.deployment_id,
                rejects_path=args.rejects,
                max_reject_share=MAX_REJECT_SHARE if args.max_reject_share is None else args.max_reject_share,
                chunk_rows=args.chunk_rows,
                log_payload=args.log_payload,
                engine=args.engine,
                scheduler=args.scheduler,
                **where,
            )
            job_id = job.job_id
            print(f"batch job {job_id}: {job.input_path} -> {job.output_path} with {job.model_id}", flush=True)
        job = resume_batch_job(
            job_id,
            max_reject_share=args.max_reject_share if args.resume else None,
            progress=not args.no_progress,
            **engine,
            **where,
        )
    except BatchJobError as error:
        print(f"error: {error.message}", file=sys.stderr)
        if error.job is not None:
            print(f"resume it with: python -m utils.batch --resume {error.job.job_id}", file=sys.stderr)
        return 1
    print(job.summary())
    print(f"  output:  {job.output_path}")
    print(f"  rejects: {job.rejects_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
