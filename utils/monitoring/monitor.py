"""The monitors of one deployment: read a window, run the monitors, store the measurements, write the report.

:class:`DeploymentMonitor` sets up once what the monitors need (the deployed model, the reference data, the
thresholds) and evaluates any window; :func:`utils.monitoring.evaluate_all` does it in one call, reading the window
while the monitors get ready.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from threadpoolctl import threadpool_limits

from utils import config, datamart
from utils.data import load_credit_csv
from utils.datamart.subscriptions import read_requests as datamart_requests
from utils.deployment import Deployment, get_deployment, is_valid_name
from utils.monitoring.classifier_worker import ClassifierTestWorker
from utils.monitoring.data_quality import DataQualityMonitor
from utils.monitoring.drift import DriftMonitor
from utils.monitoring.fairness import FairnessMonitor
from utils.monitoring.notifications import notify_changes
from utils.monitoring.performance import PerformanceMonitor
from utils.monitoring.quality import QualityMonitor
from utils.monitoring.results import ALL_MONITORS, MONITORS, Evaluation, MonitorResult, Thresholds, measurement_frame
from utils.monitoring.thresholds import stored_configuration
from utils.monitoring.window import Window, no_records
from utils.registry import reference_data_path, registry_for
from utils.report import write_report
from utils.times import as_utc, as_utc_or_none, utc_now

#: The records each monitor reads: payload, feedback.
_READS = {"payload": {"fairness", "drift", "data_quality"}, "feedback": {"quality", "fairness"}}
#: A report file name: no path separator, no ``..``, no line end or NUL (matched whole).
_SAFE_FILE_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]*")


def _file_stamp(moment: datetime | None) -> str:
    """A window end in a file name: the date at midnight, else the time; ``open`` for none."""
    if moment is None:
        return "open"
    stamp = pd.Timestamp(moment)
    return stamp.strftime("%Y%m%d") if stamp == stamp.normalize() else stamp.strftime("%Y%m%dT%H%M")


class DeploymentMonitor:
    """The monitors of one deployment, set up once (model, reference data, detectors) and run on any window.

    Args:
        deployment_id: the deployment to watch; its current model is the one monitored.
        reference: the data drift is measured against (features and label), as a DataFrame or a CSV path; by
            default the deployed version's reference: a retrained version's recorded ``reference_data`` (the
            labelled records of the windows it was retrained for, under ``retraining/``), else the data it was
            trained on, ``<work dir>/data/train.csv`` (written by notebook 01).
        thresholds: thresholds and minimums (default: the deployment's stored monitor configuration, see
            ``utils.lifecycle.monitor_config``; without one, :class:`Thresholds`).
        attributes: the protected attributes to monitor (default: the stored configuration's, else Sex and Age).
        sample_size: most records used by the per-record checks (perturbation, debiased companion, model drift)
            per window, a seeded sample; fairness metrics and data drift always use every record.
        seed: seed of every sample and detector, so that the same data give the same results.
        deployment, model: what is monitored when it is no deployment of the registry's models (a subscription,
            :mod:`utils.monitoring.subscription`): its stand-in record and its model (None: none to score with).
    """

    def __init__(
        self,
        deployment_id: str,
        *,
        reference: pd.DataFrame | str | os.PathLike | None = None,
        thresholds: Thresholds | None = None,
        attributes: tuple[str, ...] | None = None,
        engine: Engine | None = None,
        work: str | os.PathLike | None = None,
        sample_size: int = 50_000,
        seed: int = 0,
        deployment: Deployment | None = None,
        model=None,
    ):
        self.layout = config.layout(work)
        self.work = self.layout.root
        self.engine = engine or datamart.connect(work=self.work)
        self.deployment = deployment or get_deployment(deployment_id, engine=self.engine)
        self.registry = registry_for(self.work)
        self.model = model if deployment else self.registry.load(self.deployment.model_id)
        if reference is None:
            reference = reference_data_path(self.registry.metadata(self.deployment.model_id), self.work)
        self.reference = reference if isinstance(reference, pd.DataFrame) else load_credit_csv(reference)
        stored_thresholds, stored_attributes, _ = stored_configuration(self.engine, self.deployment.deployment_id)
        self.thresholds = thresholds or stored_thresholds
        self.attributes = tuple(stored_attributes if attributes is None else attributes)
        self.sample_size = sample_size
        self.seed = seed
        self.quality = QualityMonitor(self.thresholds)
        self.fairness = FairnessMonitor(
            self.model, self.thresholds, self.attributes, sample_size=sample_size, seed=seed
        )
        self.drift = DriftMonitor(self.model, self.reference, self.thresholds, sample_size=sample_size, seed=seed)
        self.data_quality = DataQualityMonitor(self.thresholds)
        self.performance = PerformanceMonitor(self.thresholds)

    def set_up(self, monitors: tuple[str, ...] = MONITORS, *, worker: ClassifierTestWorker | None = None) -> None:
        """Get ``monitors`` ready before a window arrives: import their libraries and fit the drift detectors on the
        reference, which the first evaluation otherwise does. Done while a window is read, it costs no time
        (:func:`utils.monitoring.evaluate_all`). The classifier test of drift runs in ``worker`` when given."""
        if "fairness" in monitors:
            self.fairness.set_up()
        if "drift" in monitors:
            self.drift.set_up(worker)

    def records(self, start=None, end=None, *, feedback: bool = False, monitors: tuple[str, ...] = MONITORS):
        """The payload (or ``feedback``) records of the window [``start``, ``end``), read when one of ``monitors``
        needs them (else none, with the same columns)."""
        if not _READS["feedback" if feedback else "payload"] & set(monitors):
            return no_records(feedback=feedback)
        return datamart.read_window(self.engine, self.deployment.deployment_id, start, end, feedback=feedback)

    def run(
        self, payload: pd.DataFrame, feedback: pd.DataFrame, *, monitors: tuple[str, ...] = MONITORS, debias=True
    ) -> list[MonitorResult]:
        """Run ``monitors`` on a window's records, in the order quality, fairness, drift, data quality."""
        results: list[MonitorResult] = []
        with threadpool_limits(limits=1):
            window = Window.of(self.model, payload, feedback)
            if "quality" in monitors:
                results.append(self.quality.run(window))
            if "fairness" in monitors:
                results.append(self.fairness.run(window, debias=debias))
            if "drift" in monitors:
                measured = [r.details["quality"].get("accuracy", np.nan) for r in results if r.monitor == "quality"]
                results.append(self.drift.run(window, measured_accuracy=measured[0] if measured else np.nan))
            if "data_quality" in monitors:
                results.append(self.data_quality.run(window))
        return results

    def evaluate(
        self,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        *,
        monitors: tuple[str, ...] = MONITORS,
        debias: bool = True,
        store: bool = True,
        report: bool | str | os.PathLike = True,
        payload: pd.DataFrame | None = None,
        feedback: pd.DataFrame | None = None,
        scheduled: bool = False,
    ) -> Evaluation:
        """Run ``monitors`` on the window [``start``, ``end``) (None: open), store the measurements (``store``) and
        write the HTML report (``report``: True for ``<work dir>/reports/<default name>``, or a path).

        ``payload`` and ``feedback`` are the window's records as :func:`utils.datamart.read_window` returns them,
        when they have been read already; by default the monitors that need them read them. ``scheduled`` records
        the window of each of ``monitors`` as run, with the measurements (:func:`utils.datamart.store_scheduled_window`
        raises ``WindowAlreadyRan`` when one is recorded already). Stored measurements notify the deployment's
        receivers of the alerts that began or recovered (:mod:`utils.monitoring.notifications`), in the background.
        """
        unknown = sorted(set(monitors) - set(ALL_MONITORS))
        if unknown:
            raise ValueError(f"unknown monitor(s) {unknown}; choose from {list(ALL_MONITORS)}")
        start, end = as_utc_or_none(start), as_utc_or_none(end)
        if payload is None:
            payload = self.records(start, end, monitors=monitors)
        if feedback is None:
            feedback = self.records(start, end, feedback=True, monitors=monitors)
        results = self.run(payload, feedback, monitors=monitors, debias=debias)
        if "performance" in monitors:
            requests = datamart_requests(self.engine, self.deployment.deployment_id, start, end)
            results.append(self.performance.run(requests, start, end))
        evaluation = self._evaluation(start, end, len(payload), len(feedback), results)
        if store:
            self.store(evaluation, runs=monitors if scheduled else ())
        if report:
            path = self.report_path(evaluation) if report is True else Path(report)
            history = self.history(end=end) if store else None
            evaluation.report_path = write_report(evaluation, path, history=history, thresholds=self.thresholds)
        if store:
            notify_changes(self.engine, evaluation, self.deployment, self.layout.logs / "alerts.log")
        return evaluation

    def _evaluation(self, start, end, payload_records: int, feedback_records: int, results) -> Evaluation:
        """The evaluation of a window from its monitors' results (measurements, details and statuses in order)."""
        return Evaluation(
            evaluation_id=datamart.new_id(),
            deployment_id=self.deployment.deployment_id,
            deployment_name=f"{self.deployment.name} ({self.deployment.space})",
            model_id=self.deployment.model_id,
            window_start=start,
            window_end=end,
            evaluated_at=utc_now(),
            payload_records=payload_records,
            feedback_records=feedback_records,
            measurements=measurement_frame(results),
            details={name: value for result in results for name, value in result.details.items()},
            statuses={result.monitor: result.status for result in results if result.status is not None},
        )

    def evaluate_days(self, first_day: str | datetime, days: int, *, progress=None, **options) -> list[Evaluation]:
        """Evaluate one window per day, ``days`` days from ``first_day`` (midnight UTC), oldest first.

        ``progress`` wraps the loop over days (for example a ``tqdm``)."""
        first = pd.Timestamp(as_utc(first_day)).normalize().to_pydatetime()
        starts = [first + timedelta(days=i) for i in range(days)]
        return [self.evaluate(start, start + timedelta(days=1), **options) for start in (progress or iter)(starts)]

    def store(self, evaluation: Evaluation, *, runs: tuple[str, ...] = ()) -> int:
        """Write the evaluation's measurements to the data mart, with its window recorded as run by each monitor
        of ``runs`` in the same transaction, and regenerate the model's factsheet (its latest monitoring status);
        returns how many measurements."""
        common = {
            "evaluation_id": evaluation.evaluation_id,
            "deployment_id": evaluation.deployment_id,
            "window_start": evaluation.window_start,
            "window_end": evaluation.window_end,
            "evaluated_at": evaluation.evaluated_at,
        }
        rows = evaluation.measurements.drop(columns="alerting").to_dict("records")
        records = [
            {**common, **row, "breached": None if pd.isna(row["breached"]) else bool(row["breached"])} for row in rows
        ]
        if runs:
            ran = [{**common, "monitor": monitor} for monitor in runs]
            stored = datamart.store_scheduled_window(self.engine, ran, records)
        else:
            stored = datamart.insert_measurements(self.engine, records)
        self.registry.write_factsheet(evaluation.model_id, engine=self.engine)
        return stored

    def history(self, start=None, end=None) -> pd.DataFrame:
        """The stored measurements of this deployment whose window starts in [start, end), oldest first."""
        return datamart.read_measurements(self.engine, self.deployment.deployment_id, start=start, end=end)

    def report_path(self, evaluation: Evaluation) -> Path:
        """``<work dir>/reports/monitoring-<name>-<space>-<start>-<end>.html`` (dates or times of the window).

        A name or space recorded without following :data:`utils.deployment.NAME_RULE` (a deployment made before
        names were checked) is never put in the path: the file is then ``monitoring-<deployment id>-...``.

        Raises:
            ValueError: the file would not be directly inside ``<work dir>/reports``.
        """
        deployment = self.deployment
        if is_valid_name(deployment.name) and is_valid_name(deployment.space):
            label = f"{deployment.name}-{deployment.space}"
        else:
            label = deployment.deployment_id
        window = f"{_file_stamp(evaluation.window_start)}-{_file_stamp(evaluation.window_end)}"
        file_name = f"monitoring-{label}-{window}.html"
        reports = self.layout.reports
        path = reports / file_name
        if not _SAFE_FILE_NAME.fullmatch(file_name) or path.resolve().parent != reports.resolve():
            raise ValueError(f"report file name {file_name[:80]!r} would leave {reports}")
        return path

    def explain(self, transaction_id: str, *, seed: int | None = None):
        """shap contributions and counterfactual of a logged transaction (:func:`utils.explain.explain_transaction`)."""
        from utils.explain import explain_transaction  # shap is slow to import: only when explaining

        return explain_transaction(
            transaction_id,
            self.reference,
            engine=self.engine,
            registry=self.registry,
            seed=self.seed if seed is None else seed,
        )
