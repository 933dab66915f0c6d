"""Starting and stopping the scoring service: ``python -m utils.serving`` runs uvicorn, :func:`start_server` runs
that command in a new process and waits until it is ready.

The server processes read their settings from the environment (:meth:`ServiceSettings.from_env`), so that every
uvicorn worker reads the same: ``$CREDIT_WORKDIR``, ``$CREDIT_DATAMART_URL`` and ``$CREDIT_API_KEY``.
"""

from __future__ import annotations

import argparse
import atexit
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from utils import config, datamart
from utils.serving.service import API_KEY_ENV

#: How long uvicorn's supervisor waits for a worker's answer before it replaces the worker, in seconds.
WORKER_HEALTHCHECK_SECONDS = 60


def free_port(host: str = "127.0.0.1", port: int = 0) -> int:
    """``port`` if nothing listens on it on ``host`` (0: any free port); raises OSError when it is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        probe.bind((host, port))
        return probe.getsockname()[1]


def wait_until_ready(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Wait until the server at ``url`` answers ``/v2/health/ready``.

    Raises:
        RuntimeError: ``process`` exited first.
        TimeoutError: not ready within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server at {url} was not ready after {timeout:.0f} s")


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
    timeout: float = 60.0,
) -> ServerHandle:
    """Start ``python -m utils.serving`` in a new process and wait until it is ready.

    ``port`` None picks a free one; ``api_key`` None keeps ``$CREDIT_API_KEY`` as it is.
    The server logs to ``<work dir>/logs/server-<port>.log``.
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
        env[API_KEY_ENV] = api_key
    command = [sys.executable, "-m", "utils.serving", "--host", host, "--port", str(port), "--workers", str(workers)]
    if not access_log:
        command.append("--no-access-log")
    log_path = config.layout(work_path).logs / f"server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle = ServerHandle(f"http://{host}:{port}", process, log_path)
    atexit.register(handle.stop)
    try:
        wait_until_ready(handle.url, timeout, process)
    except (RuntimeError, TimeoutError) as error:
        handle.stop()
        raise RuntimeError(f"{error}\n--- server log ({log_path}) ---\n{handle.log()[-4000:]}") from None
    return handle


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the deployments with uvicorn."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.serving", description="Serve the deployed credit-risk models over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="server processes (about one per CPU core)")
    parser.add_argument("--work-dir", help="working directory (default: $CREDIT_WORKDIR, else <project>/work)")
    parser.add_argument("--datamart-url", help="SQLAlchemy URL of the data mart (default: $CREDIT_DATAMART_URL)")
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    # The workers read their settings from the environment.
    os.environ[config.WORK_DIR_ENV] = str(config.work_dir(args.work_dir))
    if args.datamart_url:
        os.environ[datamart.DATAMART_URL_ENV] = args.datamart_url
    datamart.connect()  # create the tables once, before the workers start
    uvicorn.run(
        "utils.serving.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=not args.no_access_log,
        log_level=args.log_level,
        # A worker imports scikit-learn and skops before it answers its supervisor: on a busy machine that
        # takes longer than uvicorn's default 5 s, and the worker would be killed and restarted forever.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
