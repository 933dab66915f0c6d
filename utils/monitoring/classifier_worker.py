"""The classifier test of multivariate drift in a process of its own, for :func:`utils.monitoring.evaluate_all`.

The test is alibi-detect's ``ClassifierDrift`` (:class:`utils.drift.MultivariateDriftDetector`), and alibi-detect
takes a second or more to import (it brings in ``transformers``). A :class:`ClassifierTestWorker` starts a child
process at once, which imports it while this process imports the other monitors and reads the window, on the
other core; a window's sample is then tested there while the other monitors run here. The child runs the very same
detector on the very same samples (the window's sample is drawn here, as the detector draws it), so the results
are those of the test run in this process.

The child is not a command line: it runs :func:`main`, which answers each request pickled on its standard input
(the reference, the window's sample and the detector's options) with the result, or the error, pickled on its
standard output, until its input ends. Only this module's own two processes read what the other pickled.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from utils.child_process import start_child

if TYPE_CHECKING:  # scikit-learn, imported with utils.drift, takes a second: not before the child starts
    import pandas as pd

    from utils.drift import MultivariateDrift


def main() -> None:
    """In the child: import alibi-detect, then answer requests until the input ends."""
    os.nice(10)  # the window's read and the parent's imports are wanted first
    from utils.drift import MultivariateDriftDetector, _alibi

    _alibi()
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            reference, sample, options = pickle.load(requests)
        except EOFError:
            return
        try:
            answer = ("result", MultivariateDriftDetector(reference, **options).check(sample))
        except Exception:  # noqa: BLE001 (handed to the parent, which raises it)
            answer = ("error", traceback.format_exc())
        pickle.dump(answer, answers)
        answers.flush()


class ClassifierTestWorker:
    """The child process of this process's classifier tests, started (and importing alibi-detect) when it is made;
    :meth:`close` (or the end of a ``with`` block) stops it."""

    def __init__(self):
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close)
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": self._errors}
        self._process = start_child(__name__, **pipes)
        self._sender = ThreadPoolExecutor(1)  # a request waits in the pipe until the child has imported alibi-detect

    def __enter__(self) -> ClassifierTestWorker:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        """Stop the child: it holds nothing to save, and a test still running is not wanted."""
        self._process.kill()
        self._process.wait()
        self._sender.shutdown()  # a request still being sent meets the closed pipe
        self._process.stdin.close()
        self._process.stdout.close()
        self._errors.close()

    def detector(self, reference: pd.DataFrame, **options) -> WorkerDetector:
        """A detector of ``reference`` whose checks run in the child (``options`` as for
        :class:`~utils.drift.MultivariateDriftDetector`, ``max_records`` and ``seed`` among them)."""
        return WorkerDetector(self, reference, options)

    def send(self, request: tuple) -> None:
        """Send a request (without waiting for the child to read it)."""
        self._sender.submit(self._write, pickle.dumps(request))

    def _write(self, request: bytes) -> None:
        self._process.stdin.write(request)
        self._process.stdin.flush()

    def answer(self) -> MultivariateDrift:
        """The answer to the oldest request not answered yet."""
        try:
            kind, value = pickle.load(self._process.stdout)
        except EOFError:
            self._errors.seek(0)
            problem = self._errors.read().decode(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"the classifier test's process ended: {problem}") from None
        if kind == "error":
            raise RuntimeError(f"the classifier test failed in its process:\n{value}")
        return value


class WorkerDetector:
    """Stands for a :class:`~utils.drift.MultivariateDriftDetector`: :meth:`check` gives the same result, from
    the worker's child. :meth:`begin` starts a window's check before its result is wanted."""

    def __init__(self, worker: ClassifierTestWorker, reference: pd.DataFrame, options: dict):
        self._worker, self._reference, self._options = worker, reference, options
        self._begun: pd.DataFrame | None = None

    def begin(self, frame: pd.DataFrame) -> None:
        """Start checking ``frame`` in the child; :meth:`check` of the same frame takes the result."""
        if self._begun is not None:
            self._worker.answer()  # a check begun and never taken
        self._send(frame)
        self._begun = frame

    def check(self, frame: pd.DataFrame) -> MultivariateDrift:
        """Whether a classifier can tell ``frame``'s records from the reference's (see :meth:`begin`)."""
        begun, self._begun = self._begun, None
        if begun is not frame:
            if begun is not None:
                self._worker.answer()
            self._send(frame)
        return self._worker.answer()

    def _send(self, frame: pd.DataFrame) -> None:
        from utils.drift import window_sample

        sample = window_sample(frame, self._options["max_records"], self._options["seed"])
        self._worker.send((self._reference, sample, self._options))
