"""The quality monitor: the monitored model's metrics on a window's labelled feedback (``Risk`` positive).

ROC AUC, accuracy, precision, recall, F1 and log loss; ROC AUC alerts when under
:attr:`~utils.monitoring.results.Thresholds.min_auc_roc`, once the window holds
:attr:`~utils.monitoring.results.Thresholds.min_feedback` feedback records.
"""

from __future__ import annotations

from utils.data import LABEL
from utils.monitoring.results import Measurements, MonitorResult, Thresholds
from utils.monitoring.window import Window
from utils.training import classification_metrics

_REPORTED = ("accuracy", "precision", "recall", "f1", "log_loss")


class QualityMonitor:
    """Scores a window's feedback against its labels."""

    name = "quality"

    def __init__(self, thresholds: Thresholds):
        self.thresholds = thresholds

    def run(self, window: Window) -> MonitorResult:
        """The quality measurements of ``window``; no verdict with too few feedback records."""
        t, feedback, scored = self.thresholds, window.feedback, window.scored
        n = len(feedback)
        metrics = {}
        labels = feedback[LABEL].astype(str).to_numpy()
        if n and len(set(labels)) == 2:
            metrics = classification_metrics(labels, scored["prediction"], scored["probability_risk"])
        out = Measurements(self.name)
        out.verdict("auc_roc", metrics.get("auc_roc"), t.min_auc_roc, records=n, enough=n >= t.min_feedback)
        for name in _REPORTED:
            out.add(name, metrics.get(name), records=n)
        status = f"{n} feedback records, {t.min_feedback} needed" if n < t.min_feedback else None
        return MonitorResult(self.name, tuple(out.rows), {"quality": metrics}, status)
