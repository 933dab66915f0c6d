"""A local webhook receiver: an HTTP server on 127.0.0.1, in a background thread, that keeps the JSON bodies it is
sent. It stands in for a team's chat or paging service in the workshop (notebook 09) and the tests, and can fail
its first requests (answer 500) or hold requests until released, to show retries and that nobody waits for it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: How long a held request waits for :meth:`WebhookReceiver.release` at most.
HOLD_SECONDS = 60.0


class WebhookReceiver:
    """Receives JSON POSTs at :attr:`url` (any path); ``bodies`` holds them in the order they came, failed ones too.

    ``fail_first`` requests are answered 500, the others 204. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, *, fail_first: int = 0, path: str = "/alerts"):
        self.bodies: list[dict] = []
        self.fail_first = fail_first
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
                receiver._released.wait(HOLD_SECONDS)
                with receiver._lock:
                    receiver.bodies.append(body)
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= failing
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):  # quiet: the bodies are the record
                pass

        return Handler

    def hold(self) -> None:
        """Hold every request from now on until :meth:`release`."""
        self._released.clear()

    def release(self) -> None:
        """Answer the held requests, and the next ones at once."""
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
