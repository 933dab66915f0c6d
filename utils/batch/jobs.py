"""The batch job lifecycle: create a job from its :class:`BatchJobSpec`, run it, resume it, look jobs up."""

from __future__ import annotations

import os

import pandas as pd
from sqlalchemy.engine import Engine

from utils import config, datamart
from utils.batch.inputs import fingerprint
from utils.batch.run import JobRun
from utils.batch.spec import (
    QUEUED,
    BatchJobError,
    BatchJobSpec,
    JobResult,
    UnusableModel,
    check_share,
    choose_engine,
)
from utils.deployment import DeploymentError, get_deployment
from utils.registry import RegistryError, registry_for
from utils.times import utc_now


def _mart(work, datamart_url) -> Engine:
    return datamart.connect(datamart_url, work=work)


def _as_spec(input_path: BatchJobSpec | str | os.PathLike, output_path, options: dict) -> BatchJobSpec:
    """The job's spec: given whole, or built from the input and output paths and the other fields."""
    if isinstance(input_path, BatchJobSpec):
        if output_path is not None or options:
            raise TypeError("give either a BatchJobSpec or the job's input path, output path and options")
        return input_path
    if output_path is None:
        raise TypeError("a batch job needs an output path")
    return BatchJobSpec(input_path, output_path, **options)


def _model_id(spec: BatchJobSpec, mart: Engine, work) -> str:
    """The registered model the job scores with, a deployment's or a ``-latest`` one fixed to its version now;
    loaded once, so that a job is never made with a model file that cannot be loaded.

    Raises:
        UnusableModel: the model id is malformed or unknown, or the model file is damaged or untrusted.
        BatchJobError: no such deployment.
    """
    model_id = spec.model_id
    if spec.deployment_id is not None:
        try:
            model_id = get_deployment(spec.deployment_id, engine=mart).model_id
        except DeploymentError as error:
            raise BatchJobError(str(error)) from error
    try:
        registry = registry_for(work)
        model_id = registry.get(model_id).model_id
        registry.load(model_id)
    except RegistryError as error:
        raise UnusableModel(str(error)) from error
    return model_id


def create_batch_job(
    input_path: BatchJobSpec | str | os.PathLike,
    output_path: str | os.PathLike | None = None,
    *,
    work: str | os.PathLike | None = None,
    datamart_url: str | None = None,
    **options,
) -> JobResult:
    """Record a queued batch job; :func:`resume_batch_job` runs it. Arguments as for :func:`run_batch_job`.

    Raises:
        BatchJobError: a missing input, an unknown model or deployment, or parameters that do not fit.
    """
    spec = _as_spec(input_path, output_path, options).checked()
    mart = _mart(work, datamart_url)
    model_id = _model_id(spec, mart, work)
    job_id = datamart.new_id()
    where = config.layout(work)
    datamart.insert_batch_job(
        mart,
        {
            "job_id": job_id,
            "status": QUEUED,
            "model_id": model_id,
            "deployment_id": spec.deployment_id,
            "input_path": str(spec.input_path),
            "output_path": str(spec.output_path),
            "rejects_path": str(spec.rejects_path),
            "parameters": {
                **spec.parameters(),
                "input_fingerprint": fingerprint(spec.input_path),
                "work_dir": str(where.root),
                "job_dir": str(where.batch / job_id),
            },
            "created_at": utc_now(),
        },
    )
    return get_job(job_id, work=work, datamart_url=datamart_url)


def run_batch_job(
    input_path: BatchJobSpec | str | os.PathLike,
    output_path: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    work: str | os.PathLike | None = None,
    datamart_url: str | None = None,
    **options,
) -> JobResult:
    """Score a file of applicants (CSV, or Parquet) into an output file (CSV, or Parquet by its suffix).

    Either ``run_batch_job(BatchJobSpec(...))``, or ``run_batch_job(input_path, output_path, **options)`` with
    ``options`` the other fields of :class:`BatchJobSpec` (which documents them all): ``model_id`` or
    ``deployment_id``, ``rejects_path``, ``max_reject_share``, ``chunk_rows``, ``log_payload``, ``engine`` and
    ``scheduler``.

    Args:
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
    job = create_batch_job(input_path, output_path, work=work, datamart_url=datamart_url, **options)
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
        parameters["max_reject_share"] = check_share(max_reject_share)
    if engine is not None or scheduler is not None:
        parameters["engine"] = choose_engine(engine, scheduler)
        parameters["scheduler"] = scheduler
    return JobRun(mart, record, parameters, workers=workers, progress=progress).run()


def get_job(job_id: str, *, work: str | os.PathLike | None = None, datamart_url: str | None = None) -> JobResult:
    """The batch job ``job_id`` as recorded now.

    Raises:
        BatchJobError: no such job.
    """
    record = datamart.read_batch_job(_mart(work, datamart_url), job_id)
    if record is None:
        raise BatchJobError(f"no batch job with id {job_id!r}")
    return JobResult.from_record(record)


def list_jobs(*, work: str | os.PathLike | None = None, datamart_url: str | None = None) -> pd.DataFrame:
    """All batch jobs, newest first: id, status, model, files, row counts, times and error."""
    return datamart.read_batch_jobs(_mart(work, datamart_url))
