"""The data-quality monitor: how many of a window's scored records lie outside the training data's ranges.

Such records are inside the data contract, so the service scores them, and it flags them in the payload log
(``out_of_range``: the fields outside the ranges of the training data). Their share of the window alerts when
above :attr:`~utils.monitoring.results.Thresholds.max_out_of_range_share`, once the window holds
:attr:`~utils.monitoring.results.Thresholds.min_records` payload records: the model is then asked more and more
about applicants unlike those it learnt from.
"""

from __future__ import annotations

from utils.monitoring.results import Measurements, MonitorResult, Thresholds
from utils.monitoring.window import Window


class DataQualityMonitor:
    """Counts a window's payload records flagged as outside the training data's ranges."""

    name = "data_quality"

    def __init__(self, thresholds: Thresholds):
        self.thresholds = thresholds

    def run(self, window: Window) -> MonitorResult:
        """The share of flagged records in ``window``; no verdict with too few payload records."""
        t, payload = self.thresholds, window.payload
        n = len(payload)
        flagged = int(payload["out_of_range"].sum()) if n and "out_of_range" in payload else 0
        share = flagged / n if n else None
        out = Measurements(self.name)
        out.verdict("out_of_range_share", share, t.max_out_of_range_share, records=n, enough=n >= t.min_records)
        out.add("out_of_range_records", flagged, records=n)
        status = f"{n} payload records, {t.min_records} needed" if n < t.min_records else None
        details = {"data_quality": {"records": n, "out_of_range_records": flagged, "out_of_range_share": share}}
        return MonitorResult(self.name, tuple(out.rows), details, status)
