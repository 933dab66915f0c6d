"""The performance monitor: how a deployment's scoring and payload-logging requests were served in a window.

From the request log (:func:`utils.datamart.subscriptions.read_requests`, one row per request, written by the
service): the number of requests, the records accepted and their rate over the window's busy span (from the first
request received to the last one answered), the latency percentiles of the accepted requests (p50, p95, p99, in
seconds, measured in the service from the request's arrival to its answer), the share of rejected requests, and
the rejected rows by reason (the rule at fault). The p95 latency and the rejected share alert (see
:class:`~utils.monitoring.results.Thresholds`); no verdict under ``min_requests`` requests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.monitoring.results import Measurements, MonitorResult, Thresholds

#: The latency percentiles measured, by metric name.
PERCENTILES = {"latency_p50_seconds": 50, "latency_p95_seconds": 95, "latency_p99_seconds": 99}


def _busy_seconds(requests: pd.DataFrame) -> float:
    """Seconds from the first request's arrival to the last one's answer."""
    ends = requests["received_at"] + pd.to_timedelta(requests["seconds"], unit="s")
    return float((ends.max() - requests["received_at"].min()).total_seconds())


class PerformanceMonitor:
    """Judges the requests of a window (see the module's docstring)."""

    name = "performance"

    def __init__(self, thresholds: Thresholds):
        self.thresholds = thresholds

    def run(self, requests: pd.DataFrame, start=None, end=None) -> MonitorResult:
        """The performance measurements of the request-log rows of a window [``start``, ``end``)."""
        t, n = self.thresholds, len(requests)
        out = Measurements(self.name)
        accepted = requests[requests["reason"].isna()]
        records = int(accepted["records"].sum())
        out.add("requests", n, records=n)
        out.add("records", records, records=n)
        busy = _busy_seconds(requests) if n else 0.0
        out.add("records_per_second", records / busy if busy > 0 else np.nan, records=n)
        enough = n >= t.min_requests
        latencies = accepted["seconds"].to_numpy(dtype=float)
        for metric, level in PERCENTILES.items():
            value = float(np.percentile(latencies, level)) if len(latencies) else np.nan
            if metric == "latency_p95_seconds":
                out.verdict(metric, value, t.max_latency_p95_seconds, records=len(latencies), enough=enough)
            else:
                out.add(metric, value, records=len(latencies))
        rejected = requests[requests["reason"].notna()]
        share = len(rejected) / n if n else np.nan
        out.verdict("rejected_request_share", share, t.max_rejected_request_share, records=n, enough=enough)
        by_reason = rejected.groupby("reason")["rejected_rows"].sum().sort_index()
        for reason, rows in by_reason.items():
            out.add("rejected_rows", int(rows), records=n, subject=str(reason))
        table = pd.DataFrame({"requests": rejected.groupby("reason").size(), "rejected rows": by_reason}).rename_axis(
            "reason"
        )
        status = f"{n} requests, {t.min_requests} needed" if not enough else None
        return MonitorResult(self.name, tuple(out.rows), {"rejections": table}, status)
