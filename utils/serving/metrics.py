"""What the service measures of its scoring and payload-logging requests: the request log and Prometheus metrics.

:class:`RequestMeter` (ASGI middleware, outermost) times every ``POST`` to a scoring or payload-logging endpoint
(``/ml/v4/deployments/{id}/predictions``, ``/v2/models/{name}/infer``, ``/ml/v4/subscriptions/{id}/payload``)
from its arrival to the end of its answer, and learns from the request's :class:`RequestNote` how many records
were accepted (:func:`note_accepted`, called where records are stored) or why it was refused (the error handlers,
wrapped by :func:`install_metrics`). Each request of a known deployment or subscription adds a row to the data
mart's request log (the performance monitor's input: rejected records are counted there, never stored as
payload; written in batches by :class:`RequestLog`, within a quarter of a second) and the Prometheus metrics
below, served at ``GET /metrics`` in the text format:

- ``credit_scoring_requests_total{deployment_id, endpoint, outcome}``: requests; ``outcome`` is ``accepted`` or
  the reason of the rejection (``contract``, ``malformed``, ``too_large``, ``unauthorized``, ``not_found``,
  ``conflict``, ``unavailable``, ``server_error``);
- ``credit_scoring_records_total{deployment_id, endpoint}``: records accepted (stored in the payload log);
- ``credit_scoring_rejected_rows_total{deployment_id, endpoint, reason}``: rows at fault in rejected requests;
- ``credit_scoring_request_duration_seconds{endpoint}``: a histogram of the requests' latency;
- ``credit_payload_commit_requests``: a histogram of the scoring requests whose records shared each commit.

``deployment_id`` is ``unknown`` for a request that names no deployment or subscription. With several workers
the server sets ``PROMETHEUS_MULTIPROC_DIR`` (:func:`prepare_multiprocess`) and ``/metrics`` adds up every
worker's values with ``prometheus_client``'s multiprocess collector.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from utils.datamart.subscriptions import insert_requests
from utils.scoring import InputError
from utils.subscriptions import SubscriptionError, get_subscription
from utils.times import utc_now

#: The environment variable of prometheus_client's multiprocess mode: the folder of the workers' value files.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The path of WML v4 scoring, the deployment id in it (as FastAPI's route matches it).
PREDICTIONS_PATH = re.compile(r"/ml/v4/deployments/([^/]+)/predictions")
#: The measured endpoints: path pattern (the deployment, model name or subscription in it) and endpoint name.
ENDPOINTS = (
    (PREDICTIONS_PATH, "predictions"),
    (re.compile(r"/v2/models/([^/]+)/infer"), "infer"),
    (re.compile(r"/ml/v4/subscriptions/([^/]+)/payload"), "payload"),
)
#: Seconds between writes of the request log's buffered rows, and the most rows buffered before a write.
FLUSH_SECONDS, FLUSH_ROWS = 0.25, 500
#: The reason of a rejection by HTTP status, when the error names no faulty rows.
REASONS = {
    400: "malformed",
    401: "unauthorized",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    503: "unavailable",
}
UNKNOWN = "unknown"
_LOG = logging.getLogger(__name__)

REQUESTS = Counter(
    "credit_scoring_requests", "Scoring and payload-logging requests", ["deployment_id", "endpoint", "outcome"]
)
RECORDS = Counter(
    "credit_scoring_records", "Records accepted and stored in the payload log", ["deployment_id", "endpoint"]
)
REJECTED_ROWS = Counter(
    "credit_scoring_rejected_rows", "Rows at fault in rejected requests", ["deployment_id", "endpoint", "reason"]
)
LATENCY = Histogram(
    "credit_scoring_request_duration_seconds",
    "Latency of scoring and payload-logging requests, from arrival to the end of the answer",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

#: Requests per payload transaction: how many shared each commit (:mod:`utils.serving.group_commit`).
COMMIT_GROUPS = Histogram(
    "credit_payload_commit_requests",
    "Scoring requests whose records were stored in one shared data mart transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),  # a drain of the payload journal takes hundreds
)


def note_commit_group(requests: int) -> None:
    """Count one committed payload transaction that stored the records of ``requests`` requests."""
    COMMIT_GROUPS.observe(requests)


@dataclass
class RequestNote:
    """What the handling of one measured request found out: the deployment (or subscription) id, the records
    accepted, and for a rejection its reason and the rows at fault."""

    deployment_id: str | None = None
    records: int = 0
    reason: str | None = None
    rejected_rows: int = 0


_NOTE: ContextVar[RequestNote | None] = ContextVar("request_note", default=None)


def note_accepted(deployment_id: str, records: int) -> None:
    """Note that the current request stored ``records`` records for ``deployment_id`` (no-op outside a measured
    request). The note is one object shared with the worker thread a handler runs in."""
    note = _NOTE.get()
    if note is not None:
        note.deployment_id = deployment_id
        note.records += records


def _note_rejection(error: InputError) -> None:
    note = _NOTE.get()
    if note is None:
        return
    if error.faults:
        note.reason = "contract"
        note.rejected_rows = len({fault.row for fault in error.faults}) + error.rows_omitted
    else:
        note.reason = REASONS.get(error.status, "malformed")


def _resolve(service, endpoint: str, key: str) -> str | None:
    """The deployment or subscription id a measured request names, or None when it names none."""
    try:
        if endpoint == "payload":
            return get_subscription(key, engine=service.engine).subscription_id
        if endpoint == "infer":
            return service.by_model_name(key).deployment_id
        return service.deployment(key).deployment_id
    except (InputError, SubscriptionError):
        return None


class RequestLog:
    """The request-log rows of one server process, written in batches: one transaction every
    :data:`FLUSH_SECONDS` (or per :data:`FLUSH_ROWS` rows) rather than one per request, which had cost the
    scoring path a third of its throughput. What is buffered is written when the app shuts down."""

    def __init__(self, engine):
        self.engine = engine
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._full = threading.Event()
        self._writer: threading.Thread | None = None

    def add(self, row: dict) -> None:
        """Buffer one row, never waiting for the data mart (the writer thread starts with the first row)."""
        with self._lock:
            self._rows.append(row)
            if len(self._rows) >= FLUSH_ROWS:
                self._full.set()
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_periodically, name="request-log", daemon=True)
                self._writer.start()

    def flush(self) -> None:
        """Write the buffered rows now (a failure is logged: the answers were sent long ago)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            try:
                insert_requests(self.engine, rows)
            except Exception as error:
                _LOG.error("%d request-log rows not written: %s: %s", len(rows), type(error).__name__, error)

    def _write_periodically(self) -> None:
        while not self._stopped.is_set():
            self._full.wait(FLUSH_SECONDS)
            self._full.clear()
            self.flush()

    def close(self) -> None:
        """Stop the writer thread and write what is buffered."""
        self._stopped.set()
        self._full.set()
        self.flush()


def _needs_lookup(note: RequestNote, status: int) -> bool:
    """Whether a request's deployment must be looked up: a rejection that may name a known one (not a 401 or 404,
    and not when the data mart fails)."""
    return note.deployment_id is None and status not in (401, 404) and status < 500


@functools.lru_cache(maxsize=4096)
def _labelled(metric, *labels: str):
    """``metric.labels(*labels)``, remembered: prometheus-client checks and locks at each call (a request's
    measuring spent a third of its time there)."""
    return metric.labels(*labels)


def _record(service, log, endpoint: str, key: str, note: RequestNote, status: int, seconds: float, received_at):
    """Add one request to the metrics and, when it names a known deployment, to the request log."""
    accepted = status < 400
    reason = None if accepted else note.reason or REASONS.get(status, "server_error")
    deployment_id = _resolve(service, endpoint, key) if _needs_lookup(note, status) else note.deployment_id
    label = deployment_id or UNKNOWN
    _labelled(REQUESTS, label, endpoint, "accepted" if accepted else reason).inc()
    _labelled(LATENCY, endpoint).observe(seconds)
    if accepted:
        _labelled(RECORDS, label, endpoint).inc(note.records)
    elif note.rejected_rows:
        _labelled(REJECTED_ROWS, label, endpoint, reason).inc(note.rejected_rows)
    if deployment_id is None:
        return
    row = {
        "deployment_id": deployment_id,
        "endpoint": endpoint,
        "received_at": received_at,
        "seconds": seconds,
        "status": status,
        "records": note.records if accepted else 0,
        "rejected_rows": 0 if accepted else note.rejected_rows,
        "reason": reason,
    }
    log.add(row)


def _record_safely(*arguments) -> None:
    """:func:`_record`; the answer is sent by then, so a request log that cannot be written is only logged."""
    try:
        _record(*arguments)
    except Exception as error:
        _LOG.error("request not measured: %s: %s", type(error).__name__, error)


class RequestMeter:
    """ASGI middleware that measures the scoring and payload-logging requests (see the module's docstring)."""

    def __init__(self, app, service, log: RequestLog):
        self.app = app
        self.service = service
        self.log = log

    def _endpoint(self, scope) -> tuple[str, str] | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        for pattern, endpoint in ENDPOINTS:
            found = pattern.fullmatch(scope["path"])
            if found:
                return endpoint, found.group(1)
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, self._closing_log_at_shutdown(receive), send)
        measured = self._endpoint(scope)
        if measured is None:
            return await self.app(scope, receive, send)
        note, status = RequestNote(), 500
        token = _NOTE.set(note)
        received_at, started = utc_now(), time.perf_counter()

        async def send_noting_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            _NOTE.reset(token)
            seconds = time.perf_counter() - started
            arguments = (self.service, self.log, *measured, note, status, seconds, received_at)
            if _needs_lookup(note, status):  # a query: off the event loop
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(_record_safely, *arguments)
            else:
                _record_safely(*arguments)

    def _closing_log_at_shutdown(self, receive):
        async def receive_noting_shutdown():
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await anyio.to_thread.run_sync(self.log.close)
            return message

        return receive_noting_shutdown


def metrics_registry() -> CollectorRegistry:
    """The registry ``/metrics`` shows: every worker's values in multiprocess mode, else this process's."""
    if not os.environ.get(MULTIPROCESS_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def prepare_multiprocess(folder: Path) -> None:
    """Start the multiprocess mode in an empty ``folder`` (the workers inherit the environment variable)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(folder)


def install_metrics(app: FastAPI, dependencies: list) -> None:
    """Measure the app's scoring and payload-logging requests, note the reasons of rejections, serve ``/metrics``
    (behind ``dependencies``: the API key check)."""
    answer_input_error = app.exception_handlers[InputError]

    async def noting_input_error(request: Request, error: InputError):
        _note_rejection(error)
        return await answer_input_error(request, error)

    app.add_exception_handler(InputError, noting_input_error)
    app.state.request_log = RequestLog(app.state.service.engine)
    app.add_middleware(RequestMeter, service=app.state.service, log=app.state.request_log)

    @app.get("/metrics", include_in_schema=False, dependencies=dependencies)
    def metrics() -> Response:
        """The Prometheus metrics, in the text exposition format."""
        return Response(generate_latest(metrics_registry()), media_type=CONTENT_TYPE_LATEST)
