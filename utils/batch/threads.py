"""The threads a job overlaps its work with: one that reads ahead of the scoring, one that writes behind it. Each
hands items over through a bounded queue, so that memory stays flat, and its error is raised in the caller."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator

_DONE = object()


def ahead(items: Iterator, depth: int = 1, name: str = "batch-reader") -> Iterator:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message) -> bool:
        while not stop.is_set():
            try:
                ready.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as error:  # handed to the consumer
            put(("error", error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


class _Behind:
    """``consume`` called on each item put, in order, in a background thread; at most ``depth`` items wait."""

    def __init__(self, consume: Callable, depth: int, name: str):
        self.waiting: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(consume,), name=name, daemon=True)
        self.thread.start()

    def _run(self, consume: Callable) -> None:
        while (item := self.waiting.get()) is not _DONE:
            if self.error is None:  # after an error, the rest is dropped
                try:
                    consume(item)
                except BaseException as error:  # raised in the caller's thread
                    self.error = error

    def put(self, item) -> None:
        """Hand an item over (waiting while the queue is full); raises the error ``consume`` met, if any."""
        self._raise()
        self.waiting.put(item)

    def stop(self) -> None:
        """Wait until every item handed over is consumed."""
        self.waiting.put(_DONE)
        self.thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


@contextlib.contextmanager
def behind(consume: Callable, depth: int = 1, name: str = "batch-writer") -> Iterator[_Behind]:
    """A writer thread calling ``consume`` on each item put, in order; on leaving, every item is consumed, and the
    writer's error (when the caller had none) is raised."""
    writer = _Behind(consume, depth, name)
    try:
        yield writer
    except BaseException:
        writer.stop()
        raise
    writer.stop()
    writer._raise()
