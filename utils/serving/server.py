"""Starting and stopping the scoring service: ``python -m utils.serving`` runs uvicorn, :func:`start_server` runs
that command in a new process and waits until it is ready.

The server processes read their settings from the environment (:meth:`ServiceSettings.from_env`), so that every
uvicorn worker reads the same: ``$CREDIT_WORKDIR``, ``$CREDIT_DATAMART_URL`` and ``$CREDIT_API_KEY``.

Two additions to uvicorn guard the service (docs/operating.md): :class:`DeadlineHttpProtocol` closes connections
whose request headers or body arrive too slowly (:class:`ClientLimits`), and :class:`WorkerSupervisor` notices at
once a worker that died while it was being health-checked.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess
from uvicorn.supervisors.multiprocess import Process as WorkerProcess

from utils import config, datamart

#: How long the supervisor waits for a serving worker's answer to its health check before it replaces the worker,
#: in seconds. A dead worker is replaced at once, whatever this says.
WORKER_HEALTHCHECK_SECONDS = 5
#: How long a starting worker has to answer its first health check: it answers once its interpreter has imported
#: this package (scikit-learn, skops), which takes seconds, and tens of seconds on a busy machine.
WORKER_STARTUP_SECONDS = 120
#: How long a stopping worker lets the requests in progress finish before it closes their connections, in seconds.
GRACEFUL_SHUTDOWN_SECONDS = 3

_LOG = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class ClientLimits:
    """What each server process grants a client connection."""

    #: the request line and headers must have arrived this many seconds after the connection (or the request) began
    header_seconds: float = 10.0
    #: and the whole body this many seconds after the headers (8 MiB at most: about 280 kB/s)
    body_seconds: float = 30.0
    #: an idle connection between two requests is closed after this many seconds
    keep_alive_seconds: int = 5
    #: per worker: with this many connections open, further requests are answered 503 at once
    max_connections: int = 200


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with deadlines for a request's headers and body (``config.limits``).

    uvicorn times out only idle keep-alive connections: a client that sends its headers or body a byte at a time
    held its connection, and a file descriptor, for ever. Once the body is in, the request has no deadline here:
    scoring takes as long as it takes.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._receiving = False  # within data_received: a deadline is set when the data is parsed
        self._next: tuple[float, str] | None = None  # the deadline to set then
        super().connection_made(transport)
        self._arm(self.config.limits.header_seconds, "request headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse ``data``; a deadline its parts call for is set only once it is parsed, so that a request that
        arrives whole (the common case) sets none."""
        self._receiving = True
        try:
            super().data_received(data)
        finally:
            self._receiving = False
            if self._next is not None:
                self._arm(*self._next)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request on a kept-alive connection
            self._set(self.config.limits.header_seconds, "request headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._set(self.config.limits.body_seconds, "request body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _set(self, seconds: float, what: str) -> None:
        if self._receiving:
            self._next = (seconds, what)
        else:
            self._arm(seconds, what)

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow, seconds, what)

    def _disarm(self) -> None:
        self._next = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, seconds: float, what: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            client = "{}:{}".format(*self.client) if self.client else "a client"
            _LOG.info("closed the connection of %s: %s not received within %g s", client, what, seconds)
            self.transport.close()


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with the service's :class:`ClientLimits`, its protocol and its timeouts."""

    def __init__(self, app: str, *, limits: ClientLimits, **options) -> None:
        self.limits = limits  # read by DeadlineHttpProtocol in every worker (the config is pickled to them)
        super().__init__(
            app,
            http=DeadlineHttpProtocol,
            timeout_keep_alive=limits.keep_alive_seconds,
            limit_concurrency=limits.max_connections,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            timeout_worker_healthcheck=WORKER_STARTUP_SECONDS,  # what uvicorn's SIGHUP restart waits for a new worker
            **options,
        )


class WorkerSupervisor(Multiprocess):
    """uvicorn's worker supervisor, which replaces a dead worker at once and never waits on a starting one.

    uvicorn's own pings each worker and waits for its answer up to the health-check timeout. A starting worker
    answers only once its interpreter has imported this package (seconds; tens of seconds on a busy machine), so a
    slow start was taken for a hung worker and restarted for ever, and a replacement killed during its start-up
    left the ping waiting the whole timeout (its pipe stayed open through the supervisor's copy of the worker's
    end), and signals, SIGTERM included, with it. Here the supervisor drops its copy of that end, pings a starting
    worker once and looks for the answer on each round without waiting; the worker has ``WORKER_STARTUP_SECONDS``
    to give it. A worker that has answered is then pinged as uvicorn does.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self._pinged_at: dict[int, float] = {}  # a starting worker's pid: when it was pinged
        self._serving: set[int] = set()

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        current = {worker.pid for worker in self.processes}  # forget workers replaced or retired by uvicorn
        self._serving &= current
        self._pinged_at = {pid: at for pid, at in self._pinged_at.items() if pid in current}
        for index, worker in enumerate(self.processes):
            if self._responsive(worker):
                continue
            worker.kill()
            worker.join()
            if worker.exitcode == STARTUP_FAILURE:  # the app cannot start: it would fail the same way again
                _LOG.error(f"Child process [{worker.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            _LOG.info(f"Child process [{worker.pid}] died or hung: starting a replacement")
            replacement = WorkerProcess(self.config, self.sockets)
            replacement.start()
            self.processes[index] = replacement

    def _responsive(self, worker: WorkerProcess) -> bool:
        if not worker.process.is_alive():
            return False
        if worker.pid in self._serving:
            return worker.ping(WORKER_HEALTHCHECK_SECONDS)
        try:
            if worker.pid not in self._pinged_at:
                worker.child_conn.close()  # the worker has its own copy: with this one gone, its death ends the pipe
                worker.parent_conn.send(b"ping")
                self._pinged_at[worker.pid] = time.monotonic()
            elif worker.parent_conn.poll(0):
                worker.parent_conn.recv()
                self._serving.add(worker.pid)
                del self._pinged_at[worker.pid]
        except (OSError, EOFError):
            return False
        return worker.pid in self._serving or time.monotonic() - self._pinged_at[worker.pid] < WORKER_STARTUP_SECONDS


def free_port(host: str = "127.0.0.1", port: int = 0) -> int:
    """``port`` if nothing listens on it on ``host`` (0: any free port); raises OSError when it is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        probe.bind((host, port))
        return probe.getsockname()[1]


def wait_until_ready(
    url: str, timeout: float = 30.0, process: subprocess.Popen | None = None, health: str = "ready"
) -> None:
    """Wait until the server at ``url`` answers ``/v2/health/<health>`` (``ready``, or ``live`` for a server that
    runs but may not be ready, say on a read-only data mart).

    Raises:
        RuntimeError: ``process`` exited first.
        TimeoutError: not ready within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    # One client for every poll: a new one loads the system's CA certificates each time (tens of milliseconds of
    # CPU per poll, taken from the server starting beside it on a small machine).
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode} before it was ready")
            try:
                if client.get(f"{url}/v2/health/{health}").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"the server at {url} was not {health} after {timeout:.0f} s")


@dataclass
class ServerHandle:
    """A server started by :func:`start_server`; ``stop()`` ends it (also on interpreter exit)."""

    url: str
    process: subprocess.Popen
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its workers (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        """What the server has written to its log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *_) -> None:
        self.stop()


def start_server(
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    workers: int = 1,
    work: str | os.PathLike | None = None,
    datamart_url: str | None = None,
    api_key: str | None = None,
    access_log: bool = True,
    limits: ClientLimits | None = None,
    timeout: float = 60.0,
    health: str = "ready",
) -> ServerHandle:
    """Start ``python -m utils.serving`` in a new process and wait until it is ready (``health="live"``: until it
    answers liveness).

    ``port`` None picks a free one; ``api_key`` None keeps ``$CREDIT_API_KEY`` as it is; ``limits`` None keeps the
    defaults of :class:`ClientLimits`. The server logs to ``<work dir>/logs/server-<port>.log``.
    """
    work_path = config.work_dir(work)
    try:
        port = free_port(host, port or 0)
    except OSError as error:
        raise RuntimeError(f"port {port} on {host} is taken ({error.strerror}): stop what runs there") from None
    env = {**os.environ, config.WORK_DIR_ENV: str(work_path)}
    if datamart_url:
        env[datamart.DATAMART_URL_ENV] = datamart_url
    if api_key is not None:
        from utils.serving.service import API_KEY_ENV  # not at the top: the command line starts without the service

        env[API_KEY_ENV] = api_key
    command = [sys.executable, "-m", "utils.serving", "--host", host, "--port", str(port), "--workers", str(workers)]
    if not access_log:
        command.append("--no-access-log")
    if limits is not None:
        command += _limit_arguments(limits)
    log_path = config.layout(work_path).logs / f"server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle = ServerHandle(f"http://{host}:{port}", process, log_path)
    atexit.register(handle.stop)
    try:
        wait_until_ready(handle.url, timeout, process, health)
    except (RuntimeError, TimeoutError) as error:
        handle.stop()
        raise RuntimeError(f"{error}\n--- server log ({log_path}) ---\n{handle.log()[-4000:]}") from None
    return handle


#: The command-line option of each field of :class:`ClientLimits`.
_LIMIT_OPTIONS = {
    "header_seconds": "--header-timeout",
    "body_seconds": "--body-timeout",
    "keep_alive_seconds": "--keep-alive-timeout",
    "max_connections": "--max-connections",
}


def _limit_arguments(limits: ClientLimits) -> list[str]:
    return [word for name, option in _LIMIT_OPTIONS.items() for word in (option, str(getattr(limits, name)))]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.serving", description="Serve the deployed credit-risk models over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="server processes (about one per CPU core)")
    parser.add_argument("--work-dir", help=config.WORK_DIR_HELP)
    parser.add_argument("--datamart-url", help="SQLAlchemy URL of the data mart (default: $CREDIT_DATAMART_URL)")
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    parser.add_argument("--log-level", default="info")
    defaults = ClientLimits()
    helps = {
        "header_seconds": "seconds a client has to send a request's line and headers",
        "body_seconds": "seconds a client has to send a request's body once its headers are in",
        "keep_alive_seconds": "seconds an idle connection is kept open between requests",
        "max_connections": "open connections per worker beyond which requests are answered 503",
    }
    for name, option in _LIMIT_OPTIONS.items():
        default = getattr(defaults, name)
        parser.add_argument(
            option, dest=name, type=type(default), default=default, help=f"{helps[name]} (default {default})"
        )
    return parser


#: What a user opens once the service is ready: (what, path).
ADDRESSES = (
    ("the loan officer's form", "/"),
    ("the API documentation", "/docs"),
    ("the insights dashboard", config.DASHBOARD_PATH),
)


def _announce_when_ready(host: str, port: int) -> None:
    """Log the addresses of :data:`ADDRESSES` once the service answers readiness (it says nothing if it never does:
    uvicorn's log says why)."""
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    try:
        wait_until_ready(url, timeout=300)
    except TimeoutError:
        return
    for what, path in ADDRESSES:
        _LOG.info("ready: %s at %s%s", what, url, path)


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the deployments with uvicorn."""
    args = _parser().parse_args(argv)
    # The workers read their settings from the environment.
    os.environ[config.WORK_DIR_ENV] = str(config.work_dir(args.work_dir))
    if args.datamart_url:
        os.environ[datamart.DATAMART_URL_ENV] = args.datamart_url
    datamart.connect()  # create the tables once, before the workers start
    if args.workers > 1:  # the workers add up their Prometheus metrics in files of one fresh folder
        from utils.serving.metrics import prepare_multiprocess  # not at the top: it imports the service

        prepare_multiprocess(config.layout().logs / f"metrics-{args.port}")
    limits = ClientLimits(**{name: getattr(args, name) for name in _LIMIT_OPTIONS})
    server_config = ServerConfig(
        "utils.serving.app:create_app",
        limits=limits,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=not args.no_access_log,
        log_level=args.log_level,
    )
    threading.Thread(target=_announce_when_ready, args=(args.host, args.port), daemon=True).start()
    if server_config.workers > 1:
        WorkerSupervisor(server_config, sockets=[server_config.bind_socket()]).run()
        return
    server = uvicorn.Server(server_config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
