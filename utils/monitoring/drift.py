"""The drift monitor: a window's payload against the reference (training) data (alibi-detect, scikit-learn).

Per-feature data drift (``p_value`` and ``effect`` per feature, ``drifted_share``: a feature drifted when its
p-value is under the corrected threshold and its effect size over ``min_effect``), multivariate drift (the
classifier test) and model drift (the accuracy expected without labels). ``drifted_share``,
``classifier_drift_p_value`` and ``estimated_accuracy_drop`` alert (see
:class:`~utils.monitoring.results.Thresholds`). The detectors themselves are :mod:`utils.drift`, fitted on the
reference once, when first needed.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from utils.drift import (
    CLASSIFIER_TEST_RECORDS,
    CREDIT_COLUMNS,
    MIN_EFFECT,
    DataDriftDetector,
    ModelDriftEstimator,
    MultivariateDriftDetector,
)
from utils.monitoring.classifier_worker import ClassifierTestWorker, WorkerDetector
from utils.monitoring.results import Measurements, MonitorResult, Thresholds
from utils.monitoring.window import Window

#: The alerting metrics of drift, and the threshold each is judged against.
_ALERTING = {
    "drifted_share": "max_drifted_share",
    "classifier_drift_p_value": "multivariate_p_value",
    "estimated_accuracy_drop": "max_accuracy_drop",
}


class DriftMonitor:
    """Compares windows with ``reference`` (features and label), for the deployed ``model``.

    ``sample_size`` bounds the records of the model-drift estimate, a sample seeded by ``seed`` (also the seed of
    the classifier test). ``min_effect`` is the effect size a significant feature needs to count as drifted.
    ``columns``: the columns compared and their categories (:data:`utils.drift.CREDIT_COLUMNS` by default).
    """

    name = "drift"

    def __init__(
        self,
        model,
        reference: pd.DataFrame,
        thresholds: Thresholds,
        *,
        sample_size: int,
        seed: int,
        min_effect: float = MIN_EFFECT,
        columns: dict[str, tuple | None] = CREDIT_COLUMNS,
    ):
        self.model = model
        self.columns = columns
        self.reference = reference
        self.thresholds = thresholds
        self.sample_size = sample_size
        self.seed = seed
        self.min_effect = min_effect

    @functools.cached_property
    def data_drift(self) -> DataDriftDetector:
        return DataDriftDetector(
            self.reference, p_value=self.thresholds.drift_p_value, min_effect=self.min_effect, columns=self.columns
        )

    @functools.cached_property
    def multivariate_drift(self) -> MultivariateDriftDetector | WorkerDetector:
        return MultivariateDriftDetector(self.reference, **self._multivariate_options())

    def _multivariate_options(self) -> dict:
        p_value = self.thresholds.multivariate_p_value
        return {"p_value": p_value, "max_records": CLASSIFIER_TEST_RECORDS, "seed": self.seed, "columns": self.columns}

    @functools.cached_property
    def model_drift(self) -> ModelDriftEstimator:
        return ModelDriftEstimator(self.model, self.reference, max_records=self.sample_size, seed=self.seed)

    def set_up(self, worker: ClassifierTestWorker | None = None) -> None:
        """Fit the detectors on the reference now rather than at the first window (importing alibi-detect, unless
        the classifier test runs in ``worker``, which imports it)."""
        if worker is not None:
            self.multivariate_drift = worker.detector(self.reference, **self._multivariate_options())
        self.data_drift, self.multivariate_drift  # noqa: B018 (each made when first read)
        if self.model is not None:
            self.model_drift  # noqa: B018

    def begin(self, payload: pd.DataFrame) -> None:
        """Start the classifier test of a window's ``payload`` when it runs in a worker (see :meth:`set_up`), so
        that it runs while the other monitors do; :meth:`run` on the same records takes its result."""
        if isinstance(self.multivariate_drift, WorkerDetector) and len(payload):
            self.multivariate_drift.begin(payload)

    def run(self, window: Window, *, measured_accuracy: float = np.nan) -> MonitorResult:
        """The drift measurements of ``window``; ``measured_accuracy`` (on feedback, from the quality monitor) is
        shown beside the model-drift estimate. No verdict with too few payload records."""
        t, payload = self.thresholds, window.payload
        n = len(payload)
        out, details = Measurements(self.name), {}
        if n:
            enough = n >= t.min_records
            details["data_drift"] = self._data_drift(out, payload, enough)
            details["multivariate_drift"] = self._multivariate_drift(out, payload, enough)
            if self.model is not None:  # none to score with: no estimate of the accuracy without labels
                details["model_drift"] = self._model_drift(out, payload, enough, measured_accuracy)
        else:
            for metric, threshold in _ALERTING.items():
                out.verdict(metric, None, getattr(t, threshold), records=0, enough=False)
        status = f"{n} payload records, {t.min_records} needed" if n < t.min_records else None
        return MonitorResult(self.name, tuple(out.rows), details, status)

    def _data_drift(self, out: Measurements, payload: pd.DataFrame, enough: bool):
        n = len(payload)
        data = self.data_drift.check(payload)
        for feature, row in data.features.iterrows():
            significant = bool(row["significant"]) if enough else None
            large = bool(row["effect"] > data.min_effect) if enough else None
            out.add(
                "p_value", row["p_value"], records=n, subject=feature, threshold=data.threshold, breached=significant
            )
            out.add("effect", row["effect"], records=n, subject=feature, threshold=data.min_effect, breached=large)
        out.verdict("drifted_share", data.drifted_share, self.thresholds.max_drifted_share, records=n, enough=enough)
        return data

    def _multivariate_drift(self, out: Measurements, payload: pd.DataFrame, enough: bool):
        joint = self.multivariate_drift.check(payload)
        threshold = self.thresholds.multivariate_p_value
        out.verdict("classifier_drift_p_value", joint.p_value, threshold, records=joint.records, enough=enough)
        out.add("classifier_drift_distance", joint.distance, records=joint.records)
        return joint

    def _model_drift(self, out: Measurements, payload: pd.DataFrame, enough: bool, measured_accuracy) -> pd.DataFrame:
        n = len(payload)
        estimate = self.model_drift.estimate(payload)
        out.add("estimated_accuracy", estimate.estimated_accuracy, records=n)
        threshold = self.thresholds.max_accuracy_drop
        out.verdict("estimated_accuracy_drop", estimate.estimated_drop, threshold, records=n, enough=enough)
        accuracy = {
            "reference (measured)": estimate.reference_accuracy,
            "reference (estimated)": estimate.reference_estimate,
            "window (estimated, no labels)": estimate.estimated_accuracy,
            "window (measured on feedback)": measured_accuracy,
        }
        return pd.DataFrame({"accuracy": accuracy})
