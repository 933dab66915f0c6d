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
files in the job's folder; then the chunk is committed: its payload records when ``log_payload``
is on, :data:`utils.datamart.PAYLOAD_COMMIT_ROWS` per transaction, then its row. A job killed at
any moment therefore resumes (:func:`resume_batch_job`) without losing or repeating an output row
or a payload record (a chunk without its row is scored again, its payload records replacing
those it had stored), and the output file appears only when complete: the parts are joined into
a temporary file next to it, which is then renamed.

A CSV record spans lines only inside a well-formed quoted field; a quote left open costs its own
line, rejected with its row number, and a row with bytes that are not UTF-8 in a feature is
rejected, naming the column.

Engines: ``local`` scores in this process, overlapping the work on threads: one cuts the next
chunk from the file, one parses it with pyarrow's CSV reader, this one scores, and a writer thread
writes the part files and commits each chunk (bounded queues: memory stays flat); ``dask`` sends
the chunks to a Dask cluster, a local one by default or any scheduler (``scheduler="tcp://host:8786"``);
the job's process still cuts the chunks and writes and commits them, in the same threads. The
workers run the same code on the same chunks, so the output is the same byte for byte.

A job is asked for with a :class:`BatchJobSpec` (or the same fields as keyword arguments of
:func:`run_batch_job` and :func:`create_batch_job`). Command line: ``python -m utils.batch --help``;
see ``docs/batch-scoring.md``.

The modules, each using only those before it:

- :mod:`~utils.batch.spec`: the job's specification and record, its error, shared names and limits;
- :mod:`~utils.batch.inputs`: cutting the input into chunks (CSV record bytes, Parquet row batches);
- :mod:`~utils.batch.parse`: a CSV chunk's records parsed by pyarrow, the malformed and unreadable set apart;
- :mod:`~utils.batch.chunks`: scoring one chunk (validate, score, render output, rejects, payload);
- :mod:`~utils.batch.parts`: the job folder's part files and their joining into the output and rejects files;
- :mod:`~utils.batch.threads`: the reader and writer threads around the scoring;
- :mod:`~utils.batch.engines`: the local and Dask engines;
- :mod:`~utils.batch.run`: one run of a job (lock, score, commit each chunk, join, record);
- :mod:`~utils.batch.jobs`: the lifecycle: create, run, resume, get and list jobs;
- :mod:`~utils.batch.cli`: the command line (``python -m utils.batch``).
"""

from typing import TYPE_CHECKING

from utils.lazy import lazy_exports

#: Each public name and the module defining it, imported when the name is first used (see :mod:`utils.lazy`).
_EXPORTS = {
    "CHUNK_ROWS": "utils.batch.spec",
    "COMPLETED": "utils.batch.spec",
    "ENGINES": "utils.batch.spec",
    "FAILED": "utils.batch.spec",
    "FAULT_SEPARATOR": "utils.batch.spec",
    "MAX_REJECT_SHARE": "utils.batch.spec",
    "OUTPUT_COLUMNS": "utils.batch.spec",
    "QUEUED": "utils.batch.spec",
    "REJECT_COLUMNS": "utils.batch.spec",
    "RUNNING": "utils.batch.spec",
    "BatchJobError": "utils.batch.spec",
    "BatchJobSpec": "utils.batch.spec",
    "JobResult": "utils.batch.spec",
    "UnusableModel": "utils.batch.spec",
    "create_batch_job": "utils.batch.jobs",
    "get_job": "utils.batch.jobs",
    "list_jobs": "utils.batch.jobs",
    "main": "utils.batch.cli",
    "resume_batch_job": "utils.batch.jobs",
    "run_batch_job": "utils.batch.jobs",
}
__all__ = [
    "CHUNK_ROWS",
    "COMPLETED",
    "ENGINES",
    "FAILED",
    "FAULT_SEPARATOR",
    "MAX_REJECT_SHARE",
    "OUTPUT_COLUMNS",
    "QUEUED",
    "REJECT_COLUMNS",
    "RUNNING",
    "BatchJobError",
    "BatchJobSpec",
    "JobResult",
    "UnusableModel",
    "create_batch_job",
    "get_job",
    "list_jobs",
    "main",
    "resume_batch_job",
    "run_batch_job",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from utils.batch.cli import main
    from utils.batch.jobs import create_batch_job, get_job, list_jobs, resume_batch_job, run_batch_job
    from utils.batch.spec import (
        CHUNK_ROWS,
        COMPLETED,
        ENGINES,
        FAILED,
        FAULT_SEPARATOR,
        MAX_REJECT_SHARE,
        OUTPUT_COLUMNS,
        QUEUED,
        REJECT_COLUMNS,
        RUNNING,
        BatchJobError,
        BatchJobSpec,
        JobResult,
        UnusableModel,
    )
