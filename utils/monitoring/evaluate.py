"""Every monitor of a deployment over one window in one call, :func:`evaluate_all`, the window read while the
monitors get ready.

A large window of a SQLite data mart is read by child processes (:class:`utils.datamart.WindowRead`). This module
imports nothing heavy: :func:`evaluate_all` begins the read first, then imports the monitors (scikit-learn, skops,
aif360, alibi-detect, matplotlib: seconds) and sets them up (the model, the reference, the drift detectors), so
that on two cores the two overlap: one core reads the window (one reader for the payload, one for the feedback),
the other imports. The command line runs it.
"""

from __future__ import annotations

import contextlib
import gc
import os
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
    with _collector_paused():
        engine = engine or datamart.connect(work=work)
        with (  # one reader each (not a large window's two halves at once): the other core is this process's
            datamart.WindowRead(engine, deployment_id, start, end, halves=False) as payload,
            datamart.WindowRead(engine, deployment_id, start, end, feedback=True, halves=False) as feedback,
        ):
            from utils.monitoring.monitor import DeploymentMonitor  # the monitors' libraries, while the window is read

            options = {"reference": reference, "thresholds": thresholds, "engine": engine, "work": work}
            monitor = DeploymentMonitor(deployment_id, **options)
            monitor.set_up()
            records = {"payload": payload.result(), "feedback": feedback.result()}
    return monitor.evaluate(start, end, store=store, report=store if report is None else report, **records)


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
