"""Helpers of the fault suite: every test here starts real servers or subprocesses on 127.0.0.1 (marked slow)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def _worker_pids(supervisor_pid: int) -> set[int]:
    """The uvicorn workers of a supervisor: its children started by multiprocessing's spawn."""
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children").read_text().split()
    pids = set()
    for pid in map(int, children):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
        except FileNotFoundError:  # ended meanwhile
            pass
    return pids


def _started_workers(log: str) -> set[int]:
    """The workers that uvicorn's log says have started serving (``Started server process [pid]``)."""
    return {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log)}


def _wait_for(probe: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    """``probe()`` once it is truthy, polled every ``interval`` s; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def worker_pids() -> Callable[[int], set[int]]:
    return _worker_pids


@pytest.fixture
def wait_for() -> Callable:
    return _wait_for


@pytest.fixture
def started_workers() -> Callable[[str], set[int]]:
    return _started_workers
