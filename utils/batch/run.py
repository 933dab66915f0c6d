"""One run of a batch job: score the chunks not yet committed, commit each, then join the parts into the files.

Each chunk's results go to part files first; then the chunk is committed (:func:`utils.datamart.commit_batch_chunk`):
its payload records when the job logs payload, in transactions of a bounded number of records (so that online
scoring never waits long for the data mart), then the chunk's row in one small transaction. A run killed at any
moment therefore leaves a job that the next run takes up without losing or repeating a row or a record: a chunk
without its row is scored again, and its payload records replace the ones it had stored.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from utils import config, datamart
from utils.batch.chunks import ChunkLayout, Scored, chunk_layout
from utils.batch.engines import results
from utils.batch.inputs import CsvInput, ParquetInput, fingerprint, open_input
from utils.batch.parts import OUTPUT, REJECTS, JobFolder
from utils.batch.spec import COMPLETED, FAILED, RUNNING, BatchJobError, JobResult
from utils.batch.threads import behind
from utils.contract import observed_ranges
from utils.registry import RegistryError, registry_for
from utils.times import utc_now

_LOG = logging.getLogger(__name__)


class _TooManyRejects(Exception):
    pass


class Busy(BatchJobError):
    """The job is running in another process: nothing to record."""


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
            raise Busy(f"batch job {job_id} is running in another process") from None
        yield


class JobRun:
    """One run of a job, from its record and its parameters for this run (reject limit, engine, scheduler)."""

    def __init__(self, mart: Engine, record: dict, parameters: dict, *, workers: int | None, progress: bool):
        self.mart = mart
        self.record = record
        self.parameters = parameters
        self.job_id = record["job_id"]
        self.input = Path(record["input_path"])
        self.output = Path(record["output_path"])
        self.rejects = Path(record["rejects_path"])
        self.folder = JobFolder(Path(parameters["job_dir"]), self.job_id, self.input)
        self.workers = workers
        self.progress = progress
        self._last = time.perf_counter()  # when the last chunk was committed (or the run began)

    def run(self) -> JobResult:
        """Run the job to completion; a completed job is returned as it is.

        Raises:
            BatchJobError: the job failed (then it is recorded as failed, and ``error.job`` is its record), or it
                is running in another process.
        """
        if self.record["status"] == COMPLETED:
            self.folder.remove()
            return JobResult.from_record(self.record)
        try:
            with _job_lock(self.folder.path, self.job_id):
                return self._run()
        except BatchJobError as error:
            if error.job is not None or isinstance(error, Busy):
                raise
            raise self._fail(error.message) from error
        except RegistryError as error:  # the model file was damaged or replaced since the job was made
            raise self._fail(str(error)) from error
        except KeyboardInterrupt:
            self._fail("interrupted")
            raise
        except Exception as error:
            _LOG.exception("batch job %s failed", self.job_id)
            raise self._fail(f"{type(error).__name__}: {error}") from error

    def _fail(self, message: str) -> BatchJobError:
        datamart.update_batch_job(self.mart, self.job_id, status=FAILED, error=message)
        return BatchJobError(message, self._job())

    def _job(self) -> JobResult:
        return JobResult.from_record(datamart.read_batch_job(self.mart, self.job_id))

    def _run(self) -> JobResult:
        self._last = time.perf_counter()
        source = self._open()
        rows_total = self._start(source)
        layout = chunk_layout(
            source,
            self.output,
            job_id=self.job_id,
            model_id=self.record["model_id"],
            deployment_id=self.record["deployment_id"],
            log_payload=self.parameters["log_payload"],
            observed=observed_ranges(config.layout(self.parameters["work_dir"]).train),
        )
        model_file = registry_for(self.parameters["work_dir"]).get(self.record["model_id"]).model_file
        committed = datamart.read_batch_chunks(self.mart, self.job_id)
        heal = {int(c.chunk_index) for c in committed.itertuples() if not self.folder.intact(c)}
        skip = set(committed["chunk_index"].astype(int).tolist()) - heal
        scored = results(
            self.parameters["engine"],
            source,
            layout,
            model_file,
            chunk_rows=self.parameters["chunk_rows"],
            skip=skip,
            scheduler=self.parameters["scheduler"],
            workers=self.workers,
        )
        self._score(scored, layout, heal, rows_total, committed)
        return self._finish(layout)

    def _open(self) -> CsvInput | ParquetInput:
        """The job's input, refused when it is gone or changed since the job started."""
        if not self.input.is_file():
            raise BatchJobError(f"{self.input}: the input file is gone")
        if fingerprint(self.input) != self.parameters["input_fingerprint"]:
            raise BatchJobError(f"{self.input} changed since the job started: start a new job")
        return open_input(self.input)

    def _start(self, source: CsvInput | ParquetInput) -> int:
        """Record the job as running, with this run's parameters; the input's rows (counted on the first run)."""
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
            started_at=self.record["started_at"] or utc_now(),
        )
        return rows_total

    def _score(
        self, scored: Iterator[Scored], layout: ChunkLayout, heal: set[int], rows_total: int, committed: pd.DataFrame
    ) -> None:
        """Commit each scored chunk in a writer thread, with a progress bar; stop once the rejects are over the limit
        for the file."""
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

        def commit(result: Scored) -> None:
            if self._commit(result, heal):
                bar.update(result.rows_read)

        try:
            # One BLAS thread, as on the Dask workers: the same arithmetic, and no fight over a shared machine.
            with threadpool_limits(limits=1, user_api="blas"), contextlib.closing(scored), behind(commit) as writer:
                for result in scored:  # scored here while the writer thread writes and commits the one before
                    writer.put(result)
                    if result.index not in heal:
                        rows_read += result.rows_read
                        rows_rejected += result.rows_rejected
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

    def _commit(self, result: Scored, heal: set[int]) -> bool:
        """Write the chunk's parts, then commit it with its payload records; False for a chunk only repaired."""
        output_bytes = self.folder.write(result.index, OUTPUT, result.output)
        rejects_bytes = self.folder.write(result.index, REJECTS, result.rejects)
        if result.index in heal:  # committed before, but its parts were lost: now rewritten, the same
            return False
        now = time.perf_counter()
        scored_at = utc_now()
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
        except IntegrityError as error:
            raise BatchJobError(
                f"chunk {result.index} or its payload records are already in the data mart; is the job running "
                f"elsewhere? ({error.orig})"
            ) from error
        self._last = now
        return True

    def _finish(self, layout: ChunkLayout) -> JobResult:
        """Join the files, unless the job is over the reject limit; record it as completed."""
        job = datamart.read_batch_job(self.mart, self.job_id)
        self._join_rejects(layout)
        share = job["rows_rejected"] / job["rows_read"] if job["rows_read"] else 0.0
        if share > self.parameters["max_reject_share"]:
            raise BatchJobError(
                f"{job['rows_rejected']:,} of {job['rows_read']:,} rows rejected ({share:.1%}), more than the "
                f"limit of {self.parameters['max_reject_share']:.1%} (max_reject_share); the faults are in "
                f"{self.rejects}"
            )
        self.folder.join_output(self.output, self._committed(), layout)
        datamart.update_batch_job(
            self.mart,
            self.job_id,
            status=COMPLETED,
            finished_at=utc_now(),
            seconds=job["seconds"] + time.perf_counter() - self._last,
        )
        self.folder.remove()
        return self._job()

    def _committed(self) -> list[int]:
        """The committed chunks' indices, in order, once their parts are checked."""
        chunks = datamart.read_batch_chunks(self.mart, self.job_id)
        self.folder.check(chunks)
        return chunks["chunk_index"].tolist()

    def _join_rejects(self, layout: ChunkLayout) -> None:
        self.folder.join_rejects(self.rejects, self._committed(), layout)
