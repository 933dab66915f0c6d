"""Every monitor of a deployment over one window in one call, :func:`evaluate_all`, the window read while the
monitors get ready.

A large window of a SQLite data mart is read by child processes (:class:`utils.datamart.WindowRead`). This module
imports nothing heavy: :func:`evaluate_all` first starts the worker of the classifier test
(:mod:`utils.monitoring.classifier_worker`, which imports alibi-detect) and begins the read, then imports the
other monitors (scikit-learn, skops, aif360, matplotlib: seconds) and sets them up (the model, the reference, the
detectors), so that on two cores they overlap. Once the window is read, its classifier test runs in the worker
while the other monitors run here. The command line runs it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from utils import datamart

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from utils.monitoring.results import Evaluation
    from utils.monitoring.thresholds import Thresholds


def evaluate_all(
    deployment_id: str,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    *,
    work: str | os.PathLike | None = None,
    engine: Engine | None = None,
    reference: pd.DataFrame | str | os.PathLike | None = None,
    thresholds: Thresholds | None = None,
    store: bool = True,
    report: bool | str | os.PathLike | None = None,
) -> Evaluation:
    """Evaluate every monitor of a deployment over the window [``start``, ``end``): the one-call entry point of
    :class:`~utils.monitoring.DeploymentMonitor` (its arguments), which reads the window while the monitors are
    set up.

    ``report`` as for :meth:`DeploymentMonitor.evaluate <utils.monitoring.DeploymentMonitor.evaluate>`; None (the
    default) writes the window's report when the measurements are stored, and none when they are not: a trial run
    overwrites no stored window's report.
    """
    with _classifier_worker() as worker:
        with _collector_paused():
            engine = engine or datamart.connect(work=work)
            with (  # one reader each (not a large window's two halves at once): the other core is this process's
                datamart.WindowRead(engine, deployment_id, start, end, halves=False) as payload,
                datamart.WindowRead(engine, deployment_id, start, end, feedback=True, halves=False) as feedback,
            ):
                from utils.monitoring.monitor import DeploymentMonitor  # the monitors' libraries, while reading

                options = {"reference": reference, "thresholds": thresholds, "engine": engine, "work": work}
                monitor = DeploymentMonitor(deployment_id, **options)
                monitor.set_up(worker=worker)
                records = {"payload": payload.result(), "feedback": feedback.result()}
        monitor.drift.begin(records["payload"])
        return monitor.evaluate(start, end, store=store, report=store if report is None else report, **records)


def _classifier_worker():
    """A worker process for the classifier test when it saves time: this process has not imported alibi-detect
    yet, and another core can import it meanwhile (else none: the test runs in this process)."""
    from utils.monitoring.classifier_worker import ClassifierTestWorker

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores > 1 and "alibi_detect" not in sys.modules:
        return ClassifierTestWorker()
    return contextlib.nullcontext()


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused (unless it was already): importing and setting up the monitors
    makes millions of objects and next to no garbage, and the collector's passes over them cost about 0.7 s."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
