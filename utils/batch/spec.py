"""What a batch job is: its specification, its record in the data mart, its error, and the names all parts share."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

#: Rows per chunk: what is held in memory, scored and committed at a time.
CHUNK_ROWS = 50_000
#: Largest share of rejected rows a job accepts before it fails.
MAX_REJECT_SHARE = 0.05
#: Columns a job adds to the input's in the output file; ``out_of_range`` names the fields of a row inside the
#: contract but outside the training data's ranges (separated by :data:`FIELD_SEPARATOR`; empty when none).
OUTPUT_COLUMNS = ("prediction", "probability_no_risk", "probability_risk", "transaction_id", "out_of_range")
#: Separates the field names in ``out_of_range``.
FIELD_SEPARATOR = ";"
#: Columns a job adds to the input's in the rejects file.
REJECT_COLUMNS = ("input_row", "reject_reason")
#: Job states.
QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
ENGINES = ("local", "dask")
#: Separates the faults of one row in ``reject_reason``.
FAULT_SEPARATOR = " | "

_PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: Path) -> bool:
    """Whether a file is Parquet, by its suffix (anything else is CSV)."""
    return path.suffix.lower() in _PARQUET_SUFFIXES


class BatchJobError(RuntimeError):
    """A batch job that cannot be created, run or resumed; ``job`` is its record when it exists."""

    def __init__(self, message: str, job: JobResult | None = None):
        super().__init__(message)
        self.message = message
        self.job = job


class UnusableModel(BatchJobError):
    """A new job's model cannot be used: its id is malformed or unknown, or its model file cannot be loaded."""


def check_share(share: float) -> float:
    """A reject limit, refused unless it is a share (0 to 1)."""
    if not 0.0 <= share <= 1.0:
        raise BatchJobError(f"max_reject_share must be between 0 and 1, got {share}")
    return float(share)


def choose_engine(engine: str | None, scheduler: str | None) -> str:
    """The engine to run on: ``engine``, else ``dask`` when there is a scheduler, else ``local``."""
    chosen = engine or ("dask" if scheduler else "local")
    if chosen not in ENGINES:
        raise BatchJobError(f"unknown engine {chosen!r}; choose one of {', '.join(ENGINES)}")
    if scheduler and chosen != "dask":
        raise BatchJobError("a scheduler address needs the dask engine")
    return chosen


@dataclass(frozen=True)
class BatchJobSpec:
    """A batch job as it is asked for: what to score, with which model, into which files, and how.

    Attributes:
        input_path: the applicants, CSV or Parquet (``.parquet``, ``.pq``).
        output_path: the scored rows, CSV or Parquet by its suffix.
        model_id: a registered model (``credit-risk-v2`` or ``credit-risk-latest``), or
        deployment_id: a deployment, whose model is used (one of the two).
        rejects_path: the rejects file (CSV); default ``<output name>.rejects.csv`` beside the output.
        max_reject_share: the job fails when more than this share of the rows is rejected.
        chunk_rows: rows held in memory and committed at a time.
        log_payload: store each scored row as a payload record of the deployment (needs ``deployment_id``).
        engine: ``"local"`` (default) or ``"dask"`` (default when ``scheduler`` is given).
        scheduler: a Dask scheduler address, e.g. ``tcp://host:8786``; none starts a local cluster.
    """

    input_path: str | os.PathLike
    output_path: str | os.PathLike
    model_id: str | None = None
    deployment_id: str | None = None
    rejects_path: str | os.PathLike | None = None
    max_reject_share: float = MAX_REJECT_SHARE
    chunk_rows: int = CHUNK_ROWS
    log_payload: bool = False
    engine: str | None = None
    scheduler: str | None = None

    def checked(self) -> BatchJobSpec:
        """The spec with absolute paths, its rejects file and engine filled in, checked before a job exists.

        Raises:
            BatchJobError: a missing input, files that clash, or parameters that do not fit.
        """
        source = Path(self.input_path).expanduser().resolve()
        output = Path(self.output_path).expanduser().resolve()
        if not source.is_file():
            raise BatchJobError(f"{source}: no such input file")
        rejects = (
            Path(self.rejects_path).expanduser().resolve()
            if self.rejects_path is not None
            else output.with_name(f"{output.name.removesuffix(output.suffix)}.rejects.csv")
        )
        if is_parquet(rejects):
            raise BatchJobError(f"{rejects}: the rejects file is always CSV")
        if len({source, output, rejects}) < 3:
            raise BatchJobError("the input, output and rejects files must be three different files")
        if self.chunk_rows < 1:
            raise BatchJobError(f"chunk_rows must be at least 1, got {self.chunk_rows}")
        engine = choose_engine(self.engine, self.scheduler)
        max_reject_share = check_share(self.max_reject_share)
        if (self.model_id is None) == (self.deployment_id is None):
            raise BatchJobError("give either a model id or a deployment id")
        if self.log_payload and self.deployment_id is None:
            raise BatchJobError("payload logging needs a deployment id: monitoring reads payload records by deployment")
        return replace(
            self,
            input_path=source,
            output_path=output,
            rejects_path=rejects,
            max_reject_share=max_reject_share,
            chunk_rows=int(self.chunk_rows),
            log_payload=bool(self.log_payload),
            engine=engine,
        )

    def parameters(self) -> dict:
        """The job's parameters as the data mart records them (of a :meth:`checked` spec)."""
        return {
            "chunk_rows": self.chunk_rows,
            "max_reject_share": self.max_reject_share,
            "log_payload": self.log_payload,
            "engine": self.engine,
            "scheduler": self.scheduler,
        }


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

    @classmethod
    def from_record(cls, record: dict) -> JobResult:
        """The job from its row of ``batch_jobs`` (:func:`utils.datamart.read_batch_job`)."""
        parameters = record["parameters"]
        return cls(
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
            **{name: record[name] for name in _COUNTS_AND_TIMES},
        )

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


_COUNTS_AND_TIMES = (
    "rows_total",
    "rows_read",
    "rows_scored",
    "rows_rejected",
    "chunks_done",
    "attempts",
    "seconds",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "error",
)
