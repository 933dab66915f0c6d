"""The service says where to open it once it is ready."""

from __future__ import annotations

import time

import pytest

from utils.serving import start_server
from utils.serving.server import ADDRESSES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", [1, 2])
def test_the_service_logs_the_form_and_docs_addresses_once_ready(workspace, workers):
    with start_server(workers=workers, work=workspace.work, datamart_url=workspace.datamart_url, timeout=120) as server:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.log().count("ready: ") < len(ADDRESSES):
            time.sleep(0.1)
        log = server.log()
    for what, path in ADDRESSES:
        assert log.count(f"ready: {what} at {server.url}{path}\n") == 1, log[-2000:]
