"""The engines that score a job's chunks: ``local`` (in this process, the next chunks cut from the file in one
background thread and parsed by pyarrow in another) and ``dask`` (a local cluster, or any scheduler). Both yield
the same results per chunk, in the order they finish."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from utils.batch.chunks import ChunkLayout, Scored, score_chunk, score_on_worker
from utils.batch.inputs import Chunk, CsvInput, ParquetInput
from utils.batch.parse import Parsed, parse
from utils.batch.spec import BatchJobError
from utils.batch.threads import ahead
from utils.registry import load_trusted
from utils.scoring import Scorer


def local_results(
    source: CsvInput | ParquetInput, layout: ChunkLayout, scorer: Scorer, chunk_rows: int, skip: set[int]
) -> Iterator[Scored]:
    """Score the chunks not in ``skip`` in this process, in order."""

    def parsed() -> Iterator[tuple[Chunk, Parsed]]:  # each chunk cut from the file in one thread, parsed in another
        for chunk in ahead(source.chunks(chunk_rows), name="batch-cutter"):
            if chunk.index not in skip:
                yield chunk, parse(chunk, layout.columns, layout.text)

    for chunk, ready in ahead(parsed(), name="batch-parser"):
        yield score_chunk(scorer, chunk, layout, ready)


def _outcome(future):
    try:
        return future.result()
    except ModuleNotFoundError as error:
        raise BatchJobError(
            f"a Dask worker cannot import {error.name!r}: install this project and its pinned dependencies in the "
            "workers' environment (see docs/batch-scoring.md)"
        ) from error


def dask_results(
    source: CsvInput | ParquetInput,
    layout: ChunkLayout,
    model_bytes: bytes,
    chunk_rows: int,
    skip: set[int],
    scheduler: str | None,
    workers: int | None,
) -> Iterator[Scored]:
    """Score the chunks not in ``skip`` on a Dask cluster (``scheduler``'s, or a local one of ``workers``
    processes started for the job), as they finish; at most two chunks per worker thread are in flight."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            # No dashboard; the scheduler's HTTP routes on a free local port (its default, 8787, may be taken).
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            # A failed task reaches the job through its future; the processes' own log lines would only add the
            # races of shutting down (a worker's heartbeat to a scheduler already closed) to the job's output.
            silence_logs=logging.CRITICAL,
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
            done.add(client.submit(score_on_worker, model, chunk, layout, pure=False))
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


def results(
    engine: str,
    source: CsvInput | ParquetInput,
    layout: ChunkLayout,
    model_file: Path,
    *,
    chunk_rows: int,
    skip: set[int],
    scheduler: str | None = None,
    workers: int | None = None,
) -> Iterator[Scored]:
    """The scored chunks of ``source`` not in ``skip``, by ``engine`` with the registered model in ``model_file``."""
    if engine == "dask":
        return dask_results(source, layout, model_file.read_bytes(), chunk_rows, skip, scheduler, workers)
    scorer = Scorer(load_trusted(model_file, model_id=layout.model_id), layout.model_id)
    return local_results(source, layout, scorer, chunk_rows, skip)
