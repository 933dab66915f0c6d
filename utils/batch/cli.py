"""Command line: ``python -m utils.batch --help``; see ``docs/batch-scoring.md``.

The parser needs only :mod:`utils.batch.spec`; the jobs (and the scoring libraries) are imported once the
arguments are parsed, so that ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils import config
from utils.batch.spec import (
    CHUNK_ROWS,
    ENGINES,
    MAX_REJECT_SHARE,
    BatchJobError,
    BatchJobSpec,
    JobResult,
    UnusableModel,
)


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
    parser.add_argument("--work-dir", type=Path, metavar="DIR", help=config.WORK_DIR_HELP)
    parser.add_argument(
        "--datamart-url", metavar="URL", help="default $CREDIT_DATAMART_URL, else SQLite in the work dir"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _spec(args: argparse.Namespace) -> BatchJobSpec:
    """The new job the arguments ask for."""
    return BatchJobSpec(
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
    )


def _print_jobs(where: dict) -> None:
    from utils.batch.jobs import list_jobs

    jobs = list_jobs(**where)
    if jobs.empty:
        print("no batch jobs")
        return
    jobs["created_at"] = jobs["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    jobs["seconds"] = jobs["seconds"].astype(float).round(1)
    shown = ["job_id", "status", "model_id", "rows_read", "rows_scored", "rows_rejected", "seconds"]
    print(jobs[[*shown, "created_at", "error"]].fillna("").to_string(index=False))


def _print_job(job_id: str, where: dict) -> None:
    from utils.batch.jobs import get_job

    job = get_job(job_id, **where)
    print(job.summary())
    for name in ("input_path", "output_path", "rejects_path", "model_id", "deployment_id", "engine"):
        print(f"  {name}: {getattr(job, name)}")


def _job_to_run(parser: argparse.ArgumentParser, args: argparse.Namespace, where: dict) -> str:
    """The id of the job to run: the one to resume, else a new one created from the arguments."""
    from utils.batch.jobs import create_batch_job

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
        print(f"resuming batch job {args.resume}", flush=True)
        return args.resume
    if args.input is None or args.output is None or not (args.model_id or args.deployment_id):
        parser.error("a new job needs --input, --output and --model-id or --deployment-id")
    job = create_batch_job(_spec(args), **where)
    print(f"batch job {job.job_id}: {job.input_path} -> {job.output_path} with {job.model_id}", flush=True)
    return job.job_id


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, where: dict) -> JobResult:
    from utils.batch.jobs import resume_batch_job

    job_id = _job_to_run(parser, args, where)
    return resume_batch_job(
        job_id,
        max_reject_share=args.max_reject_share if args.resume else None,
        progress=not args.no_progress,
        engine=args.engine,
        scheduler=args.scheduler,
        workers=args.workers,
        **where,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: run, resume or show batch jobs.

    Exit status 0 when the job completed, 1 when it failed or could not be made, 2 when the command line is wrong:
    a malformed option, or a model that cannot be used (a malformed, over-long or unknown model id, or a model file
    that cannot be loaded); no job is made then.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    where = {"work": args.work_dir, "datamart_url": args.datamart_url}
    try:
        if args.list:
            _print_jobs(where)
            return 0
        if args.status:
            _print_job(args.status, where)
            return 0
        job = _run(parser, args, where)
    except BatchJobError as error:
        print(f"error: {error.message}", file=sys.stderr)
        if error.job is not None:
            print(f"resume it with: python -m utils.batch --resume {error.job.job_id}", file=sys.stderr)
        return 2 if isinstance(error, UnusableModel) else 1
    print(job.summary())
    print(f"  output:  {job.output_path}")
    print(f"  rejects: {job.rejects_path}")
    return 0
